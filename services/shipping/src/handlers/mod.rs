//! What the shipping service does with each event it consumes: one module per
//! event, and the step both lead to.

mod order_placed;
mod payment_completed;

use crate::db::{self, Shipment};
use choreo_events::{EventMeta, ShipmentScheduled};
use choreo_messaging::{Delivery, Handler, HandlerError, outbox};
use sqlx::PgConnection;

pub(crate) struct ShippingHandler;

impl Handler for ShippingHandler {
    fn handles(&self, record: &str) -> bool {
        matches!(record, "OrderPlaced" | "PaymentCompleted")
    }

    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
        match delivery.message.name() {
            "OrderPlaced" => order_placed::handle(tx, delivery).await,
            "PaymentCompleted" => payment_completed::handle(tx, delivery).await,
            _ => Ok(()),
        }
    }
}

/// Schedules the shipment once both the address and the payment are known;
/// `cause` is whichever event completed the pair.
async fn schedule_if_ready(
    tx: &mut PgConnection,
    shipment: &Shipment,
    cause: &EventMeta,
    traceparent: Option<&str>,
) -> Result<(), HandlerError> {
    let Some(country) = shipment.country.clone() else {
        return Ok(());
    };
    if !shipment.paid || shipment.status == "SCHEDULED" {
        return Ok(());
    }
    db::mark_scheduled(tx, shipment.order_id).await?;
    let event = ShipmentScheduled {
        meta: EventMeta::once_per_order::<ShipmentScheduled>(
            shipment.order_id,
            cause.event_id,
            "shipping",
        ),
        order_id: shipment.order_id,
        shipment_id: shipment.shipment_id,
        country,
    };
    outbox::enqueue(tx, &event, traceparent).await?;
    tracing::info!(order_id = %shipment.order_id, "shipment scheduled");
    Ok(())
}
