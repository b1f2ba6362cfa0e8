//! The edge: Choreo's one door for commands and queries.
//!
//! It owns no data. It checks every request (shape, sizes, formats) so that
//! nothing malformed reaches a service, then routes it over HTTP to the
//! service that owns the data: orders to `order`, the catalog to
//! `inventory`, wallets to `payment`. Errors are JSON
//! (`{"error": {"code", "message"}}`), 4xx for the caller's mistakes.
//!
//! - `routes`: the public REST API.
//! - `validate`: what a well-formed order looks like.
//! - `upstream`: calling the services.

mod routes;
mod upstream;
mod validate;

use choreo_kit::CancellationToken;
use choreo_telemetry::LogFormat;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub http_addr: SocketAddr,
    pub order_url: String,
    pub inventory_url: String,
    pub payment_url: String,
    /// Per call to a service, on top of any `?wait=` the caller asked for.
    pub upstream_timeout_ms: u64,
    pub log_format: LogFormat,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            order_url: "http://127.0.0.1:8082".into(),
            inventory_url: "http://127.0.0.1:8083".into(),
            payment_url: "http://127.0.0.1:8084".into(),
            upstream_timeout_ms: 5_000,
            log_format: LogFormat::Text,
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

/// Starts the edge; it serves until `shutdown` is cancelled.
///
/// # Errors
/// When the address cannot be bound.
pub async fn start(settings: Settings, shutdown: CancellationToken) -> std::io::Result<Running> {
    let router = routes::router(upstream::Upstreams::new(&settings));
    let (addr, task) = choreo_kit::serve(router, settings.http_addr, shutdown).await?;
    tracing::info!(%addr, "edge started");
    Ok(Running { addr, task })
}
