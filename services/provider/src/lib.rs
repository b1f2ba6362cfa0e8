//! A stand-in for the external payment provider (the card acquirer) that
//! the payment service charges through.
//!
//! It behaves as a careful provider's API does: a charge is named by the
//! caller's idempotency key, and a retry with the same key gets the first
//! answer, never a second charge; a refund of a key never charged leaves a
//! tombstone, so the charge it overtook is refused when it arrives. Its
//! ledger lives in a PostgreSQL database of its own, which `choreo audit`
//! reconciles with the payment service's.
//!
//! A chaos suite switches faults on through `/admin/faults`: a share of
//! charges declined (decided by the key, so a retry is declined again), a
//! share of requests answered 503 before anything is done, and a share
//! answered only after a hold longer than the caller waits, *after* the
//! charge was taken: the case that double-charges a client which retries
//! without its key.
//!
//! Production replaces this process with the real provider; the payment
//! service knows it only by URL and this API's shape.
//!
//! Modules: `api` (routes), `ledger` (the table), `faults` (what is
//! switched on).

mod api;
mod faults;
mod ledger;

pub use choreo_kit::CancellationToken;

use choreo_kit::internal_auth::{self, Gate, InternalAuthSettings};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use std::net::{Ipv4Addr, SocketAddr};
use tokio::task::JoinHandle;

/// The stand-in's configuration, loaded with [`choreo_kit::load_config`]
/// (`CHOREO_HTTP_ADDR`, `CHOREO_DATABASE_URL`, `CHOREO_LOG_FORMAT`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Where the API listens; port 0 picks a free port.
    pub http_addr: SocketAddr,
    /// The ledger's database; migrations are applied at start.
    pub database_url: String,
    pub log_format: choreo_telemetry::LogFormat,
    /// The keys every call must be signed with (`choreo_kit::internal_auth`).
    pub internal_auth: InternalAuthSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 8086)),
            database_url: "postgres://postgres@127.0.0.1:5432/choreo_provider".into(),
            log_format: choreo_telemetry::LogFormat::default(),
            internal_auth: InternalAuthSettings::default(),
        }
    }
}

/// Why the stand-in could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("checking the internal credentials")]
    InternalAuth(#[source] choreo_kit::internal_auth::InternalAuthError),
    #[error("connecting to the ledger database")]
    Connect(#[source] sqlx::Error),
    #[error("migrating the ledger database")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving the API")]
    Serve(#[source] std::io::Error),
    #[error("the server task failed")]
    Join(#[source] tokio::task::JoinError),
}

/// A started stand-in.
#[derive(Debug)]
pub struct Running {
    /// The address actually bound (differs from the setting when port 0).
    pub addr: SocketAddr,
    /// Ends after the shutdown token is cancelled and in-flight requests
    /// have finished.
    pub task: JoinHandle<Result<(), Error>>,
}

/// Connects to the ledger, migrates it and serves the API until `shutdown`
/// is cancelled. Every fault starts switched off.
///
/// # Errors
/// When the database is unreachable, a migration fails or the address is
/// taken.
pub async fn start(settings: Settings, shutdown: CancellationToken) -> Result<Running, Error> {
    let pool = PgPoolOptions::new()
        .connect(&settings.database_url)
        .await
        .map_err(Error::Connect)?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(Error::Migrate)?;
    let gate =
        Gate::new(&settings.internal_auth, internal_auth::PROVIDER).map_err(Error::InternalAuth)?;
    // Only its HTTP server's figures: everything else it does is answer.
    let http_metrics = choreo_kit::HttpMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    http_metrics.register(&mut registry);
    let router =
        gate.protect(api::router(pool.clone()).merge(choreo_kit::http::metrics_route(registry)));
    let (addr, server) = choreo_kit::serve(router, settings.http_addr, shutdown, http_metrics)
        .await
        .map_err(|source| Error::Bind {
            addr: settings.http_addr,
            source,
        })?;
    tracing::info!(%addr, "payment provider stand-in listening");
    let task = tokio::spawn(async move {
        let served = server.await;
        pool.close().await;
        served.map_err(Error::Join)?.map_err(Error::Serve)
    });
    Ok(Running { addr, task })
}
