//! An admin change to a wallet: the amount it added (or took away).

use crate::db;
use choreo_events::WalletSet;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(tx: &mut PgConnection, change: WalletSet) -> Result<bool, HandlerError> {
    if !db::record_wallet_change(tx, &change.meta, &change.customer_id, change.delta_cents).await? {
        return Ok(false);
    }
    db::reapply_wallet_change(
        tx,
        &change.customer_id,
        change.delta_cents,
        change.meta.occurred_at,
    )
    .await?;
    tracing::info!(customer_id = %change.customer_id, delta_cents = change.delta_cents, "wallet change re-applied");
    Ok(true)
}
