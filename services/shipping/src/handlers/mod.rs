//! What the shipping service does with each event it consumes: one module per
//! event.

mod order_cancelled;
mod payment_completed;

use choreo_events::{OrderEvent, PaymentEvent, Record, choreography, inputs::ShippingInput};
use choreo_messaging::{Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;
use std::sync::Arc;

pub struct ShippingHandler {
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
    type Input = ShippingInput;

    fn reacts_to(&self, record: Record) -> bool {
        choreography::SHIPPING.reacts_to(record)
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        _: &Delivery,
        event: ShippingInput,
    ) -> Result<Outcome, HandlerError> {
        match event {
            ShippingInput::Payment(PaymentEvent::Completed(e)) => {
                payment_completed::handle(self, tx, e).await?;
            }
            ShippingInput::Order(OrderEvent::Cancelled(e)) => {
                order_cancelled::handle(tx, e).await?;
            }
            // Passed over, each for the reason `choreography::SHIPPING` gives.
            ShippingInput::Order(OrderEvent::Placed(_) | OrderEvent::Confirmed(_))
            | ShippingInput::Payment(
                PaymentEvent::Failed(_) | PaymentEvent::Refunded(_) | PaymentEvent::WalletSet(_),
            ) => return Ok(Outcome::Ignored),
        }
        Ok(Outcome::Applied)
    }
}
