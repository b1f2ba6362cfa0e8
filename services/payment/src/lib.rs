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
//! - `ledger`: its tables as a replay's run of its own events locks,
//!   changes and saves them.

mod api;
mod db;
mod handlers;
mod ledger;
mod provider;
mod recovery;

use choreo_events::choreography::{self, Consumer};
use choreo_kit::{CancellationToken, internal_auth::Signer};
use choreo_service::{LaunchError, Running, ServiceSettings, Spec};
use serde::{Deserialize, Serialize};
use std::future::Future;

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

/// The service's re-derivation of its state from its own topic, for tests
/// that feed it its events directly.
pub fn recovery() -> impl choreo_messaging::Handler {
    recovery::Recovery
}

/// As [`handler`], charging through the provider `settings` name, with
/// calls signed by `signer`.
///
/// # Errors
/// When the provider's HTTP client cannot be built.
pub fn handler_with_provider(
    settings: &ProviderSettings,
    signer: Signer,
) -> Result<impl choreo_messaging::Handler, reqwest::Error> {
    Ok(handlers::PaymentHandler {
        provider: provider::Provider::new(settings, signer)?,
    })
}

fn provider_client(
    settings: &ProviderSettings,
    signer: Signer,
) -> Result<provider::Provider, LaunchError> {
    provider::Provider::new(settings, signer).map_err(|e| LaunchError::Setup {
        what: "the payment provider client",
        source: Box::new(e),
    })
}

/// The payment service, as the skeleton runs it.
pub struct PaymentService;

impl choreo_service::SagaService for PaymentService {
    const CHOREOGRAPHY: &'static Consumer = &choreography::PAYMENT;
    type Settings = Settings;
    type Handler = handlers::PaymentHandler;
    type Recovery = recovery::Recovery;

    fn service(settings: &Settings) -> &ServiceSettings {
        &settings.service
    }

    fn migrations() -> sqlx::migrate::Migrator {
        migrations()
    }

    fn start(
        settings: Settings,
        shutdown: CancellationToken,
    ) -> impl Future<Output = Result<Running, LaunchError>> {
        start(settings, shutdown)
    }

    /// Charges through the configured provider, as the service does.
    fn replay_handler(settings: &Settings, signer: Signer) -> Result<Self::Handler, LaunchError> {
        if settings.provider.url.is_none() {
            eprintln!(
                "warning: payment has no provider configured (CHOREO_PROVIDER__URL): \
                 replayed charges are decided by the wallet alone, as by a payment service without one"
            );
        }
        Ok(handlers::PaymentHandler {
            provider: provider_client(&settings.provider, signer)?,
        })
    }

    /// Re-applies its own published events (its decisions and admin
    /// changes) to its database, without asking the provider: what the
    /// database holds already is ignored.
    fn recovery() -> Option<Self::Recovery> {
        Some(recovery::Recovery)
    }
}

/// The pool cannot serve a replica that holds every input partition.
#[derive(Debug, thiserror::Error)]
#[error(
    "database_max_connections is {pool}, but a replica may hold all {partitions} partitions of its input topics, each keeping a connection through its provider call: the API and the relay would wait for connections. Set CHOREO_DATABASE_MAX_CONNECTIONS above {partitions}"
)]
pub struct PoolTooSmall {
    pub pool: u32,
    pub partitions: i32,
}

/// Refuses a pool no larger than the partitions payment consumes: each
/// partition's worker holds a connection for the whole of its transaction,
/// provider call included. A broker that cannot be asked now is no reason
/// not to start; the check is then skipped, and says so.
async fn enough_connections(settings: &ServiceSettings) -> Result<(), LaunchError> {
    let topics: Vec<String> = <PaymentService as choreo_service::SagaService>::CHOREOGRAPHY
        .inputs
        .iter()
        .map(|t| settings.kafka.topics().name(*t))
        .collect();
    match choreo_messaging::admin::total_partitions(&settings.kafka, &topics).await {
        Ok(partitions) if i64::from(settings.database_max_connections) <= i64::from(partitions) => {
            Err(LaunchError::Setup {
                what: "the database pool",
                source: Box::new(PoolTooSmall {
                    pool: settings.database_max_connections,
                    partitions,
                }),
            })
        }
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %choreo_telemetry::error_chain(&e), "cannot count the input partitions; the pool size is not checked");
            Ok(())
        }
    }
}

/// Starts the service; it runs until `shutdown` is cancelled.
///
/// # Errors
/// When the database, broker or address cannot be set up.
pub async fn start(
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<Running, LaunchError> {
    let signer = Signer::service(&settings.service.internal_auth, "payment")
        .map_err(LaunchError::InternalAuth)?;
    let provider = provider_client(&settings.provider, signer)?;
    enough_connections(&settings.service).await?;
    let pool = choreo_service::connect(&settings.service, migrations()).await?;
    let spec = Spec {
        choreography: <PaymentService as choreo_service::SagaService>::CHOREOGRAPHY,
        handler: handlers::PaymentHandler { provider },
        router: api::router(pool.clone()),
        metrics: Default::default(),
        background: Vec::new(),
        on_scrape: None,
    };
    choreo_service::launch(&settings.service, pool, spec, shutdown).await
}
