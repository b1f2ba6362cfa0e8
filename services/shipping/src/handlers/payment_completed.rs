//! The order is paid: ship it to the address the payment carries.

use super::ShippingHandler;
use crate::db;
use choreo_events::PaymentCompleted;
use choreo_messaging::{Delivery, HandlerError};
use sqlx::PgConnection;

pub(super) async fn handle(
    handler: &ShippingHandler,
    tx: &mut PgConnection,
    delivery: &Delivery,
) -> Result<(), HandlerError> {
    let paid: PaymentCompleted = delivery.parse()?;
    let shipment = db::record_paid(tx, paid.order_id, paid.shipping_address.as_ref()).await?;
    if shipment.country.is_none() && shipment.status == "WAITING" {
        // Only a payment from before the address travelled with the saga
        // sends none, and only a shipping service from before then stored
        // one from OrderPlaced. With neither, no retry helps: the dead
        // letter says why, and the order's deadline cancels and refunds it.
        return Err(HandlerError::Permanent {
            reason: format!(
                "PaymentCompleted for order {} carries no shipping address and none is stored: \
                 upgrade inventory and payment before shipping",
                paid.order_id
            ),
        });
    }
    handler.decide_if_ready(tx, &shipment, &paid.meta).await
}
