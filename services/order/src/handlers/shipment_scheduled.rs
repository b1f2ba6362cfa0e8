//! Shipping scheduled the shipment, the saga's last step: confirm the order
//! as soon as its prices are known too.

use super::unknown_order;
use crate::db;
use choreo_events::ShipmentScheduled;
use choreo_messaging::{Delivery, HandlerError};
use sqlx::PgConnection;

pub(super) async fn handle(tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
    let event: ShipmentScheduled = delivery.parse()?;
    if db::lock_status(tx, event.order_id).await?.is_none() {
        return Err(unknown_order(event.order_id));
    }
    db::append_timeline(tx, &event.meta).await?;
    super::confirm_if_ready(tx, event.order_id, delivery.traceparent.as_deref()).await
}
