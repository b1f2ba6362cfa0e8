//! The order was cancelled: give its reservation back to the free stock and
//! say so with `StockReleased`. An order inventory has not reserved for is
//! recorded as VOIDED, so nothing is reserved for it later.

use crate::db::{self, Settlement};
use choreo_events::{EventMeta, OrderCancelled, OrderLine, StockReleased};
use choreo_messaging::{HandlerError, outbox};
use sqlx::PgConnection;

#[tracing::instrument(skip_all, fields(order_id = tracing::field::Empty), err)]
pub(super) async fn handle(
    tx: &mut PgConnection,
    cancelled: OrderCancelled,
) -> Result<(), HandlerError> {
    tracing::Span::current().record("order_id", tracing::field::display(cancelled.order_id));
    match db::lock_reservation(tx, cancelled.order_id)
        .await?
        .as_deref()
    {
        Some("RESERVED") => {}
        Some(_) => return Ok(()),
        None => {
            db::insert_tombstone(
                tx,
                cancelled.order_id,
                "",
                "VOIDED",
                cancelled.meta.occurred_at,
            )
            .await?;
            return Ok(());
        }
    }
    let meta = EventMeta::caused_by::<StockReleased>(&cancelled.meta, "inventory");
    let lines = db::settle_reservation(
        tx,
        cancelled.order_id,
        Settlement::Release,
        meta.occurred_at,
    )
    .await?;
    let event = StockReleased {
        meta,
        order_id: cancelled.order_id,
        reason: cancelled.reason.clone(),
        lines: lines
            .into_iter()
            .map(|(sku, quantity)| OrderLine { sku, quantity })
            .collect(),
    };
    outbox::enqueue(tx, &event).await?;
    tracing::info!(order_id = %cancelled.order_id, reason = %cancelled.reason, "stock released");
    Ok(())
}
