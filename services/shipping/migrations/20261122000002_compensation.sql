-- FAILED: the destination is not served, nothing was scheduled.
-- CANCELLED: the order was cancelled; a scheduled shipment was called off
-- (ShipmentCancelled), and a waiting one will never be scheduled.
ALTER TABLE shipments DROP CONSTRAINT shipments_status_check;
ALTER TABLE shipments ADD CONSTRAINT shipments_status_check
    CHECK (status IN ('WAITING', 'SCHEDULED', 'FAILED', 'CANCELLED'));
