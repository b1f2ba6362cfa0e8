//! An order the service had accepted: its customer, lines and address, and
//! the idempotency key it was placed with.

use super::Key;
use crate::{api, restored::Restored};
use choreo_events::OrderPlaced;
use choreo_messaging::HandlerError;

pub(super) fn handle(
    orders: &mut Restored,
    placed: &OrderPlaced,
    keys: &mut Vec<Key>,
) -> Result<bool, HandlerError> {
    if orders.status(placed.order_id).is_some() {
        return Ok(false);
    }
    orders.place(placed);
    if let Some(key) = &placed.idempotency_key {
        let request = api::request_of(placed).map_err(|e| HandlerError::Permanent {
            reason: format!("the order's request as JSON: {e}"),
        })?;
        keys.push(Key {
            customer: placed.customer_id.clone(),
            key: key.clone(),
            request,
            order_id: placed.order_id,
            placed_at: placed.meta.occurred_at,
        });
    }
    tracing::info!(order_id = %placed.order_id, "order re-inserted");
    Ok(true)
}
