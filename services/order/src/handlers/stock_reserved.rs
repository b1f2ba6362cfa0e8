//! Inventory reserved every line: record the prices and total on the order,
//! and confirm it if the shipment was already scheduled.

use crate::metrics::SagaMetrics;
use crate::{db, saga};
use choreo_events::StockReserved;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    event: StockReserved,
    sagas: &SagaMetrics,
) -> Result<(), HandlerError> {
    super::record(tx, &event.meta).await?;
    db::set_prices(
        tx,
        event.order_id,
        &event.lines,
        event.total_cents,
        &event.currency,
        event.meta.occurred_at,
    )
    .await?;
    // Topics have no order between them: after a consumer restart the
    // shipment may have been seen first.
    saga::confirm_if_ready(tx, event.order_id, sagas).await?;
    Ok(())
}
