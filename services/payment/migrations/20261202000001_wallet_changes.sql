-- Every admin change to a wallet (PUT /wallets/{customer_id}), by the id of
-- the WalletSet event that publishes it. A replay of the payment topic after
-- a restore applies the changes missing here and skips the others; the rows
-- are kept (unlike the inbox's), so a replay from any age skips them.
CREATE TABLE wallet_changes (
    event_id    UUID PRIMARY KEY,
    customer_id TEXT NOT NULL,
    delta_cents BIGINT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
