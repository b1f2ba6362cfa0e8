//! A charge the service had declined: its DECLINED row, so that the
//! replayed `StockReserved` is not decided again.

use crate::ledger::Ledger;
use choreo_events::PaymentFailed;

pub(super) fn handle(ledger: &mut Ledger, failed: &PaymentFailed) -> bool {
    if ledger.payment(failed.order_id).is_some() {
        return false;
    }
    ledger.record_without_charge(
        failed.order_id,
        &failed.customer_id,
        failed.amount_cents,
        "DECLINED",
        failed.meta.occurred_at,
    );
    tracing::info!(order_id = %failed.order_id, "decline re-applied");
    true
}
