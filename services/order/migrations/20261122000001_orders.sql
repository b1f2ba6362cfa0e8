-- The order service's own state: orders, their lines, and the saga timeline
-- that GET /v1/orders/{id} shows.
CREATE TABLE orders (
    id               UUID PRIMARY KEY,
    customer_id      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    shipping_address JSONB NOT NULL,
    -- Known once inventory has priced the lines (StockReserved).
    total_cents      BIGINT,
    currency         TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer ON orders (customer_id, created_at DESC);

CREATE TABLE order_lines (
    order_id         UUID NOT NULL REFERENCES orders (id),
    line_no          INT NOT NULL,
    sku              TEXT NOT NULL,
    quantity         INT NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT,
    line_total_cents BIGINT,
    PRIMARY KEY (order_id, line_no)
);

-- One row per saga event this order has seen, from any service.
CREATE TABLE order_timeline (
    seq         BIGSERIAL PRIMARY KEY,
    order_id    UUID NOT NULL REFERENCES orders (id),
    event_id    UUID NOT NULL UNIQUE,
    event_type  TEXT NOT NULL,
    service     TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX order_timeline_order ON order_timeline (order_id, occurred_at, seq);
