//! A charge the service had given back: the wallet credited, the payment
//! REFUNDED. The provider is not asked: it made the refund already.

use crate::ledger::Ledger;
use choreo_events::PaymentRefunded;
use choreo_messaging::HandlerError;

pub(super) fn handle(
    ledger: &mut Ledger,
    refunded: &PaymentRefunded,
) -> Result<bool, HandlerError> {
    if ledger.payment(refunded.order_id).map(|p| p.status) != Some("COMPLETED") {
        return Ok(false);
    }
    ledger
        .refund(refunded.order_id, refunded.meta.occurred_at)
        .map_err(super::one_at_a_time)?;
    tracing::info!(order_id = %refunded.order_id, "refund re-applied");
    Ok(true)
}
