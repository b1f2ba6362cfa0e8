//! The shipping service: schedules a shipment once an order is paid.
//!
//! `PaymentCompleted` is the go-ahead and carries the address (inventory and
//! payment pass it on from `OrderPlaced`, so this service opens no
//! transaction for `OrderPlaced`): it schedules the shipment
//! (`ShipmentScheduled`), or fails it for a country not served
//! (`ShipmentFailed`). When the order is cancelled a scheduled shipment is
//! called off (`ShipmentCancelled`).
//!
//! - `api`: the HTTP API (shipment lookup).
//! - `handlers/`: one module per event the service reacts to.
//! - `shipments`: its table as a run of events locks, changes and saves it.
//! - `db`: its table as the API reads it.

mod api;
mod db;
mod handlers;
mod shipments;

use choreo_events::choreography::{self, Consumer};
use choreo_kit::{CancellationToken, internal_auth::Signer};
use choreo_service::{LaunchError, Running, ServiceSettings, Spec};
use serde::{Deserialize, Serialize};
use std::future::Future;

pub use db::Shipment;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub service: ServiceSettings,
    /// ISO 3166-1 alpha-2 codes of the countries shipped to; an order to any
    /// other fails with `ShipmentFailed` and is cancelled.
    pub served_countries: Vec<String>,
}

/// The European Union, the EEA, Switzerland, the United Kingdom and North America.
const DEFAULT_COUNTRIES: &[&str] = &[
    "AT", "BE", "BG", "CA", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB", "GR", "HR",
    "HU", "IE", "IS", "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI",
    "SK", "US",
];

impl Default for Settings {
    fn default() -> Self {
        Self {
            service: ServiceSettings::local("shipping", 8085),
            served_countries: DEFAULT_COUNTRIES.iter().map(|c| (*c).to_owned()).collect(),
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
pub fn handler(settings: &Settings) -> impl choreo_messaging::Handler {
    handlers::ShippingHandler::new(&settings.served_countries)
}

/// The shipping service, as the skeleton runs it.
pub struct ShippingService;

impl choreo_service::SagaService for ShippingService {
    const CHOREOGRAPHY: &'static Consumer = &choreography::SHIPPING;
    type Settings = Settings;
    type Handler = handlers::ShippingHandler;
    type Recovery = choreo_service::NoRecovery<choreo_events::ShippingEvent>;

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

    fn replay_handler(settings: &Settings, _: Signer) -> Result<Self::Handler, LaunchError> {
        Ok(handlers::ShippingHandler::new(&settings.served_countries))
    }

    /// None: it decides from its inputs alone (the address, the payment),
    /// the same way every time, so its replay reads its inputs only.
    fn recovery() -> Option<Self::Recovery> {
        None
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
        choreography: <ShippingService as choreo_service::SagaService>::CHOREOGRAPHY,
        handler: handler(&settings),
        router: api::router(pool.clone()),
        metrics: Default::default(),
        background: Vec::new(),
        on_scrape: None,
    };
    choreo_service::launch(&settings.service, pool, spec, shutdown).await
}
