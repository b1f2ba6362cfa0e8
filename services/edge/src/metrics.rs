//! `GET /metrics` at the edge: the state of its circuit breaker to each
//! service, read at every scrape.

use crate::upstream::{Service, Upstreams};
use axum::{Router, extract::State, response::Response, routing::get};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    upstream: &'static str,
    state: &'static str,
}

struct Scrape {
    registry: Registry,
    breakers: Family<BreakerLabels, Gauge>,
    upstreams: Upstreams,
}

pub(crate) fn routes(upstreams: Upstreams) -> Router {
    let mut registry = Registry::default();
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
