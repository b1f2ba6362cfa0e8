-- The payment service's own state: wallets, and one payment per order.
CREATE TABLE wallets (
    customer_id   TEXT PRIMARY KEY,
    balance_cents BIGINT NOT NULL CHECK (balance_cents >= 0),
    currency      TEXT NOT NULL DEFAULT 'EUR',
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The business key of a charge is the order: one per order, whatever the
-- redelivery.
CREATE TABLE payments (
    order_id     UUID PRIMARY KEY,
    payment_id   UUID NOT NULL UNIQUE,
    customer_id  TEXT NOT NULL REFERENCES wallets (customer_id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('COMPLETED', 'REFUNDED')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
