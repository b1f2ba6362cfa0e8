//! An order the service had cancelled, with the reason it gave.

use crate::db;
use choreo_events::OrderCancelled;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    cancelled: OrderCancelled,
) -> Result<bool, HandlerError> {
    if !super::undecided(tx, cancelled.order_id, "OrderCancelled").await? {
        return Ok(false);
    }
    db::set_cancelled(
        tx,
        cancelled.order_id,
        &cancelled.reason,
        &cancelled.detail,
        cancelled.meta.occurred_at,
    )
    .await?;
    db::append_timeline(tx, &cancelled.meta).await?;
    tracing::info!(order_id = %cancelled.order_id, reason = %cancelled.reason, "cancellation re-applied");
    Ok(true)
}
