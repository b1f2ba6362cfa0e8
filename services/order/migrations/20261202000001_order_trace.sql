-- The trace the order was placed in (a W3C traceparent), so that a cancel
-- the deadline sweeper decides later joins the order's trace instead of
-- starting one of its own. Null for orders placed before this column.
ALTER TABLE orders ADD COLUMN traceparent TEXT;
