//! The order service: the saga's beginning and end.
//!
//! It stores an order as PENDING and emits `OrderPlaced`; it follows the
//! saga's events from inventory, payment and shipping into the order's
//! timeline (a `PaymentCompleted` with the shipping event that answers it,
//! which carries its envelope); and it alone decides the outcome (`saga`): CONFIRMED with
//! `OrderConfirmed` once the shipment is scheduled, or CANCELLED with
//! `OrderCancelled` and a reason when a step says no, the customer cancels or
//! the saga deadline passes (`deadline`). It calls no other service.
//!
//! - `api`: the HTTP API the edge calls.
//! - `flow`: the saga's steps as they run, for the dashboard's live graph.
//! - `handlers/`: one module per event the service reacts to.
//! - `recovery/`: one module per event it publishes, re-applied by a replay
//!   after its database was restored.
//! - `rebuild`: the timeline rebuilt from the topics alone.
//! - `db`: its tables.
//! - `restored`, `steps`: its tables as a replay's run of events (its own,
//!   its inputs' for orders decided) locks, changes and saves them.

mod api;
mod changes;
mod db;
mod deadline;
mod flow;
mod handlers;
mod idempotency;
mod metrics;
pub mod rebuild;
mod recovery;
mod restored;
mod saga;
mod steps;

use choreo_kit::{CancellationToken, internal_auth::Signer};
use choreo_service::{LaunchError, Running, ServiceSettings, Spec};
use serde::{Deserialize, Serialize};
use std::{future::Future, time::Duration};

pub use db::{Line, Order, OrderStatus, OrderSummary, TimelineEntry};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub service: ServiceSettings,
    /// The longest `?wait=` a client may ask for, in seconds.
    pub max_wait_seconds: u64,
    /// An order not CONFIRMED or CANCELLED this long after it was placed is
    /// cancelled with reason TIMEOUT.
    pub saga_deadline_seconds: f64,
    /// How long an `Idempotency-Key` of `POST /orders` is remembered; a
    /// retry after that places a new order.
    pub idempotency_key_hours: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            service: ServiceSettings::local("order", 8082),
            max_wait_seconds: 30,
            saga_deadline_seconds: 30.0,
            idempotency_key_hours: 24.0,
        }
    }
}

/// The events the order service follows.
/// The service's own migrations (the outbox and inbox come with
/// `choreo_service::connect`).
pub fn migrations() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// The service's re-derivation of its orders from its own topic, for tests
/// that feed it its events directly.
pub fn recovery() -> impl choreo_messaging::Handler {
    recovery::Recovery
}

/// The service's reaction to its input events, for tests that feed it
/// events directly through [`choreo_messaging::apply`].
pub fn handler() -> impl choreo_messaging::Handler {
    detached_handler()
}

/// The handler without a running service's change notices and metrics
/// (nobody waits on a test's or a replay's orders).
fn detached_handler() -> handlers::OrderHandler {
    handlers::OrderHandler::new(
        changes::OrderChanges::default(),
        metrics::SagaMetrics::default(),
    )
}

/// The order service, as the skeleton runs it.
pub struct OrderService;

impl choreo_service::SagaService for OrderService {
    const CHOREOGRAPHY: &'static choreo_events::choreography::Consumer =
        &choreo_events::choreography::ORDER;
    type Settings = Settings;
    type Handler = handlers::OrderHandler;
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
        Ok(detached_handler())
    }

    /// Re-applies its own published events (placements and outcomes)
    /// when a replay re-reads its topic after a restore.
    fn recovery() -> Option<Self::Recovery> {
        Some(recovery::Recovery)
    }

    fn tools() -> Vec<choreo_service::Tool<Settings>> {
        vec![rebuild::command::TOOL]
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
    // Told of each committed change to an order, so that `?wait=` requests
    // in this process wake at once.
    let changes = changes::OrderChanges::default();
    let key_lifetime = Duration::from_secs_f64(settings.idempotency_key_hours.max(0.0) * 3600.0);
    let sagas = metrics::SagaMetrics::default();
    let deadline = Duration::from_secs_f64(settings.saga_deadline_seconds.max(0.1));
    sagas.set_deadline(deadline.as_secs_f64());
    let mut registry = prometheus_client::registry::Registry::default();
    sagas.register(&mut registry);
    let scraped = sagas.clone();
    let on_scrape: choreo_service::ScrapeHook = std::sync::Arc::new(move |pool| {
        let sagas = scraped.clone();
        Box::pin(async move { sagas.read(&pool).await })
    });
    let spec = Spec {
        choreography: <OrderService as choreo_service::SagaService>::CHOREOGRAPHY,
        handler: handlers::OrderHandler::new(changes.clone(), sagas.clone()),
        router: api::router(api::State {
            pool: pool.clone(),
            changes: changes.clone(),
            max_wait: Duration::from_secs(settings.max_wait_seconds),
            idempotency_key_lifetime: key_lifetime,
            sagas: sagas.clone(),
            waiting: std::sync::Arc::new(tokio::sync::Semaphore::new(api::MAX_WAITING)),
        })
        .merge(flow::router(pool.clone())),
        metrics: registry,
        background: vec![
            Box::pin(deadline::sweep_until(
                pool.clone(),
                deadline,
                changes,
                sagas,
                shutdown.clone(),
            )),
            Box::pin(idempotency::purge_until(
                pool.clone(),
                key_lifetime,
                shutdown.clone(),
            )),
        ],
        on_scrape: Some(on_scrape),
    };
    choreo_service::launch(&settings.service, pool, spec, shutdown).await
}
