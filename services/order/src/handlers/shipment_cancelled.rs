//! Shipping called the shipment off (compensation): the timeline shows it.

use choreo_events::ShipmentCancelled;
use choreo_messaging::{Delivery, HandlerError};
use sqlx::PgConnection;

pub(super) async fn handle(tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
    let event: ShipmentCancelled = delivery.parse()?;
    super::record(tx, &event.meta).await
}
