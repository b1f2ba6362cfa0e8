//! An order the service had confirmed, at the total it confirmed.

use crate::db::{self, OrderStatus};
use choreo_events::OrderConfirmed;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    confirmed: OrderConfirmed,
) -> Result<bool, HandlerError> {
    if !super::undecided(tx, confirmed.order_id, "OrderConfirmed").await? {
        return Ok(false);
    }
    // The lines' prices come back with StockReserved, in the replay of
    // the inputs; the total the customer was charged is here.
    db::set_total(
        tx,
        confirmed.order_id,
        confirmed.total_cents,
        &confirmed.currency,
        confirmed.meta.occurred_at,
    )
    .await?;
    db::set_status(
        tx,
        confirmed.order_id,
        OrderStatus::Confirmed,
        confirmed.meta.occurred_at,
    )
    .await?;
    db::append_timeline(tx, &confirmed.meta).await?;
    tracing::info!(order_id = %confirmed.order_id, "confirmation re-applied");
    Ok(true)
}
