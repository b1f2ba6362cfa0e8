//! A charge the service had taken: the wallet debited, the payment
//! COMPLETED. The provider is not asked: it holds the charge already.

use crate::ledger::Ledger;
use choreo_events::PaymentCompleted;
use choreo_messaging::HandlerError;

pub(super) fn handle(
    ledger: &mut Ledger,
    completed: &PaymentCompleted,
) -> Result<bool, HandlerError> {
    if ledger.payment(completed.order_id).is_some() {
        return Ok(false);
    }
    ledger
        .charge(
            completed.order_id,
            &completed.customer_id,
            completed.amount_cents,
            &completed.currency,
            &completed.meta,
        )
        .map_err(super::one_at_a_time)?;
    tracing::info!(order_id = %completed.order_id, "charge re-applied");
    Ok(true)
}
