//! What the order service does with each event it consumes: one module per
//! event.

mod payment_completed;
mod shipment_scheduled;
mod stock_reserved;

use choreo_messaging::{Delivery, Handler, HandlerError};
use sqlx::PgConnection;
use tokio::sync::watch;

pub(crate) struct OrderHandler {
    changed: watch::Sender<u64>,
}

impl OrderHandler {
    pub(crate) fn new(changed: watch::Sender<u64>) -> Self {
        Self { changed }
    }
}

impl Handler for OrderHandler {
    fn handles(&self, record: &str) -> bool {
        matches!(
            record,
            "StockReserved" | "PaymentCompleted" | "ShipmentScheduled"
        )
    }

    async fn handle(&self, tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
        match delivery.message.name() {
            "StockReserved" => stock_reserved::handle(tx, delivery).await?,
            "PaymentCompleted" => payment_completed::handle(tx, delivery).await?,
            "ShipmentScheduled" => shipment_scheduled::handle(tx, delivery).await?,
            _ => return Ok(()),
        }
        // Wakes `?wait=` readers. They re-read after our commit lands or
        // on their next poll; waking a little early costs one read.
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        Ok(())
    }
}

/// An event about an order this service never took: it did not come from
/// this deployment's saga, and no retry will change that.
fn unknown_order(order_id: uuid::Uuid) -> HandlerError {
    HandlerError::Permanent {
        reason: format!("no order {order_id} in this service"),
    }
}
