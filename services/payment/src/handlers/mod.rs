//! What the payment service does with each event it consumes: one module per
//! event.

mod order_cancelled;
mod stock_reserved;

use crate::provider::Provider;
use choreo_messaging::{Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;

pub(crate) struct PaymentHandler {
    pub(crate) provider: Provider,
}

impl Handler for PaymentHandler {
    // The records `handle` has an arm for: the rest of the topics' records
    // are passed over without a transaction.
    fn reacts_to(&self, record: &str) -> bool {
        matches!(record, "StockReserved" | "OrderCancelled")
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<Outcome, HandlerError> {
        match delivery.message.name() {
            "StockReserved" => stock_reserved::handle(tx, delivery, &self.provider).await?,
            "OrderCancelled" => order_cancelled::handle(tx, delivery, &self.provider).await?,
            _ => return Ok(Outcome::Ignored),
        }
        Ok(Outcome::Applied)
    }
}
