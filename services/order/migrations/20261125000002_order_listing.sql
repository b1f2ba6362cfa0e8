-- GET /orders lists newest first, one page after another: keyset order
-- (created_at, id), for one customer or for all.
DROP INDEX orders_customer;
CREATE INDEX orders_customer ON orders (customer_id, created_at DESC, id DESC);
CREATE INDEX orders_newest ON orders (created_at DESC, id DESC);
