//! Re-deriving the service's state from its own topic, for a replay after
//! the database was restored from a backup: one module per event the
//! service publishes.
//!
//! Its decisions (reserved, rejected, released) and its admin changes
//! (`ProductSet`) are facts on the topic. Re-applied in the order it
//! committed them (the replay sorts by the outbox id each carries), they
//! bring stock and reservations back exactly as they were, however orders
//! competed for the last units, before the replay of the inputs finds each
//! order decided and decides nothing anew. What the restored database holds
//! already is left alone: each handler checks the business key (the order's
//! reservation, the change's id) and answers `Ignored`.

mod product_set;
mod stock_rejected;
mod stock_released;
mod stock_reserved;

use choreo_messaging::{Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;

pub(crate) struct Recovery;

impl Handler for Recovery {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<Outcome, HandlerError> {
        let applied = match delivery.message.name() {
            "ProductSet" => product_set::handle(tx, delivery).await?,
            "StockReserved" => stock_reserved::handle(tx, delivery).await?,
            "StockRejected" => stock_rejected::handle(tx, delivery).await?,
            "StockReleased" => stock_released::handle(tx, delivery).await?,
            _ => false,
        };
        Ok(Outcome::applied_if(applied))
    }
}
