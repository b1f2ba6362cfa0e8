//! Re-deriving the service's state from its own topic, for a replay after
//! the database was restored from a backup: one module per event the
//! service publishes.
//!
//! Its decisions (charged, declined, refunded) and its admin changes
//! (`WalletSet`) are facts on the topic. Re-applied in the order it
//! committed them, they bring wallets and payments back exactly as they
//! were, however orders competed for the last of a wallet, and without
//! asking the payment provider anything: the provider already holds what
//! these events say. The replay of the inputs then finds each order
//! decided. What the restored database holds already is left alone: each
//! handler checks the business key (the order's payment, the change's id).

mod payment_completed;
mod payment_failed;
mod payment_refunded;
mod wallet_set;

use choreo_events::PaymentEvent;
use choreo_messaging::{Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;

pub struct Recovery;

impl Handler for Recovery {
    type Input = PaymentEvent;

    async fn handle(
        &self,
        tx: &mut PgConnection,
        _: &Delivery,
        event: PaymentEvent,
    ) -> Result<Outcome, HandlerError> {
        let applied = match event {
            PaymentEvent::WalletSet(e) => wallet_set::handle(tx, e).await?,
            PaymentEvent::Completed(e) => payment_completed::handle(tx, e).await?,
            PaymentEvent::Failed(e) => payment_failed::handle(tx, e).await?,
            PaymentEvent::Refunded(e) => payment_refunded::handle(tx, e).await?,
        };
        Ok(Outcome::applied_if(applied))
    }
}
