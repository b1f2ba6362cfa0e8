-- Why a cancelled order was cancelled: OUT_OF_STOCK, PAYMENT_DECLINED,
-- SHIPPING_UNAVAILABLE, CUSTOMER_CANCELLED or TIMEOUT, with a human detail.
ALTER TABLE orders
    ADD COLUMN cancel_reason TEXT,
    ADD COLUMN cancel_detail TEXT;
-- The deadline sweeper looks for old PENDING orders.
CREATE INDEX orders_pending ON orders (created_at) WHERE status = 'PENDING';
