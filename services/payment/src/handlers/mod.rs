//! What the payment service does with each event it consumes: one module per
//! event.

mod order_cancelled;
mod stock_reserved;

use crate::{db, provider::Provider};
use choreo_events::{InventoryEvent, OrderEvent, Record, choreography, inputs::PaymentInput};
use choreo_messaging::{Batched, Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;
use tracing::Instrument;

pub struct PaymentHandler {
    pub(crate) provider: Provider,
}

impl PaymentHandler {
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: PaymentInput,
    ) -> Result<Outcome, HandlerError> {
        use InventoryEvent as Inventory;
        match event {
            PaymentInput::Inventory(Inventory::StockReserved(e)) => {
                stock_reserved::handle(tx, e, &self.provider).await?;
            }
            PaymentInput::Order(OrderEvent::Cancelled(e)) => {
                order_cancelled::handle(tx, e, &self.provider).await?;
            }
            // Passed over, each for the reason `choreography::PAYMENT` gives.
            PaymentInput::Order(OrderEvent::Placed(_) | OrderEvent::Confirmed(_))
            | PaymentInput::Inventory(
                Inventory::StockRejected(_)
                | Inventory::StockReleased(_)
                | Inventory::ProductSet(_),
            ) => return Ok(Outcome::Ignored),
        }
        Ok(Outcome::Applied)
    }
}

impl Handler for PaymentHandler {
    type Input = PaymentInput;

    const BATCHES: bool = true;

    fn reacts_to(&self, record: Record) -> bool {
        choreography::PAYMENT.reacts_to(record)
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        _: &Delivery,
        event: PaymentInput,
    ) -> Result<Outcome, HandlerError> {
        self.apply(tx, event).await
    }

    /// A replay after a restore finds nearly every order decided, from the
    /// service's own topic: one statement asks for the orders of the whole
    /// batch, and an event whose answer is settled by what is stored takes
    /// no round trip of its own. The rest go one after another as
    /// [`Handler::handle`] takes them, each deciding on its locked row.
    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        batch: Vec<Batched<'_, PaymentInput>>,
    ) -> Result<Vec<Outcome>, HandlerError> {
        let orders: Vec<_> = batch
            .iter()
            .filter_map(|Batched { event, .. }| match event {
                PaymentInput::Inventory(InventoryEvent::StockReserved(e)) => Some(e.order_id),
                PaymentInput::Order(OrderEvent::Cancelled(e)) => Some(e.order_id),
                _ => None,
            })
            .collect();
        // Read unlocked: only a decision that never changes again counts.
        let decided = db::decisions(tx, &orders).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for Batched { event, span, .. } in batch {
            let settled = match &event {
                // Any decision stands against a (re)reservation.
                PaymentInput::Inventory(InventoryEvent::StockReserved(e)) => {
                    decided.contains_key(&e.order_id)
                }
                // A charge still COMPLETED is refunded; DECLINED, VOIDED
                // and REFUNDED leave nothing to give back.
                PaymentInput::Order(OrderEvent::Cancelled(e)) => {
                    decided.get(&e.order_id).is_some_and(|s| s != "COMPLETED")
                }
                _ => false,
            };
            let outcome = if settled {
                span.in_scope(|| tracing::info!("order already decided; nothing to do"));
                Outcome::Applied
            } else {
                self.apply(tx, event).instrument(span).await?
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}
