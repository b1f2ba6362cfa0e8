//! Payment took the money: the order's timeline shows it.

use super::unknown_order;
use crate::db;
use choreo_events::PaymentCompleted;
use choreo_messaging::{Delivery, HandlerError};
use sqlx::PgConnection;

pub(super) async fn handle(tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
    let event: PaymentCompleted = delivery.parse()?;
    if db::lock_status(tx, event.order_id).await?.is_none() {
        return Err(unknown_order(event.order_id));
    }
    db::append_timeline(tx, &event.meta).await?;
    Ok(())
}
