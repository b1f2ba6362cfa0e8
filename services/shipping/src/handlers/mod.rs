//! What the shipping service does with each event it consumes: one module per
//! event. Each decides on the rows of [`Shipments`], in memory; a run of
//! events (a batch of one partition's, or a single one) locks those rows
//! once before and writes them once after.

mod order_cancelled;
mod payment_completed;

use crate::shipments::Shipments;
use choreo_events::{OrderEvent, PaymentEvent, Record, choreography, inputs::ShippingInput};
use choreo_messaging::{Batched, Delivery, Handler, HandlerError, Outcome, outbox};
use sqlx::PgConnection;
use std::sync::Arc;

pub struct ShippingHandler {
    /// ISO 3166-1 alpha-2 codes of the countries shipped to.
    served_countries: Arc<[String]>,
}

impl ShippingHandler {
    pub(crate) fn new(served_countries: &[String]) -> Self {
        Self {
            served_countries: served_countries
                .iter()
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        }
    }
}

impl Handler for ShippingHandler {
    type Input = ShippingInput;

    const BATCHES: bool = true;

    fn reacts_to(&self, record: Record) -> bool {
        choreography::SHIPPING.reacts_to(record)
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        delivery: &Delivery,
        event: ShippingInput,
    ) -> Result<Outcome, HandlerError> {
        choreo_messaging::handle_alone(self, tx, delivery, event).await
    }

    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        batch: Vec<Batched<'_, ShippingInput>>,
    ) -> Result<Vec<Outcome>, HandlerError> {
        let orders = batch
            .iter()
            .filter_map(|Batched { event, .. }| match event {
                ShippingInput::Payment(PaymentEvent::Completed(e)) => Some(e.order_id),
                ShippingInput::Order(OrderEvent::Cancelled(e)) => Some(e.order_id),
                _ => None,
            })
            .collect();
        let mut shipments = Shipments::lock(tx, orders).await?;
        let mut emitted = outbox::Pending::default();
        let mut outcomes = Vec::with_capacity(batch.len());
        for Batched { event, span, .. } in &batch {
            // In the event's span: its logs, and the trace its emission
            // continues.
            let outcome = span.in_scope(|| match event {
                ShippingInput::Payment(PaymentEvent::Completed(e)) => {
                    payment_completed::handle(self, &mut shipments, e, &mut emitted)
                        .map(|()| Outcome::Applied)
                }
                ShippingInput::Order(OrderEvent::Cancelled(e)) => {
                    order_cancelled::handle(&mut shipments, e, &mut emitted)
                        .map(|()| Outcome::Applied)
                }
                // Passed over, each for the reason `choreography::SHIPPING`
                // gives.
                ShippingInput::Order(OrderEvent::Placed(_) | OrderEvent::Confirmed(_))
                | ShippingInput::Payment(
                    PaymentEvent::Failed(_)
                    | PaymentEvent::Refunded(_)
                    | PaymentEvent::WalletSet(_),
                ) => Ok(Outcome::Ignored),
            })?;
            outcomes.push(outcome);
        }
        shipments.save(tx).await?;
        emitted.write(tx).await?;
        Ok(outcomes)
    }
}
