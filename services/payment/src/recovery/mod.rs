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
            "WalletSet" => wallet_set::handle(tx, delivery).await?,
            "PaymentCompleted" => payment_completed::handle(tx, delivery).await?,
            "PaymentFailed" => payment_failed::handle(tx, delivery).await?,
            "PaymentRefunded" => payment_refunded::handle(tx, delivery).await?,
            _ => false,
        };
        Ok(Outcome::applied_if(applied))
    }
}
