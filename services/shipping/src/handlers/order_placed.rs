//! An order was placed: remember where it ships to.

use super::ShippingHandler;
use crate::db;
use choreo_events::OrderPlaced;
use choreo_messaging::{Delivery, HandlerError};
use sqlx::PgConnection;

pub(super) async fn handle(
    handler: &ShippingHandler,
    tx: &mut PgConnection,
    delivery: &Delivery,
) -> Result<(), HandlerError> {
    let order: OrderPlaced = delivery.parse()?;
    let shipment = db::record_address(tx, order.order_id, &order.shipping_address).await?;
    handler.decide_if_ready(tx, &shipment, &order.meta).await
}
