//! The order was cancelled: give its reservation back to the free stock and
//! say so with `StockReleased`. An order inventory has not reserved for is
//! recorded as VOIDED, so nothing is reserved for it later.

use crate::stock::{Settlement, Status, Stock};
use choreo_events::{EventMeta, OrderCancelled, OrderLine, StockReleased};
use choreo_messaging::{HandlerError, outbox};

pub(super) fn handle(
    stock: &mut Stock,
    cancelled: &OrderCancelled,
    emitted: &mut outbox::Pending,
) -> Result<(), HandlerError> {
    match stock.status(cancelled.order_id) {
        Some(Status::Reserved) => {}
        Some(_) => return Ok(()),
        None => {
            stock.tombstone(
                cancelled.order_id,
                "",
                Status::Voided,
                cancelled.meta.occurred_at,
            );
            return Ok(());
        }
    }
    let meta = EventMeta::caused_by::<StockReleased>(&cancelled.meta, "inventory");
    let lines = stock.settle(cancelled.order_id, Settlement::Release, meta.occurred_at);
    emitted.push(&StockReleased {
        meta,
        order_id: cancelled.order_id,
        reason: cancelled.reason.clone(),
        lines: lines
            .into_iter()
            .map(|line| OrderLine {
                sku: line.sku,
                quantity: line.quantity,
            })
            .collect(),
    })?;
    tracing::info!(order_id = %cancelled.order_id, reason = %cancelled.reason, "stock released");
    Ok(())
}
