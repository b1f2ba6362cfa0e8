//! Choreo's schema registry: the part of Confluent Schema Registry's REST API
//! that Avro serializers, deserializers and tools use, persisted in its own
//! PostgreSQL database, with compatibility checked by apache-avro.
//!
//! Every event on a Choreo topic carries the global id of its Avro schema.
//! Producers register schemas here; consumers resolve ids here; and the
//! subject's compatibility level stops a producer from publishing events that
//! saga participants already deployed could not read. Services know this
//! registry only by URL, so a real Confluent registry can replace it.
//!
//! Modules: `api` (routes, Confluent's shapes), `store` (tables), `compat`
//! (levels and Avro checks), `avro` (parsing and schema identity), `error`.

mod api;
mod avro;
mod compat;
mod error;
mod store;

pub use choreo_kit::CancellationToken;
pub use compat::{Compatibility, UnknownCompatibility};
pub use error::Error;

/// The media type Confluent answers with; clients also accept it on errors.
pub(crate) const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

use choreo_kit::internal_auth::{self, Gate, InternalAuthSettings};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use std::net::{Ipv4Addr, SocketAddr};
use tokio::task::JoinHandle;

/// The registry's configuration, loaded with [`choreo_kit::load_config`]
/// (`CHOREO_HTTP_ADDR`, `CHOREO_DATABASE_URL`, `CHOREO_DEFAULT_COMPATIBILITY`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Where the REST API listens; port 0 picks a free port.
    pub http_addr: SocketAddr,
    /// The registry's own database; migrations are applied at start.
    pub database_url: String,
    /// The level used until `PUT /config` sets one.
    pub default_compatibility: Compatibility,
    /// The keys every call must be signed with (`choreo_kit::internal_auth`).
    pub internal_auth: InternalAuthSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 8081)),
            database_url: "postgres://postgres@127.0.0.1:5432/choreo_registry".into(),
            default_compatibility: Compatibility::Backward,
            internal_auth: InternalAuthSettings::default(),
        }
    }
}

/// A started registry.
#[derive(Debug)]
pub struct Running {
    /// The address actually bound (differs from the setting when port 0).
    pub addr: SocketAddr,
    /// Ends after the shutdown token is cancelled, in-flight requests have
    /// finished and the database pool is closed.
    pub task: JoinHandle<Result<(), Error>>,
}

/// Connects to the database, applies migrations and serves the API on
/// `settings.http_addr` until `shutdown` is cancelled.
///
/// # Errors
/// [`Error::Connect`] when the database is unreachable, [`Error::Migrate`]
/// when migrations fail, [`Error::Bind`] when the address is taken.
#[tracing::instrument(skip_all, fields(http_addr = %settings.http_addr))]
pub async fn start(settings: Settings, shutdown: CancellationToken) -> Result<Running, Error> {
    let pool = PgPoolOptions::new()
        .connect(&settings.database_url)
        .await
        .map_err(Error::Connect)?;
    let mut migrator = sqlx::migrate!("./migrations");
    // Tolerate versions in _sqlx_migrations that are not ours, should the
    // database ever be shared with another crate's migrations.
    migrator.set_ignore_missing(true);
    migrator.run(&pool).await.map_err(Error::Migrate)?;

    let gate =
        Gate::new(&settings.internal_auth, internal_auth::REGISTRY).map_err(Error::InternalAuth)?;
    // Only its HTTP server's figures: everything else it does is answer.
    let http_metrics = choreo_kit::HttpMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    http_metrics.register(&mut registry);
    let router = gate.protect(
        api::router(pool.clone(), settings.default_compatibility)
            .merge(choreo_kit::http::metrics_route(registry)),
    );
    let (addr, server) = choreo_kit::serve(router, settings.http_addr, shutdown, http_metrics)
        .await
        .map_err(|source| Error::Bind {
            addr: settings.http_addr,
            source,
        })?;
    tracing::info!(%addr, default_compatibility = %settings.default_compatibility, "schema registry listening");
    let task = tokio::spawn(async move {
        let served = server.await;
        pool.close().await;
        served.map_err(Error::Join)?.map_err(Error::Serve)
    });
    Ok(Running { addr, task })
}
