//! Payment credited the charge back (compensation): the timeline shows it,
//! and the payment it refunds if no shipping event brought that yet.

use choreo_events::PaymentRefunded;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    event: PaymentRefunded,
) -> Result<(), HandlerError> {
    super::record(tx, &event.meta).await?;
    super::record_payment(tx, &event.meta, event.payment.as_ref()).await
}
