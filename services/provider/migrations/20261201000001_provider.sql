-- The provider's ledger: one row per idempotency key, which is the charge's
-- id. A retry with the same key gets the row's answer, never a second
-- charge. A refund of a key never charged leaves a VOIDED tombstone, so a
-- charge arriving after it (a request overtaken by its own cancellation) is
-- refused rather than taken.
CREATE TABLE charges (
    charge_key     TEXT PRIMARY KEY,
    order_id       UUID NOT NULL,
    customer_id    TEXT NOT NULL,
    amount_cents   BIGINT NOT NULL CHECK (amount_cents >= 0),
    currency       TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('CAPTURED', 'DECLINED', 'REFUNDED', 'VOIDED')),
    reason         TEXT,
    captured_cents BIGINT NOT NULL DEFAULT 0 CHECK (captured_cents >= 0),
    refunded_cents BIGINT NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The merchant's reference: the audit reconciles the ledger per order.
CREATE INDEX charges_order_id ON charges (order_id);
