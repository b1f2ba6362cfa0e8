//! What the inventory service does with each event it consumes: one module
//! per event. Each decides on the rows of [`Stock`], in memory; a run of
//! events (a batch of one partition's, or a single one) locks those rows
//! once before and writes them once after.

mod order_cancelled;
mod order_confirmed;
mod order_placed;

use crate::stock::{Stock, Wanted};
use choreo_events::{OrderEvent, Record, choreography};
use choreo_messaging::{Batched, Delivery, Handler, HandlerError, Outcome, outbox};
use sqlx::PgConnection;

pub struct InventoryHandler;

impl Handler for InventoryHandler {
    type Input = OrderEvent;

    const BATCHES: bool = true;

    fn reacts_to(&self, record: Record) -> bool {
        choreography::INVENTORY.reacts_to(record)
    }

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
        let mut wanted = Wanted::default();
        for Batched { event, .. } in &batch {
            match event {
                OrderEvent::Placed(e) => {
                    wanted.orders.push(e.order_id);
                    wanted.skus.extend(e.lines.iter().map(|l| l.sku.clone()));
                }
                OrderEvent::Cancelled(e) => wanted.orders.push(e.order_id),
                OrderEvent::Confirmed(e) => wanted.orders.push(e.order_id),
            }
        }
        let mut stock = Stock::lock(tx, wanted).await?;
        let mut emitted = outbox::Pending::default();
        for Batched { event, span, .. } in &batch {
            // In the event's span: its logs, and the trace its emission
            // continues.
            span.in_scope(|| match event {
                OrderEvent::Placed(e) => order_placed::handle(&mut stock, e, &mut emitted),
                OrderEvent::Cancelled(e) => order_cancelled::handle(&mut stock, e, &mut emitted),
                OrderEvent::Confirmed(e) => {
                    order_confirmed::handle(&mut stock, e);
                    Ok(())
                }
            })?;
        }
        stock.save(tx).await?;
        emitted.write(tx).await?;
        Ok(vec![Outcome::Applied; batch.len()])
    }
}
