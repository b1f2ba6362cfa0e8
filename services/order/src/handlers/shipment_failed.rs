//! Shipping cannot ship the order: it is cancelled, SHIPPING_UNAVAILABLE;
//! payment refunds and inventory releases when they see `OrderCancelled`.

use crate::metrics::SagaMetrics;
use choreo_events::{ShipmentFailed, cancel_reason::SHIPPING_UNAVAILABLE};
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    event: ShipmentFailed,
    sagas: &SagaMetrics,
) -> Result<(), HandlerError> {
    let detail = format!("{}: {}", event.reason, event.country);
    super::step_failed(tx, &event.meta, SHIPPING_UNAVAILABLE, &detail, sagas).await?;
    super::record_payment(tx, &event.meta, event.payment.as_ref()).await
}
