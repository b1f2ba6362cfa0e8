//! Shipping called the shipment off (compensation): the timeline shows it.

use choreo_events::ShipmentCancelled;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    event: ShipmentCancelled,
) -> Result<(), HandlerError> {
    super::record(tx, &event.meta).await
}
