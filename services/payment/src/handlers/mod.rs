//! What the payment service does with each event it consumes: one module per
//! event.

mod order_cancelled;
mod stock_reserved;

use choreo_messaging::{Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;

pub(crate) struct PaymentHandler;

impl Handler for PaymentHandler {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<Outcome, HandlerError> {
        match delivery.message.name() {
            "StockReserved" => stock_reserved::handle(tx, delivery).await?,
            "OrderCancelled" => order_cancelled::handle(tx, delivery).await?,
            _ => return Ok(Outcome::Ignored),
        }
        Ok(Outcome::Applied)
    }
}
