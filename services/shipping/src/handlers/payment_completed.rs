//! The order is paid: ship it, as soon as its address is known.

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
    let shipment = db::record_paid(tx, paid.order_id).await?;
    handler.decide_if_ready(tx, &shipment, &paid.meta).await
}
