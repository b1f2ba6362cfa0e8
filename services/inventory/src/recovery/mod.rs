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

use choreo_events::InventoryEvent;
use choreo_messaging::{Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;

pub struct Recovery;

impl Handler for Recovery {
    type Input = InventoryEvent;

    async fn handle(
        &self,
        tx: &mut PgConnection,
        _: &Delivery,
        event: InventoryEvent,
    ) -> Result<Outcome, HandlerError> {
        let applied = match event {
            InventoryEvent::ProductSet(e) => product_set::handle(tx, e).await?,
            InventoryEvent::StockReserved(e) => stock_reserved::handle(tx, e).await?,
            InventoryEvent::StockRejected(e) => stock_rejected::handle(tx, e).await?,
            InventoryEvent::StockReleased(e) => stock_released::handle(tx, e).await?,
        };
        Ok(Outcome::applied_if(applied))
    }
}
