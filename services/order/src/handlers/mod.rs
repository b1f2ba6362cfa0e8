//! What the order service does with each event it consumes: one module per
//! event.

mod payment_completed;
mod shipment_scheduled;
mod stock_reserved;

use crate::db::{self, OrderStatus};
use choreo_events::{EventMeta, OrderConfirmed};
use choreo_messaging::{Delivery, Handler, HandlerError, outbox};
use sqlx::PgConnection;
use tokio::sync::watch;
use uuid::Uuid;

pub(crate) struct OrderHandler {
    changed: watch::Sender<u64>,
}

impl OrderHandler {
    pub(crate) fn new(changed: watch::Sender<u64>) -> Self {
        Self { changed }
    }
}

impl Handler for OrderHandler {
    fn handles(&self, record: &str) -> bool {
        matches!(
            record,
            "StockReserved" | "PaymentCompleted" | "ShipmentScheduled"
        )
    }

    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
        match delivery.message.name() {
            "StockReserved" => stock_reserved::handle(tx, delivery).await?,
            "PaymentCompleted" => payment_completed::handle(tx, delivery).await?,
            "ShipmentScheduled" => shipment_scheduled::handle(tx, delivery).await?,
            _ => return Ok(()),
        }
        // Wakes `?wait=` readers. They re-read after our commit lands or
        // on their next poll; waking a little early costs one read.
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        Ok(())
    }
}

/// An event about an order this service never took: it did not come from
/// this deployment's saga, and no retry will change that.
fn unknown_order(order_id: uuid::Uuid) -> HandlerError {
    HandlerError::Permanent {
        reason: format!("no order {order_id} in this service"),
    }
}

/// Confirms a PENDING order once both facts it needs are in: the prices
/// (`StockReserved`) and the scheduled shipment (`ShipmentScheduled`, which
/// shipping only emits after payment). They arrive on different topics in
/// either order, so both handlers call this; the order row is locked by the
/// caller, so only one of them can confirm.
async fn confirm_if_ready(
    tx: &mut PgConnection,
    order_id: Uuid,
    traceparent: Option<&str>,
) -> Result<(), HandlerError> {
    if db::lock_status(tx, order_id).await? != Some(OrderStatus::Pending) {
        return Ok(());
    }
    let Some(shipment_event) = db::timeline_event(tx, order_id, "ShipmentScheduled").await? else {
        return Ok(());
    };
    let Some((total_cents, currency)) = db::total(tx, order_id).await? else {
        tracing::info!(order_id = %order_id, "shipment scheduled before the prices arrived; waiting for them");
        return Ok(());
    };
    let confirmed = OrderConfirmed {
        meta: EventMeta::once_per_order::<OrderConfirmed>(order_id, shipment_event, "order"),
        order_id,
        total_cents,
        currency,
    };
    db::set_status(tx, order_id, OrderStatus::Confirmed).await?;
    db::append_timeline(tx, &confirmed.meta).await?;
    outbox::enqueue(tx, &confirmed, traceparent).await?;
    tracing::info!(order_id = %order_id, total_cents, "order confirmed");
    Ok(())
}
