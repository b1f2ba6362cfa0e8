//! Re-deriving the service's state from its own topic, for a replay after
//! the database was restored from a backup: one module per event the
//! service publishes.
//!
//! Its decisions (charged, declined, refunded) and its admin changes
//! (`WalletSet`) are facts on the topic. Re-applied in the order it
//! committed them, they bring wallets and payments back exactly as they
//! were, however orders competed for the last of a wallet, and without
//! asking the payment provider anything: the provider already holds what
//! these events say. The replay of the inputs then finds each order
//! decided. What the restored database holds already is left alone: each
//! handler checks the business key (the order's payment, the change's id).
//!
//! Each decides on the rows of [`Ledger`], in memory; a run of events (a
//! replay's batch of one partition's, or a single one) locks those rows
//! once before and writes them once after.

mod payment_completed;
mod payment_failed;
mod payment_refunded;
mod wallet_set;

use crate::ledger::{Ledger, Wanted};
use choreo_events::PaymentEvent;
use choreo_messaging::{Batched, Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;

pub struct Recovery;

impl Handler for Recovery {
    type Input = PaymentEvent;

    const BATCHES: bool = true;

    async fn handle(
        &self,
        tx: &mut PgConnection,
        delivery: &Delivery,
        event: PaymentEvent,
    ) -> Result<Outcome, HandlerError> {
        choreo_messaging::handle_alone(self, tx, delivery, event).await
    }

    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        batch: Vec<Batched<'_, PaymentEvent>>,
    ) -> Result<Vec<Outcome>, HandlerError> {
        let mut wanted = Wanted::default();
        for Batched { event, .. } in &batch {
            match event {
                PaymentEvent::WalletSet(e) => {
                    wanted.customers.push(e.customer_id.clone());
                    wanted.changes.push(e.meta.event_id);
                }
                PaymentEvent::Completed(e) => {
                    wanted.orders.push(e.order_id);
                    wanted.customers.push(e.customer_id.clone());
                }
                PaymentEvent::Failed(e) => wanted.orders.push(e.order_id),
                PaymentEvent::Refunded(e) => wanted.orders.push(e.order_id),
            }
        }
        let mut ledger = Ledger::lock(tx, wanted).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for Batched { event, span, .. } in &batch {
            let applied = span.in_scope(|| match event {
                PaymentEvent::WalletSet(e) => wallet_set::handle(&mut ledger, e),
                PaymentEvent::Completed(e) => payment_completed::handle(&mut ledger, e),
                PaymentEvent::Failed(e) => Ok(payment_failed::handle(&mut ledger, e)),
                PaymentEvent::Refunded(e) => payment_refunded::handle(&mut ledger, e),
            })?;
            outcomes.push(Outcome::applied_if(applied));
        }
        ledger.save(tx).await?;
        Ok(outcomes)
    }
}

/// What the run cannot decide in memory (a wallet going below zero) goes
/// again one event at a time, where the database decides it.
fn one_at_a_time(e: impl std::error::Error + Send + Sync + 'static) -> HandlerError {
    HandlerError::Transient(Box::new(e))
}
