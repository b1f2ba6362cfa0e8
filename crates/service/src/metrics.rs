//! `GET /metrics`: the service's own metrics and its runtime's (handlers,
//! retries, dead letters, consumer lag, outbox), in the Prometheus text
//! format. The outbox gauges are read from the database at each scrape.

use axum::{Router, extract::State, response::Response, routing::get};
use choreo_messaging::Health;
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use std::sync::Arc;

struct Scrape {
    registry: Registry,
    pool: PgPool,
    runtime: Health,
}

pub(crate) fn routes(mut registry: Registry, pool: PgPool, runtime: Health) -> Router {
    runtime.metrics().register(&mut registry);
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Arc::new(Scrape {
            registry,
            pool,
            runtime,
        }))
}

async fn scrape(State(scrape): State<Arc<Scrape>>) -> Response {
    if let Err(e) = scrape.runtime.metrics().read_outbox(&scrape.pool).await {
        // The rest is still worth scraping; the outbox gauges keep their
        // last values, and /health/ready reports the database.
        tracing::warn!(error = %choreo_telemetry::error_chain(&e), "metrics: cannot read the outbox");
    }
    choreo_kit::http::metrics(&scrape.registry)
}
