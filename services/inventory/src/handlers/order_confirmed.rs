//! The order was confirmed: its reserved stock leaves the warehouse
//! (`reserved` → `shipped`), which keeps the catalog's numbers conserved.

use crate::stock::{Settlement, Status, Stock};
use choreo_events::OrderConfirmed;

pub(super) fn handle(stock: &mut Stock, confirmed: &OrderConfirmed) {
    if stock.status(confirmed.order_id) == Some(Status::Reserved) {
        // As of the confirmation: no event of this service's tells of it.
        stock.settle(
            confirmed.order_id,
            Settlement::Ship,
            confirmed.meta.occurred_at,
        );
        tracing::info!(order_id = %confirmed.order_id, "stock shipped");
    }
}
