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
    // An inventory older than the field named no customer; the tombstone's
    // customer is only informative.
    db::insert_tombstone(
        tx,
        rejected.order_id,
        rejected.customer_id.as_deref().unwrap_or_default(),
        "REJECTED",
        rejected.meta.occurred_at,
    )
    .await?;
    tracing::info!(order_id = %rejected.order_id, "rejection re-applied");
    Ok(true)
}
