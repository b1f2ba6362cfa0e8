-- Idempotency keys of POST /orders, per customer: the request they first
-- came with (normalised JSON, compared semantically as JSONB) and the order
-- it placed. Rows older than the key lifetime are purged.
CREATE TABLE idempotency_keys (
    customer_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request JSONB NOT NULL,
    -- Checked at commit: the key is claimed before its order is inserted.
    order_id UUID NOT NULL REFERENCES orders (id) DEFERRABLE INITIALLY DEFERRED,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
