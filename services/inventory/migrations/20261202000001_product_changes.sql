-- Every admin change to a product (PUT /products/{sku}), by the id of the
-- ProductSet event that publishes it. A replay of the inventory topic after
-- a restore applies the changes missing here and skips the others; the rows
-- are kept (unlike the inbox's), so a replay from any age skips them.
CREATE TABLE product_changes (
    event_id    UUID PRIMARY KEY,
    sku         TEXT NOT NULL,
    stock_delta INT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
