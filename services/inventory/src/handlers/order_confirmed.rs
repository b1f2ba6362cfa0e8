//! The order was confirmed: its reserved stock leaves the warehouse
//! (`reserved` → `shipped`), which keeps the catalog's numbers conserved.

use crate::db::{self, Settlement};
use choreo_events::OrderConfirmed;
use choreo_messaging::HandlerError;
use sqlx::PgConnection;

#[tracing::instrument(skip_all, fields(order_id = tracing::field::Empty), err)]
pub(super) async fn handle(
    tx: &mut PgConnection,
    confirmed: OrderConfirmed,
) -> Result<(), HandlerError> {
    tracing::Span::current().record("order_id", tracing::field::display(confirmed.order_id));
    if db::lock_reservation(tx, confirmed.order_id)
        .await?
        .as_deref()
        == Some("RESERVED")
    {
        // As of the confirmation: no event of this service's tells of it.
        db::settle_reservation(
            tx,
            confirmed.order_id,
            Settlement::Ship,
            confirmed.meta.occurred_at,
        )
        .await?;
    }
    Ok(())
}
