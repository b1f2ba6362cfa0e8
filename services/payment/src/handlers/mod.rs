//! What the payment service does with each event it consumes: one module per
//! event.

mod stock_reserved;

use choreo_messaging::{Delivery, Handler, HandlerError};
use sqlx::PgConnection;

pub(crate) struct PaymentHandler;

impl Handler for PaymentHandler {
    fn handles(&self, record: &str) -> bool {
        record == "StockReserved"
    }

    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
        match delivery.message.name() {
            "StockReserved" => stock_reserved::handle(tx, delivery).await,
            _ => Ok(()),
        }
    }
}
