//! A reservation the service had made: its lines at the prices it took.

use crate::stock::{Line, Stock};
use choreo_events::StockReserved;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    reserved: StockReserved,
) -> Result<bool, HandlerError> {
    let skus = reserved.lines.iter().map(|l| l.sku.clone()).collect();
    let mut stock = Stock::lock_order(tx, reserved.order_id, skus).await?;
    if stock.status(reserved.order_id).is_some() {
        return Ok(false);
    }
    // As it was decided then: whatever the stock reads now, the lines are
    // held again (a product gone, or stock short, fails the write: the
    // restored database is not the one the decision was made on).
    let lines = reserved
        .lines
        .iter()
        .map(|l| Line {
            sku: l.sku.clone(),
            quantity: l.quantity,
            unit_price_cents: l.unit_price_cents,
        })
        .collect();
    stock.reserve(
        reserved.order_id,
        &reserved.customer_id,
        reserved.total_cents,
        &reserved.currency,
        lines,
        reserved.meta.occurred_at,
    );
    stock.save(tx).await?;
    tracing::info!(order_id = %reserved.order_id, "reservation re-applied");
    Ok(true)
}
