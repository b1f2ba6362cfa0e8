//! Payment took the money: the order's timeline shows it.

use choreo_events::PaymentCompleted;
use choreo_messaging::{Delivery, HandlerError};
use sqlx::PgConnection;

pub(super) async fn handle(tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
    let event: PaymentCompleted = delivery.parse()?;
    super::record(tx, &event.meta).await
}
