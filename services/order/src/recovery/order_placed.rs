//! An order the service had accepted: its customer, lines and address, and
//! the idempotency key it was placed with.

use crate::{api, db, idempotency};
use choreo_events::OrderPlaced;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    placed: OrderPlaced,
) -> Result<bool, HandlerError> {
    if db::customer_of(tx, placed.order_id).await?.is_some() {
        return Ok(false);
    }
    db::insert_order(tx, &placed).await?;
    db::append_timeline(tx, &placed.meta).await?;
    if let Some(key) = &placed.idempotency_key {
        let request = api::request_of(&placed).map_err(|e| HandlerError::Permanent {
            reason: format!("the order's request as JSON: {e}"),
        })?;
        idempotency::restore(
            tx,
            &placed.customer_id,
            key,
            &request,
            placed.order_id,
            placed.meta.occurred_at,
        )
        .await?;
    }
    tracing::info!(order_id = %placed.order_id, "order re-inserted");
    Ok(true)
}
