-- Compensation and conservation: stock leaves a reservation either back to
-- the free stock (released) or out of the warehouse (shipped, once the order
-- is confirmed). `stocked_total` is everything ever put on the shelf, so that
-- available + reserved + shipped = stocked_total can be audited.
ALTER TABLE products
    ADD COLUMN shipped INT NOT NULL DEFAULT 0 CHECK (shipped >= 0),
    ADD COLUMN stocked_total INT NOT NULL DEFAULT 0 CHECK (stocked_total >= 0);
UPDATE products SET stocked_total = available + reserved;

-- A reservation row is also the order's tombstone: REJECTED when stock was
-- short, VOIDED when the order was cancelled before anything was reserved.
ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_status_check
    CHECK (status IN ('RESERVED', 'RELEASED', 'SHIPPED', 'REJECTED', 'VOIDED'));
