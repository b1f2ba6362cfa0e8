//! An admin change: its name and price, and the stock it put on the shelf.

use crate::db;
use choreo_events::ProductSet;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    change: ProductSet,
) -> Result<bool, HandlerError> {
    if !db::record_product_change(tx, &change.meta, &change.sku, change.stock_delta).await? {
        return Ok(false);
    }
    db::reapply_product_change(
        tx,
        &change.sku,
        &change.name,
        change.price_cents,
        change.stock_delta,
        change.meta.occurred_at,
    )
    .await?;
    tracing::info!(sku = %change.sku, stock_delta = change.stock_delta, "product change re-applied");
    Ok(true)
}
