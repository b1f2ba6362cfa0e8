//! A reservation the service had made: its lines at the prices it took.

use crate::db::{self, Reserved};
use choreo_events::StockReserved;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    reserved: StockReserved,
) -> Result<bool, HandlerError> {
    if db::lock_reservation(tx, reserved.order_id).await?.is_some() {
        return Ok(false);
    }
    let lines: Vec<Reserved<'_>> = reserved
        .lines
        .iter()
        .map(|l| Reserved {
            sku: &l.sku,
            quantity: l.quantity,
            unit_price_cents: l.unit_price_cents,
        })
        .collect();
    db::insert_reservation(
        tx,
        reserved.order_id,
        &reserved.customer_id,
        reserved.total_cents,
        &reserved.currency,
        &lines,
        reserved.meta.occurred_at,
    )
    .await?;
    tracing::info!(order_id = %reserved.order_id, "reservation re-applied");
    Ok(true)
}
