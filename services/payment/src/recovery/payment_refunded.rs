//! A charge the service had given back: the wallet credited, the payment
//! REFUNDED. The provider is not asked: it made the refund already.

use crate::db;
use choreo_events::PaymentRefunded;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    refunded: PaymentRefunded,
) -> Result<bool, HandlerError> {
    let Some(payment) = db::lock_payment(tx, refunded.order_id).await? else {
        return Ok(false);
    };
    if payment.status != "COMPLETED" {
        return Ok(false);
    }
    db::refund(tx, refunded.order_id, &payment, refunded.meta.occurred_at).await?;
    tracing::info!(order_id = %refunded.order_id, "refund re-applied");
    Ok(true)
}
