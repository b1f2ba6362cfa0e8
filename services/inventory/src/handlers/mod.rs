//! What the inventory service does with each event it consumes: one module
//! per event.

mod order_cancelled;
mod order_confirmed;
mod order_placed;

use choreo_messaging::{Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;

pub(crate) struct InventoryHandler;

impl Handler for InventoryHandler {
    // The records `handle` has an arm for: the rest of the topics' records
    // are passed over without a transaction.
    fn reacts_to(&self, record: &str) -> bool {
        matches!(record, "OrderPlaced" | "OrderCancelled" | "OrderConfirmed")
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<Outcome, HandlerError> {
        match delivery.message.name() {
            "OrderPlaced" => order_placed::handle(tx, delivery).await?,
            "OrderCancelled" => order_cancelled::handle(tx, delivery).await?,
            "OrderConfirmed" => order_confirmed::handle(tx, delivery).await?,
            _ => return Ok(Outcome::Ignored),
        }
        Ok(Outcome::Applied)
    }
}
