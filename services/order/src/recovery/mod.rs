//! Re-deriving the service's orders from its own topic, for a replay after
//! the database was restored from a backup: one module per event the
//! service publishes.
//!
//! An order's placement and its outcome are facts on `order.events`.
//! Re-applied in the order the service committed them (the replay sorts by
//! the outbox id each carries), they bring back every order the backup
//! forgot, with its idempotency key, and every outcome decided since, before
//! the replay of the inputs re-records the saga's steps in each timeline
//! and finds every order decided already. What the restored database holds
//! already is left alone: each handler checks the order and answers
//! `Ignored`.

mod order_cancelled;
mod order_confirmed;
mod order_placed;

use crate::db::{self, OrderStatus};
use choreo_events::OrderEvent;
use choreo_messaging::{Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;
use uuid::Uuid;

pub struct Recovery;

impl Handler for Recovery {
    type Input = OrderEvent;

    async fn handle(
        &self,
        tx: &mut PgConnection,
        _: &Delivery,
        event: OrderEvent,
    ) -> Result<Outcome, HandlerError> {
        let applied = match event {
            OrderEvent::Placed(e) => order_placed::handle(tx, e).await?,
            OrderEvent::Confirmed(e) => order_confirmed::handle(tx, e).await?,
            OrderEvent::Cancelled(e) => order_cancelled::handle(tx, e).await?,
        };
        Ok(Outcome::applied_if(applied))
    }
}

/// Whether the outcome `event_type` published for `order_id` is still to be
/// re-applied: the order is PENDING. An order the database does not hold
/// cannot be, as its `OrderPlaced` was committed (and is re-applied) first;
/// one decided otherwise is left as it is, and said.
async fn undecided(
    tx: &mut PgConnection,
    order_id: Uuid,
    event_type: &str,
) -> Result<bool, HandlerError> {
    match db::lock_status(tx, order_id).await? {
        Some(OrderStatus::Pending) => Ok(true),
        None => {
            tracing::warn!(%order_id, event_type, "an outcome for an order this database does not hold; left alone");
            Ok(false)
        }
        Some(status) => {
            if !matches!(
                (status, event_type),
                (OrderStatus::Confirmed, "OrderConfirmed")
                    | (OrderStatus::Cancelled, "OrderCancelled")
            ) {
                tracing::error!(%order_id, event_type, status = status.as_str(), "the database holds another outcome than the one published; left alone");
            }
            Ok(false)
        }
    }
}
