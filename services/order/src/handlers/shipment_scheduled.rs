//! Shipping scheduled the shipment, the saga's last step: confirm the order
//! as soon as its prices are known too.

use crate::metrics::SagaMetrics;
use crate::saga;
use choreo_events::ShipmentScheduled;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    event: ShipmentScheduled,
    sagas: &SagaMetrics,
) -> Result<(), HandlerError> {
    super::record(tx, &event.meta).await?;
    super::record_payment(tx, &event.meta, event.payment.as_ref()).await?;
    saga::confirm_if_ready(tx, event.order_id, sagas).await?;
    Ok(())
}
