//! An order the service had turned down: its tombstone, so that the
//! replayed `OrderPlaced` is not decided again.

use crate::stock::{Status, Stock};
use choreo_events::StockRejected;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    rejected: StockRejected,
) -> Result<bool, HandlerError> {
    let mut stock = Stock::lock_order(tx, rejected.order_id, Vec::new()).await?;
    if stock.status(rejected.order_id).is_some() {
        return Ok(false);
    }
    // An inventory older than the field named no customer; the tombstone's
    // customer is only informative.
    stock.tombstone(
        rejected.order_id,
        rejected.customer_id.as_deref().unwrap_or_default(),
        Status::Rejected,
        rejected.meta.occurred_at,
    );
    stock.save(tx).await?;
    tracing::info!(order_id = %rejected.order_id, "rejection re-applied");
    Ok(true)
}
