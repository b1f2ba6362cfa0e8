-- Refunds, declines and tombstones. A payments row is the order's one
-- decision in this service: COMPLETED (charged), REFUNDED (charged, then
-- credited back), DECLINED (nothing charged), VOIDED (cancelled before a
-- charge was asked for; a late StockReserved then charges nothing).
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('COMPLETED', 'REFUNDED', 'DECLINED', 'VOIDED'));
-- A declined order may name a customer without a wallet.
ALTER TABLE payments DROP CONSTRAINT payments_customer_id_fkey;
ALTER TABLE payments
    ADD COLUMN charged_cents BIGINT NOT NULL DEFAULT 0 CHECK (charged_cents >= 0),
    ADD COLUMN refunded_cents BIGINT NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0);
UPDATE payments SET charged_cents = amount_cents WHERE status = 'COMPLETED';
