//! The inventory service: the catalog and its stock.
//!
//! When an order is placed it reserves every line at the catalog price, all
//! or nothing, and emits `StockReserved` with the priced lines and total, or
//! `StockRejected` when stock is short. When the order is cancelled it
//! releases the reservation (`StockReleased`); when it is confirmed the stock
//! is shipped. Its HTTP API serves the catalog and lets admins set products.
//!
//! - `api`: the HTTP API the edge calls.
//! - `handlers/`: one module per event the service reacts to.
//! - `recovery/`: re-deriving its state from its own topic, for a replay
//!   after a restore; one module per event it publishes.
//! - `stock`: the rows a run of order events locks, decides on in memory
//!   and writes back, with a few statements for the whole run.
//! - `db`: its tables, for the API and the admin changes.

mod api;
mod db;
mod handlers;
mod recovery;
mod stock;

use choreo_events::choreography::{self, Consumer};
use choreo_kit::{CancellationToken, internal_auth::Signer};
use choreo_service::{LaunchError, Running, ServiceSettings, Spec};
use serde::{Deserialize, Serialize};
use std::future::Future;

pub use db::Product;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub service: ServiceSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            service: ServiceSettings::local("inventory", 8083),
        }
    }
}

/// The service's own migrations (the outbox and inbox come with
/// `choreo_service::connect`).
pub fn migrations() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// The service's reaction to its input events, for tests that feed it
/// events directly through [`choreo_messaging::apply`].
pub fn handler() -> impl choreo_messaging::Handler {
    handlers::InventoryHandler
}

/// The inventory service, as the skeleton runs it.
pub struct InventoryService;

impl choreo_service::SagaService for InventoryService {
    const CHOREOGRAPHY: &'static Consumer = &choreography::INVENTORY;
    type Settings = Settings;
    type Handler = handlers::InventoryHandler;
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

    fn replay_handler(_: &Settings, _: Signer) -> Result<Self::Handler, LaunchError> {
        Ok(handlers::InventoryHandler)
    }

    /// Re-applies its own published events (its decisions and admin
    /// changes) to its database: what the database holds already is
    /// ignored.
    fn recovery() -> Option<Self::Recovery> {
        Some(recovery::Recovery)
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
    let pool = choreo_service::connect(&settings.service, migrations()).await?;
    let spec = Spec {
        choreography: <InventoryService as choreo_service::SagaService>::CHOREOGRAPHY,
        handler: handlers::InventoryHandler,
        router: api::router(pool.clone()),
        metrics: Default::default(),
        background: Vec::new(),
        on_scrape: None,
    };
    choreo_service::launch(&settings.service, pool, spec, shutdown).await
}
