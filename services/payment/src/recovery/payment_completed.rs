//! A charge the service had taken: the wallet debited, the payment
//! COMPLETED. The provider is not asked: it holds the charge already.

use crate::db;
use choreo_events::PaymentCompleted;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    completed: PaymentCompleted,
) -> Result<bool, HandlerError> {
    if db::lock_payment(tx, completed.order_id).await?.is_some() {
        return Ok(false);
    }
    db::charge(
        tx,
        completed.order_id,
        &completed.customer_id,
        completed.amount_cents,
        &completed.currency,
        &completed.meta,
    )
    .await?;
    tracing::info!(order_id = %completed.order_id, "charge re-applied");
    Ok(true)
}
