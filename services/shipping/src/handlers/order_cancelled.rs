//! The order was cancelled: call off a scheduled shipment
//! (`ShipmentCancelled`); a waiting one is marked so it is never scheduled.

use crate::shipments::{Shipments, Status};
use choreo_events::{EventMeta, OrderCancelled, ShipmentCancelled};
use choreo_messaging::{HandlerError, outbox};

pub(super) fn handle(
    shipments: &mut Shipments,
    cancelled: &OrderCancelled,
    emitted: &mut outbox::Pending,
) -> Result<(), HandlerError> {
    let order_id = cancelled.order_id;
    let at = cancelled.meta.occurred_at;
    let shipment = shipments.get_or_tombstone(order_id, at);
    let (status, shipment_id) = (shipment.status, shipment.shipment_id);
    match status {
        Status::Waiting => shipments.set_status(order_id, Status::Cancelled, at),
        Status::Scheduled => {
            shipments.set_status(order_id, Status::Cancelled, at);
            emitted.push(&ShipmentCancelled {
                meta: EventMeta::caused_by::<ShipmentCancelled>(&cancelled.meta, "shipping"),
                order_id,
                shipment_id,
                reason: cancelled.reason.clone(),
            })?;
            tracing::info!(order_id = %order_id, reason = %cancelled.reason, "shipment cancelled");
        }
        Status::Failed | Status::Cancelled => {}
    }
    Ok(())
}
