//! `GET /health/live` and `GET /health/ready`.
//!
//! Live: the process answers HTTP; an orchestrator restarts it when not.
//! Ready: it can take requests, which is its database answering within a
//! second; otherwise 503, saying why. When the broker or the schema
//! registry does not answer, or a part of the messaging runtime is stuck
//! retrying, it is still ready but `degraded`: the body names what and
//! why, as do `/stats` and the `choreo_stalled` gauge. A service keeps
//! running and retrying either way, and recovers by itself.

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use choreo_events::RegistryClient;
use choreo_messaging::{Health, admin::BrokerProbe};
use choreo_telemetry::error_chain;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::{sync::Arc, time::Duration};

/// How long the database (or a dependency) may take to answer before the
/// service is reported not ready; also the scrape's `choreo_ready`.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
const DEPENDENCY_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// The health components the dependency watch reports under.
const BROKER: &str = "broker";
const REGISTRY: &str = "registry";

pub(crate) struct Probes {
    pub(crate) service: &'static str,
    pub(crate) pool: PgPool,
    pub(crate) broker: BrokerProbe,
    pub(crate) registry: RegistryClient,
    pub(crate) runtime: Health,
}

pub(crate) fn routes(probes: Arc<Probes>) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(probes)
}

async fn live(State(probes): State<Arc<Probes>>) -> Json<Value> {
    Json(json!({"status": "live", "service": probes.service}))
}

/// Every few seconds, whether the broker and the registry answer, kept in
/// the runtime's health (so `/health/ready`, `/stats` and the
/// `choreo_stalled` gauge show them) until `shutdown`.
pub(crate) async fn watch_dependencies(
    probes: Arc<Probes>,
    shutdown: choreo_kit::CancellationToken,
) {
    let mut every = tokio::time::interval(DEPENDENCY_CHECK_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
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
        let (broker, registry) = tokio::join!(broker, registry);
        for (component, result) in [(BROKER, broker), (REGISTRY, registry)] {
            match result {
                Ok(()) => probes.runtime.recover(component),
                Err(error) => {
                    if !probes.runtime.snapshot().stalled.contains_key(component) {
                        tracing::warn!(%error, "the {component} does not answer; taking orders into the outbox meanwhile");
                    }
                    probes.runtime.stall(component, &error);
                }
            }
        }
    }
}

/// Ready means the service can take requests: its database answers.
/// Anything else that is stuck (the broker, the registry, a partition
/// retrying an event, the relay) makes it `degraded`, still 200: the outbox
/// holds what it cannot publish, and a replica taken out of its Service
/// would help nothing. The body says what and why.
async fn ready(State(probes): State<Arc<Probes>>) -> (StatusCode, Json<Value>) {
    let database = tokio::time::timeout(
        CHECK_TIMEOUT,
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&probes.pool),
    )
    .await
    .map_err(|_| "no answer within 1s".to_owned())
    .and_then(|answer| answer.map(|_| ()).map_err(|e| e.to_string()));
    let runtime = probes.runtime.snapshot();
    let verdict = |r: Option<&String>| match r {
        None => json!("ok"),
        Some(e) => json!({ "error": e }),
    };
    let (status, code) = match (&database, runtime.stalled.is_empty()) {
        (Err(_), _) => ("not_ready", StatusCode::SERVICE_UNAVAILABLE),
        (Ok(()), true) => ("ready", StatusCode::OK),
        (Ok(()), false) => ("degraded", StatusCode::OK),
    };
    let body = json!({
        "status": status,
        "service": probes.service,
        "checks": {
            "database": verdict(database.as_ref().err()),
            "broker": verdict(runtime.stalled.get(BROKER)),
            "registry": verdict(runtime.stalled.get(REGISTRY)),
        },
        "stalled": runtime.stalled,
        "paused_partitions": runtime.paused_partitions,
    });
    (code, Json(body))
}
