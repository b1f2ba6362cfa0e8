//! An order the service had confirmed, at the total it confirmed.

use crate::restored::Restored;
use choreo_events::OrderConfirmed;

pub(super) fn handle(orders: &mut Restored, confirmed: &OrderConfirmed) -> bool {
    let status = orders.status(confirmed.order_id);
    if !super::undecided(status, confirmed.order_id, "OrderConfirmed") {
        return false;
    }
    // The lines' prices come back with StockReserved, in the replay of
    // the inputs; the total the customer was charged is here.
    orders.confirm(&confirmed.meta, confirmed.total_cents, &confirmed.currency);
    tracing::info!(order_id = %confirmed.order_id, "confirmation re-applied");
    true
}
