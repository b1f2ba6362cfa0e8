//! Payment declined the charge: the order is cancelled, PAYMENT_DECLINED,
//! and inventory releases the stock when it sees `OrderCancelled`.

use crate::metrics::SagaMetrics;
use choreo_events::{PaymentFailed, cancel_reason::PAYMENT_DECLINED};
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    event: PaymentFailed,
    sagas: &SagaMetrics,
) -> Result<(), HandlerError> {
    let detail = format!("{} for {} cents", event.reason, event.amount_cents);
    super::step_failed(tx, &event.meta, PAYMENT_DECLINED, &detail, sagas).await
}
