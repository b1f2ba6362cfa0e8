//! What the inventory service does with each event it consumes: one module
//! per event.

mod order_cancelled;
mod order_confirmed;
mod order_placed;

use choreo_events::{OrderEvent, Record, choreography};
use choreo_messaging::{Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;

pub struct InventoryHandler;

impl Handler for InventoryHandler {
    type Input = OrderEvent;

    fn reacts_to(&self, record: Record) -> bool {
        choreography::INVENTORY.reacts_to(record)
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        _: &Delivery,
        event: OrderEvent,
    ) -> Result<Outcome, HandlerError> {
        match event {
            OrderEvent::Placed(e) => order_placed::handle(tx, e).await?,
            OrderEvent::Cancelled(e) => order_cancelled::handle(tx, e).await?,
            OrderEvent::Confirmed(e) => order_confirmed::handle(tx, e).await?,
        }
        Ok(Outcome::Applied)
    }
}
