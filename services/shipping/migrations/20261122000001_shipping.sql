-- The shipping service's own state: one shipment per order. Its address
-- comes from OrderPlaced and its go-ahead from PaymentCompleted; events on
-- different topics have no order between them, so either may come first.
CREATE TABLE shipments (
    order_id         UUID PRIMARY KEY,
    shipment_id      UUID NOT NULL UNIQUE,
    shipping_address JSONB,
    country          TEXT,
    paid             BOOLEAN NOT NULL DEFAULT false,
    status           TEXT NOT NULL CHECK (status IN ('WAITING', 'SCHEDULED')),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    scheduled_at     TIMESTAMPTZ
);
