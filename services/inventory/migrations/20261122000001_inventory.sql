-- The inventory service's own state: the catalog with stock levels, and one
-- reservation per order.
CREATE TABLE products (
    sku         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    currency    TEXT NOT NULL DEFAULT 'EUR',
    -- On hand and free to reserve.
    available   INT NOT NULL CHECK (available >= 0),
    -- Held for orders whose saga is still running or confirmed.
    reserved    INT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The business key of a reservation is the order: one per order, whatever
-- the redelivery.
CREATE TABLE reservations (
    order_id    UUID PRIMARY KEY,
    customer_id TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('RESERVED', 'RELEASED')),
    total_cents BIGINT NOT NULL,
    currency    TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE reservation_lines (
    order_id         UUID NOT NULL REFERENCES reservations (order_id),
    sku              TEXT NOT NULL REFERENCES products (sku),
    quantity         INT NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT NOT NULL,
    PRIMARY KEY (order_id, sku)
);
