//! Payment credited the charge back (compensation): the timeline shows it.

use choreo_events::PaymentRefunded;
use choreo_messaging::{Delivery, HandlerError};
use sqlx::PgConnection;

pub(super) async fn handle(tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
    let event: PaymentRefunded = delivery.parse()?;
    super::record(tx, &event.meta).await
}
