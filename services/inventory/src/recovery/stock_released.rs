//! A reservation the service had given back to the free stock.

use crate::stock::{Settlement, Status, Stock};
use choreo_events::StockReleased;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    released: StockReleased,
) -> Result<bool, HandlerError> {
    let mut stock = Stock::lock_order(tx, released.order_id, Vec::new()).await?;
    if stock.status(released.order_id) != Some(Status::Reserved) {
        return Ok(false);
    }
    stock.settle(
        released.order_id,
        Settlement::Release,
        released.meta.occurred_at,
    );
    stock.save(tx).await?;
    tracing::info!(order_id = %released.order_id, "release re-applied");
    Ok(true)
}
