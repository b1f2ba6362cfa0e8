-- Retention purges delete by age in small batches; these indexes keep each
-- batch from scanning the whole table.
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX inbox_received ON inbox (received_at);
