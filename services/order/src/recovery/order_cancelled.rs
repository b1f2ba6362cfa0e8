//! An order the service had cancelled, with the reason it gave.

use crate::restored::Restored;
use choreo_events::OrderCancelled;

pub(super) fn handle(orders: &mut Restored, cancelled: &OrderCancelled) -> bool {
    let status = orders.status(cancelled.order_id);
    if !super::undecided(status, cancelled.order_id, "OrderCancelled") {
        return false;
    }
    orders.cancel(&cancelled.meta, &cancelled.reason, &cancelled.detail);
    tracing::info!(order_id = %cancelled.order_id, reason = %cancelled.reason, "cancellation re-applied");
    true
}
