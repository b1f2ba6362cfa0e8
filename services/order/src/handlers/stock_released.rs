//! Inventory gave the reservation back (compensation): the timeline shows it.

use choreo_events::StockReleased;
use choreo_messaging::{Delivery, HandlerError};
use sqlx::PgConnection;

pub(super) async fn handle(tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
    let event: StockReleased = delivery.parse()?;
    super::record(tx, &event.meta).await
}
