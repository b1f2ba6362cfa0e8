//! An admin change to a wallet: the amount it added (or took away).

use crate::ledger::Ledger;
use choreo_events::WalletSet;
use choreo_messaging::HandlerError;

pub(super) fn handle(ledger: &mut Ledger, change: &WalletSet) -> Result<bool, HandlerError> {
    if !ledger.record_wallet_change(&change.meta, &change.customer_id, change.delta_cents) {
        return Ok(false);
    }
    ledger
        .reapply_wallet_change(
            &change.customer_id,
            change.delta_cents,
            change.meta.occurred_at,
        )
        .map_err(super::one_at_a_time)?;
    tracing::info!(customer_id = %change.customer_id, delta_cents = change.delta_cents, "wallet change re-applied");
    Ok(true)
}
