//! An order the service had turned down: its tombstone, so that the
//! replayed `OrderPlaced` is not decided again.

use crate::db;
use choreo_events::StockRejected;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    rejected: StockRejected,
) -> Result<bool, HandlerError> {
    if db::lock_reservation(tx, rejected.order_id).await?.is_some() {
        return Ok(false);
    }
    // The event does not name the customer; the tombstone's customer is
    // only informative.
    db::insert_tombstone(
        tx,
        rejected.order_id,
        "",
        "REJECTED",
        rejected.meta.occurred_at,
    )
    .await?;
    tracing::info!(order_id = %rejected.order_id, "rejection re-applied");
    Ok(true)
}
