//! Inventory reserved every line: record the prices and total on the order,
//! and confirm it if the shipment was already scheduled.

use super::unknown_order;
use crate::db;
use choreo_events::StockReserved;
use choreo_messaging::{Delivery, HandlerError};
use sqlx::PgConnection;

pub(super) async fn handle(tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
    let event: StockReserved = delivery.parse()?;
    if db::lock_status(tx, event.order_id).await?.is_none() {
        return Err(unknown_order(event.order_id));
    }
    db::set_prices(
        tx,
        event.order_id,
        &event.lines,
        event.total_cents,
        &event.currency,
    )
    .await?;
    db::append_timeline(tx, &event.meta).await?;
    // Topics have no order between them: after a consumer restart the
    // shipment may have been seen first.
    super::confirm_if_ready(tx, event.order_id, delivery.traceparent.as_deref()).await
}
