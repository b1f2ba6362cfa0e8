//! `GET /metrics` at the edge: its requests (by route, as every Choreo
//! server counts them), its calls to the services by service and outcome,
//! and the state of its circuit breaker to each service, read at every
//! scrape.

use crate::upstream::{Service, Upstreams};
use axum::{Router, extract::State, response::Response, routing::get};
use choreo_kit::HttpMetrics;
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    upstream: &'static str,
    state: &'static str,
}

/// What became of one attempt to call a service.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Outcome {
    /// It answered 2xx/3xx.
    ok,
    /// It answered 4xx: the caller's mistake, passed through.
    rejected,
    /// It answered 5xx, or a success that was not JSON.
    failed,
    /// No connection: nothing was sent.
    unreachable,
    /// Sent, and no (whole) answer in time.
    no_answer,
    /// Not sent: every replica's breaker was open.
    circuit_open,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    /// The service called (OpenTelemetry's `peer.service`).
    peer_service: &'static str,
    http_request_method: &'static str,
    /// None (encoded empty: to Prometheus, no label) without an answer.
    http_response_status_code: Option<u16>,
    outcome: Outcome,
}

/// The edge's calls to the services, per attempt (a read retried twice is
/// three), as OpenTelemetry's `http.client.request.duration`.
#[derive(Clone, Debug)]
pub(crate) struct CallMetrics {
    duration: Family<CallLabels, Histogram>,
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self {
            duration: Family::new_with_constructor(|| {
                Histogram::new(choreo_kit::DURATION_BUCKETS.iter().copied())
            }),
        }
    }
}

impl CallMetrics {
    pub(crate) fn observe(
        &self,
        service: Service,
        method: &reqwest::Method,
        status: Option<u16>,
        outcome: Outcome,
        seconds: f64,
    ) {
        self.duration
            .get_or_create(&CallLabels {
                peer_service: service.name(),
                http_request_method: choreo_kit::method_label(method),
                http_response_status_code: status,
                outcome,
            })
            .observe(seconds);
    }
}

struct Scrape {
    registry: Registry,
    breakers: Family<BreakerLabels, Gauge>,
    upstreams: Upstreams,
}

pub(crate) fn routes(upstreams: Upstreams, http: &HttpMetrics) -> Router {
    let mut registry = Registry::default();
    http.register(&mut registry);
    registry.register(
        "http_client_request_duration_seconds",
        "The edge's calls to the services, each attempt: from sending to the whole answer, by service, method, status (none without an answer) and outcome (ok, rejected, failed, unreachable, no_answer, circuit_open)",
        upstreams.calls.duration.clone(),
    );
    let breakers = Family::<BreakerLabels, Gauge>::default();
    registry.register(
        "choreo_circuit_breaker_state",
        "The edge's breakers to each service, taken together (closed while any replica's is): 1 for their current state (closed, open or half_open), 0 for the others",
        breakers.clone(),
    );
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Arc::new(Scrape {
            registry,
            breakers,
            upstreams,
        }))
}

async fn scrape(State(scrape): State<Arc<Scrape>>) -> Response {
    for service in Service::ALL {
        let current = scrape.upstreams.breaker_state(service);
        for state in ["closed", "open", "half_open"] {
            scrape
                .breakers
                .get_or_create(&BreakerLabels {
                    upstream: service.name(),
                    state,
                })
                .set(i64::from(state == current));
        }
    }
    choreo_kit::http::metrics(&scrape.registry)
}
