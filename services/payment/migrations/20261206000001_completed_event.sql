-- The envelope of the PaymentCompleted a charge was announced with, so that
-- the refund (PaymentRefunded) can carry it: the order service records the
-- payment in its timeline from the events that answer it instead of reading
-- PaymentCompleted itself. Null for charges recorded before this column.
ALTER TABLE payments ADD COLUMN completed_event JSONB;
