//! Inventory could not reserve every line: the order is cancelled,
//! OUT_OF_STOCK. Nothing was reserved, so nothing needs releasing.

use crate::metrics::SagaMetrics;
use choreo_events::{StockRejected, cancel_reason::OUT_OF_STOCK};
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

pub(super) async fn handle(
    tx: &mut PgConnection,
    event: StockRejected,
    sagas: &SagaMetrics,
) -> Result<(), HandlerError> {
    let detail = event
        .shortages
        .iter()
        .map(|s| {
            format!(
                "{}: {} wanted, {} available",
                s.sku, s.requested, s.available
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    super::step_failed(tx, &event.meta, OUT_OF_STOCK, &detail, sagas).await
}
