//! What the inventory service does with each event it consumes: one module
//! per event.

mod order_placed;

use choreo_messaging::{Delivery, Handler, HandlerError};
use sqlx::PgConnection;

pub(crate) struct InventoryHandler;

impl Handler for InventoryHandler {
    fn handles(&self, record: &str) -> bool {
        record == "OrderPlaced"
    }

    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
        match delivery.message.name() {
            "OrderPlaced" => order_placed::handle(tx, delivery).await,
            _ => Ok(()),
        }
    }
}
