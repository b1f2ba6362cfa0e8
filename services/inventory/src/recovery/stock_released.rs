//! A reservation the service had given back to the free stock.

use crate::db::{self, Settlement};
use choreo_events::StockReleased;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    released: StockReleased,
) -> Result<bool, HandlerError> {
    if db::lock_reservation(tx, released.order_id)
        .await?
        .as_deref()
        != Some("RESERVED")
    {
        return Ok(false);
    }
    db::settle_reservation(
        tx,
        released.order_id,
        Settlement::Release,
        released.meta.occurred_at,
    )
    .await?;
    tracing::info!(order_id = %released.order_id, "release re-applied");
    Ok(true)
}
