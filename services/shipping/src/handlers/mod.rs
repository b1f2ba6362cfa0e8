//! What the shipping service does with each event it consumes: one module per
//! event.

mod order_cancelled;
mod payment_completed;

use choreo_messaging::{Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;
use std::sync::Arc;

pub(crate) struct ShippingHandler {
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
    // The records `handle` has an arm for: the rest of the topics' records
    // are passed over without a transaction.
    fn reacts_to(&self, record: &str) -> bool {
        matches!(record, "PaymentCompleted" | "OrderCancelled")
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<Outcome, HandlerError> {
        match delivery.message.name() {
            "PaymentCompleted" => payment_completed::handle(self, tx, delivery).await?,
            "OrderCancelled" => order_cancelled::handle(tx, delivery).await?,
            _ => return Ok(Outcome::Ignored),
        }
        Ok(Outcome::Applied)
    }
}
