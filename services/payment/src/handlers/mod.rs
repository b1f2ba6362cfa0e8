//! What the payment service does with each event it consumes: one module per
//! event.

mod order_cancelled;
mod stock_reserved;

use crate::provider::Provider;
use choreo_events::{InventoryEvent, OrderEvent, Record, choreography, inputs::PaymentInput};
use choreo_messaging::{Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;

pub struct PaymentHandler {
    pub(crate) provider: Provider,
}

impl Handler for PaymentHandler {
    type Input = PaymentInput;

    fn reacts_to(&self, record: Record) -> bool {
        choreography::PAYMENT.reacts_to(record)
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        _: &Delivery,
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
