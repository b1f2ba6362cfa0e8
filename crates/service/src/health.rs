//! `GET /health/live` and `GET /health/ready`.
//!
//! Live: the process answers HTTP; an orchestrator restarts it when not.
//! Ready: it can do its work now. Its database, the broker and the schema
//! registry each answer within a second, and no part of the messaging
//! runtime is stuck retrying. A service that is not ready keeps running and
//! retrying, and turns ready by itself when the dependency returns; the
//! answer (503) says which check failed and why.

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use choreo_events::RegistryClient;
use choreo_messaging::{Health, admin::BrokerProbe};
use choreo_telemetry::error_chain;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::{sync::Arc, time::Duration};

const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) struct Probes {
    pub(crate) service: &'static str,
    pub(crate) pool: PgPool,
    pub(crate) broker: BrokerProbe,
    pub(crate) registry: RegistryClient,
    pub(crate) runtime: Health,
}

pub(crate) fn routes(probes: Probes) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(Arc::new(probes))
}

async fn live(State(probes): State<Arc<Probes>>) -> Json<Value> {
    Json(json!({"status": "live", "service": probes.service}))
}

async fn ready(State(probes): State<Arc<Probes>>) -> (StatusCode, Json<Value>) {
    let database = async {
        tokio::time::timeout(
            CHECK_TIMEOUT,
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&probes.pool),
        )
        .await
        .map_err(|_| "no answer within 1s".to_owned())?
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let broker = async {
        probes
            .broker
            .check(CHECK_TIMEOUT)
            .await
            .map_err(|e| error_chain(&e))
    };
    let registry = async {
        probes
            .registry
            .ping(CHECK_TIMEOUT)
            .await
            .map_err(|e| error_chain(&e))
    };
    let (database, broker, registry) = tokio::join!(database, broker, registry);
    let runtime = probes.runtime.snapshot();
    let verdict = |r: &Result<(), String>| match r {
        Ok(()) => json!("ok"),
        Err(e) => json!({ "error": e }),
    };
    let ready =
        database.is_ok() && broker.is_ok() && registry.is_ok() && runtime.stalled.is_empty();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "service": probes.service,
        "checks": {
            "database": verdict(&database),
            "broker": verdict(&broker),
            "registry": verdict(&registry),
        },
        "stalled": runtime.stalled,
        "paused_partitions": runtime.paused_partitions,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
