//! `GET /metrics`: the service's own metrics and its runtime's (handlers,
//! retries, dead letters, consumer lag, outbox), in the Prometheus text
//! format. The outbox gauges, the service's own gauges (its
//! [`ScrapeHook`]) and `choreo_ready` are read from the database at each
//! scrape.
//!
//! `GET /stats`: the numbers an operator watches during an incident, as
//! JSON, for the edge's saga dashboard, with the replica's instance id and,
//! under `own`, the service's own figures (the order service's sagas).

use crate::{ScrapeHook, health::CHECK_TIMEOUT};
use axum::{Json, Router, extract::State, response::Response, routing::get};
use choreo_messaging::Health;
use prometheus_client::{metrics::gauge::Gauge, registry::Registry};
use sqlx::PgPool;
use std::sync::Arc;

struct Scrape {
    service: &'static str,
    /// The replica's static instance id, when it has one.
    instance: Option<String>,
    registry: Registry,
    pool: PgPool,
    runtime: Health,
    on_scrape: Option<ScrapeHook>,
    ready: Gauge,
}

pub(crate) fn routes(
    service: &'static str,
    instance: Option<String>,
    mut registry: Registry,
    pool: PgPool,
    runtime: Health,
    on_scrape: Option<ScrapeHook>,
) -> Router {
    runtime.metrics().register(&mut registry);
    let ready = Gauge::default();
    registry.register(
        "choreo_ready",
        "1 while the service can take requests (its database answers within a second, as /health/ready asks), 0 when not",
        ready.clone(),
    );
    Router::new()
        .route("/metrics", get(scrape))
        .route("/stats", get(stats))
        .with_state(Arc::new(Scrape {
            service,
            instance,
            registry,
            pool,
            runtime,
            on_scrape,
            ready,
        }))
}

async fn scrape(State(scrape): State<Arc<Scrape>>) -> Response {
    let _ = scrape.read_database().await;
    choreo_kit::http::metrics(&scrape.registry)
}

async fn stats(State(scrape): State<Arc<Scrape>>) -> Json<serde_json::Value> {
    let own = scrape.read_database().await;
    let health = scrape.runtime.snapshot();
    Json(serde_json::json!({
        "service": scrape.service,
        "instance": scrape.instance,
        "runtime": scrape.runtime.metrics().summary(),
        "stalled": health.stalled,
        "own": own,
    }))
}

impl Scrape {
    /// The gauges kept in the database, and the service's own figures
    /// (null when it has none, or its database did not answer). When it
    /// does not answer, the rest is still worth reporting: the gauges keep
    /// their last values, and `choreo_ready` says 0.
    async fn read_database(&self) -> serde_json::Value {
        let outbox = self.runtime.metrics().read_outbox(&self.pool);
        let ready = match tokio::time::timeout(CHECK_TIMEOUT, outbox).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %choreo_telemetry::error_chain(&e), "metrics: cannot read the outbox");
                false
            }
            Err(_) => {
                tracing::warn!("metrics: the database did not answer within {CHECK_TIMEOUT:?}");
                false
            }
        };
        self.ready.set(i64::from(ready));
        match (ready, &self.on_scrape) {
            // Bounded like the outbox's read; a hook logs its own failure.
            (true, Some(hook)) => tokio::time::timeout(CHECK_TIMEOUT, hook(self.pool.clone()))
                .await
                .unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    }
}
