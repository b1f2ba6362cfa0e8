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
//!
//! Each decides on the orders of [`Restored`], in memory; a run of events
//! (a replay's batch of one partition's, or a single one) locks those
//! orders once before and writes them once after.

mod order_cancelled;
mod order_confirmed;
mod order_placed;

use crate::{db::OrderStatus, idempotency, restored::Restored};
use choreo_events::OrderEvent;
use choreo_messaging::{Batched, Delivery, Handler, HandlerError, Outcome};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

pub struct Recovery;

/// An idempotency key an order re-inserted was placed with, restored once
/// the order is written.
struct Key {
    customer: String,
    key: String,
    request: serde_json::Value,
    order_id: Uuid,
    placed_at: DateTime<Utc>,
}

impl Handler for Recovery {
    type Input = OrderEvent;

    const BATCHES: bool = true;

    async fn handle(
        &self,
        tx: &mut PgConnection,
        delivery: &Delivery,
        event: OrderEvent,
    ) -> Result<Outcome, HandlerError> {
        choreo_messaging::handle_alone(self, tx, delivery, event).await
    }

    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        batch: Vec<Batched<'_, OrderEvent>>,
    ) -> Result<Vec<Outcome>, HandlerError> {
        let ids = batch
            .iter()
            .map(|Batched { event, .. }| match event {
                OrderEvent::Placed(e) => e.order_id,
                OrderEvent::Confirmed(e) => e.order_id,
                OrderEvent::Cancelled(e) => e.order_id,
            })
            .collect();
        let mut orders = Restored::lock(tx, ids).await?;
        let mut keys = Vec::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        for Batched { event, span, .. } in &batch {
            let applied = span.in_scope(|| match event {
                OrderEvent::Placed(e) => order_placed::handle(&mut orders, e, &mut keys),
                OrderEvent::Confirmed(e) => Ok(order_confirmed::handle(&mut orders, e)),
                OrderEvent::Cancelled(e) => Ok(order_cancelled::handle(&mut orders, e)),
            })?;
            outcomes.push(Outcome::applied_if(applied));
        }
        orders.save(tx).await?;
        for k in keys {
            idempotency::restore(tx, &k.customer, &k.key, &k.request, k.order_id, k.placed_at)
                .await?;
        }
        Ok(outcomes)
    }
}

/// Whether the outcome `event_type` published for `order_id` is still to be
/// re-applied: the order is PENDING. An order the database does not hold
/// cannot be, as its `OrderPlaced` was committed (and is re-applied) first;
/// one decided otherwise is left as it is, and said.
fn undecided(status: Option<OrderStatus>, order_id: Uuid, event_type: &str) -> bool {
    match status {
        Some(OrderStatus::Pending) => true,
        None => {
            tracing::warn!(%order_id, event_type, "an outcome for an order this database does not hold; left alone");
            false
        }
        Some(status) => {
            if !matches!(
                (status, event_type),
                (OrderStatus::Confirmed, "OrderConfirmed")
                    | (OrderStatus::Cancelled, "OrderCancelled")
            ) {
                tracing::error!(%order_id, event_type, status = status.as_str(), "the database holds another outcome than the one published; left alone");
            }
            false
        }
    }
}
