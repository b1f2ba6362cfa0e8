//! A charge the service had declined: its DECLINED row, so that the
//! replayed `StockReserved` is not decided again.

use crate::db;
use choreo_events::PaymentFailed;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    failed: PaymentFailed,
) -> Result<bool, HandlerError> {
    if db::lock_payment(tx, failed.order_id).await?.is_some() {
        return Ok(false);
    }
    db::record_without_charge(
        tx,
        failed.order_id,
        &failed.customer_id,
        failed.amount_cents,
        "DECLINED",
        failed.meta.occurred_at,
    )
    .await?;
    tracing::info!(order_id = %failed.order_id, "decline re-applied");
    Ok(true)
}
