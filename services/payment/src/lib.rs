//! The payment service: customer wallets and the charge for each order.
//!
//! When stock is reserved it debits the customer's wallet by the order's
//! total and emits `PaymentCompleted`, or `PaymentFailed` when it cannot.
//! When the order is cancelled it refunds the charge (`PaymentRefunded`).
//! Its HTTP API lets admins set a wallet.
//!
//! - `api`: the HTTP API the edge calls.
//! - `handlers/`: one module per event the service reacts to.
//! - `recovery/`: re-deriving its state from its own topic, for a replay
//!   after a restore; one module per event it publishes.
//! - `provider`: the payment provider it charges through.
//! - `db`: its tables.

mod api;
mod db;
mod handlers;
mod provider;
mod recovery;

use choreo_events::Topic;
use choreo_kit::CancellationToken;
use choreo_service::{LaunchError, Running, ServiceSettings, Spec};
use serde::{Deserialize, Serialize};

pub use db::Wallet;
pub use provider::ProviderSettings;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub service: ServiceSettings,
    #[serde(default)]
    pub provider: ProviderSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            service: ServiceSettings::local("payment", 8084),
            provider: ProviderSettings::default(),
        }
    }
}

const INPUTS: &[Topic] = choreo_events::inputs::PAYMENT;

/// The service's own migrations (the outbox and inbox come with
/// `choreo_service::connect`).
pub fn migrations() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// The service's reaction to its input events, without a provider, for
/// tests that feed it events directly through [`choreo_messaging::apply`].
pub fn handler() -> impl choreo_messaging::Handler {
    handlers::PaymentHandler {
        provider: provider::Provider::none(),
    }
}

/// As [`handler`], charging through the provider `settings` name.
///
/// # Errors
/// When the provider's HTTP client cannot be built.
pub fn handler_with_provider(
    settings: &ProviderSettings,
) -> Result<impl choreo_messaging::Handler, reqwest::Error> {
    Ok(handlers::PaymentHandler {
        provider: provider::Provider::new(settings)?,
    })
}

/// Re-applies the service's own published events (its decisions and
/// admin changes) to its database, for `choreo replay`, without asking the
/// provider: what the database holds already is ignored.
pub fn recovery_handler() -> impl choreo_messaging::Handler {
    recovery::Recovery
}

/// The topic [`recovery_handler`] reads.
pub const OWN_TOPIC: Topic = Topic::Payment;

/// Starts the service; it runs until `shutdown` is cancelled.
///
/// # Errors
/// When the database, broker or address cannot be set up.
pub async fn start(
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<Running, LaunchError> {
    let provider = provider::Provider::new(&settings.provider).map_err(|e| LaunchError::Setup {
        what: "the payment provider client",
        source: Box::new(e),
    })?;
    let pool = choreo_service::connect(&settings.service, migrations()).await?;
    let spec = Spec {
        name: "payment",
        inputs: INPUTS,
        handler: handlers::PaymentHandler { provider },
        router: api::router(pool.clone()),
        metrics: Default::default(),
        background: Vec::new(),
    };
    choreo_service::launch(&settings.service, pool, spec, shutdown).await
}
