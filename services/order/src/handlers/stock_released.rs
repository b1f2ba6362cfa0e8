//! Inventory gave the reservation back (compensation): the timeline shows it.

use choreo_events::StockReleased;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    event: StockReleased,
) -> Result<(), HandlerError> {
    super::record(tx, &event.meta).await
}
