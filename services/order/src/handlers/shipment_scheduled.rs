//! Shipping scheduled the shipment, the saga's last step: the order is
//! CONFIRMED and `OrderConfirmed` announces the outcome.

use super::unknown_order;
use crate::db::{self, OrderStatus};
use choreo_events::{EventMeta, OrderConfirmed, ShipmentScheduled};
use choreo_messaging::{Delivery, HandlerError, outbox};
use sqlx::{PgConnection, Row};

pub(super) async fn handle(tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
    let event: ShipmentScheduled = delivery.parse()?;
    let Some(status) = db::lock_status(tx, event.order_id).await? else {
        return Err(unknown_order(event.order_id));
    };
    db::append_timeline(tx, &event.meta).await?;
    if status != OrderStatus::Pending {
        tracing::info!(order_id = %event.order_id, ?status, "shipment for an order already decided");
        return Ok(());
    }
    // Shipping follows payment, which follows the reservation, so the total
    // is known here.
    let row = sqlx::query("SELECT total_cents, currency FROM orders WHERE id = $1")
        .bind(event.order_id)
        .fetch_one(&mut *tx)
        .await?;
    let total_cents: Option<i64> = row.try_get("total_cents")?;
    let currency: Option<String> = row.try_get("currency")?;
    let confirmed = OrderConfirmed {
        meta: EventMeta::caused_by::<OrderConfirmed>(&event.meta, "order"),
        order_id: event.order_id,
        total_cents: total_cents.unwrap_or_default(),
        currency: currency.unwrap_or_else(|| "EUR".into()),
    };
    db::set_status(tx, event.order_id, OrderStatus::Confirmed).await?;
    db::append_timeline(tx, &confirmed.meta).await?;
    outbox::enqueue(tx, &confirmed, delivery.traceparent.as_deref()).await?;
    tracing::info!(order_id = %event.order_id, "order confirmed");
    Ok(())
}
