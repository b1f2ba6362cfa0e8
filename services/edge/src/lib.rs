//! The edge: Choreo's one door for commands and queries.
//!
//! It owns no data. It checks every request (shape, sizes, formats) so that
//! nothing malformed reaches a service, then routes it over HTTP to the
//! service that owns the data: orders to `order`, the catalog to
//! `inventory`, wallets to `payment`. Errors are JSON
//! (`{"error": {"code", "message"}}`), 4xx for the caller's mistakes.
//!
//! - `auth`: who is calling (bearer JWTs) and what they may do.
//! - `limit`: rate limits per client address and per customer.
//! - `openapi`: the OpenAPI document served at `/openapi.json`.
//! - `routes`: the public REST API.
//! - `validate`: what no request may carry (control characters); the shapes
//!   and rules of the bodies are `choreo_contract`'s.
//! - `upstream`: calling the services.

mod auth;
mod breaker;
mod limit;
mod metrics;
mod openapi;
mod routes;
mod upstream;
mod validate;
mod waits;

pub use auth::{AuthConfigError, AuthSettings};
use choreo_kit::{CancellationToken, internal_auth::InternalAuthSettings};
use choreo_telemetry::LogFormat;
pub use limit::RateLimitSettings;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use tokio::task::JoinHandle;
pub use waits::WaitSettings;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub http_addr: SocketAddr,
    /// The order service's base URL; with several replicas, each one's,
    /// comma-separated (calls go to each in turn). So for the others.
    pub order_url: String,
    pub inventory_url: String,
    pub payment_url: String,
    /// Only for the saga dashboard's figures (`/v1/admin/platform`); the
    /// edge sends shipping no commands.
    pub shipping_url: String,
    /// Per call to a service, on top of any `?wait=` the caller asked for.
    pub upstream_timeout_ms: u64,
    pub breaker: BreakerSettings,
    pub auth: AuthSettings,
    pub rate_limit: RateLimitSettings,
    /// Caps on `?wait=` long-polls in flight.
    pub waits: WaitSettings,
    pub log_format: LogFormat,
    /// Whether a client's `traceparent` is continued. Off: the internet
    /// cannot graft requests onto the platform's traces; `choreo up` turns
    /// it on, where the client is the developer.
    pub continue_client_traces: bool,
    /// The key the edge signs its calls to the services with
    /// (`internal_auth.service_secret`); it holds no admin key.
    pub internal_auth: InternalAuthSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            order_url: "http://127.0.0.1:8082".into(),
            inventory_url: "http://127.0.0.1:8083".into(),
            payment_url: "http://127.0.0.1:8084".into(),
            shipping_url: "http://127.0.0.1:8085".into(),
            upstream_timeout_ms: 5_000,
            breaker: BreakerSettings::default(),
            auth: AuthSettings::default(),
            rate_limit: RateLimitSettings::default(),
            waits: WaitSettings::default(),
            log_format: LogFormat::Text,
            continue_client_traces: false,
            internal_auth: InternalAuthSettings::default(),
        }
    }
}

/// When a backend service's circuit breaker opens, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakerSettings {
    /// Failures in a row (no answer, timeout, 5xx) that open it.
    pub failures: u32,
    /// How long it stays open before one trial call.
    pub cooldown_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: 5,
            cooldown_ms: 5_000,
        }
    }
}

pub struct Running {
    pub addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub async fn wait(self) {
        if let Ok(Err(e)) = self.task.await {
            tracing::error!(error = %e, "edge server failed");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("checking tokens")]
    Auth(#[from] AuthConfigError),
    #[error("signing calls to the services")]
    InternalAuth(#[from] choreo_kit::internal_auth::InternalAuthError),
    #[error("reading the rate limits")]
    RateLimit(#[from] limit::BadProxy),
    #[error("reading the services' URLs")]
    Upstream(#[from] upstream::BadUpstream),
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Starts the edge; it serves until `shutdown` is cancelled.
///
/// # Errors
/// When no token key is configured or the address cannot be bound.
pub async fn start(settings: Settings, shutdown: CancellationToken) -> Result<Running, StartError> {
    let verifier = auth::Verifier::new(&settings.auth)?;
    let limits = limit::Limits::new(&settings.rate_limit)?;
    tokio::spawn(limits.clone().forget_idle_until(shutdown.clone()));
    let signer = choreo_kit::internal_auth::Signer::service(&settings.internal_auth, "edge")?;
    let upstreams = upstream::Upstreams::new(&settings, signer)?;
    let http_metrics = choreo_kit::HttpMetrics::default();
    let router = routes::router(
        upstreams.clone(),
        verifier,
        limits,
        waits::Waits::new(&settings.waits),
    )
    .merge(metrics::routes(upstreams, &http_metrics));
    let traces = if settings.continue_client_traces {
        choreo_kit::CallerTraces::Continue
    } else {
        choreo_kit::CallerTraces::Ignore
    };
    let (addr, task) =
        choreo_kit::serve_with(router, settings.http_addr, shutdown, traces, http_metrics)
            .await
            .map_err(|source| StartError::Bind {
                addr: settings.http_addr,
                source,
            })?;
    tracing::info!(%addr, "edge started");
    Ok(Running { addr, task })
}
