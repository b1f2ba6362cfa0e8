//! `GET /metrics`: the service's own metrics and its runtime's (handlers,
//! retries, dead letters, consumer lag, outbox), in the Prometheus text
//! format. The outbox gauges are read from the database at each scrape.
//!
//! `GET /stats`: the numbers an operator watches during an incident, as
//! JSON, for the edge's saga dashboard, with the replica's instance id.

use axum::{Json, Router, extract::State, response::Response, routing::get};
use choreo_messaging::Health;
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use std::sync::Arc;

struct Scrape {
    service: &'static str,
    /// The replica's static instance id, when it has one.
    instance: Option<String>,
    registry: Registry,
    pool: PgPool,
    runtime: Health,
}

pub(crate) fn routes(
    service: &'static str,
    instance: Option<String>,
    mut registry: Registry,
    pool: PgPool,
    runtime: Health,
) -> Router {
    runtime.metrics().register(&mut registry);
    Router::new()
        .route("/metrics", get(scrape))
        .route("/stats", get(stats))
        .with_state(Arc::new(Scrape {
            service,
            instance,
            registry,
            pool,
            runtime,
        }))
}

async fn scrape(State(scrape): State<Arc<Scrape>>) -> Response {
    scrape.read_outbox().await;
    choreo_kit::http::metrics(&scrape.registry)
}

async fn stats(State(scrape): State<Arc<Scrape>>) -> Json<serde_json::Value> {
    scrape.read_outbox().await;
    let health = scrape.runtime.snapshot();
    Json(serde_json::json!({
        "service": scrape.service,
        "instance": scrape.instance,
        "runtime": scrape.runtime.metrics().summary(),
        "stalled": health.stalled,
    }))
}

impl Scrape {
    async fn read_outbox(&self) {
        if let Err(e) = self.runtime.metrics().read_outbox(&self.pool).await {
            // The rest is still worth reporting; the outbox gauges keep
            // their last values, and /health/ready reports the database.
            tracing::warn!(error = %choreo_telemetry::error_chain(&e), "metrics: cannot read the outbox");
        }
    }
}
