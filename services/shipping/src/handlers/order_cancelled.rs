//! The order was cancelled: call off a scheduled shipment
//! (`ShipmentCancelled`); a waiting one is marked so it is never scheduled.

use crate::db;
use choreo_events::{EventMeta, OrderCancelled, ShipmentCancelled};
use choreo_messaging::{HandlerError, outbox};
use sqlx::PgConnection;

#[tracing::instrument(skip_all, fields(order_id = tracing::field::Empty), err)]
pub(super) async fn handle(
    tx: &mut PgConnection,
    cancelled: OrderCancelled,
) -> Result<(), HandlerError> {
    let order_id = cancelled.order_id;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let at = cancelled.meta.occurred_at;
    let shipment = db::lock_or_tombstone(tx, order_id, at).await?;
    match shipment.status.as_str() {
        "WAITING" => db::set_status(tx, order_id, "CANCELLED", at).await?,
        "SCHEDULED" => {
            db::set_status(tx, order_id, "CANCELLED", at).await?;
            let event = ShipmentCancelled {
                meta: EventMeta::caused_by::<ShipmentCancelled>(&cancelled.meta, "shipping"),
                order_id,
                shipment_id: shipment.shipment_id,
                reason: cancelled.reason.clone(),
            };
            outbox::enqueue(tx, &event).await?;
            tracing::info!(order_id = %order_id, reason = %cancelled.reason, "shipment cancelled");
        }
        _ => {}
    }
    Ok(())
}
