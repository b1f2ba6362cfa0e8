//! What every Choreo HTTP server measures of its requests, named after
//! OpenTelemetry's HTTP semantic conventions as Prometheus exposes them
//! (`http.server.request.duration` becomes
//! `http_server_request_duration_seconds`, the attribute `http.route` the
//! label `http_route`), so that a dashboard written for any instrumented
//! server reads these too.
//!
//! Labels are kept to bounded sets: the route *template* axum matched
//! (`/v1/orders/{id}`, never an order's path), methods outside the
//! standard ones as `_OTHER`, and an empty route (which Prometheus takes as
//! no label) for a request that matched none: a scanner's thousand paths
//! are one series.

use axum::{
    extract::{MatchedPath, Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use std::time::Instant;

/// OpenTelemetry's advice for `http.server.request.duration` and
/// `http.client.request.duration`: 5 ms to 10 s.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// A request method as the conventions bound it: the standard ones, and
/// `_OTHER` for anything else.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    http_request_method: &'static str,
    /// Empty (to Prometheus, no label) for a request no route matched.
    http_route: String,
    http_response_status_code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActiveLabels {
    http_request_method: &'static str,
    url_scheme: &'static str,
}

/// Why a request was turned away before (or instead of) doing its work.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum Reason {
    /// 401: no credential, or one that does not verify.
    unauthenticated,
    /// 403: a valid credential without the right.
    forbidden,
    /// 429: over a rate limit, or too many waits at once.
    rate_limited,
    /// 413: a body over the limit.
    body_too_large,
    /// 400 or 422: a request that does not say something valid.
    validation,
    /// 503 `overloaded`: too many requests in flight in the process.
    overloaded,
}

impl Reason {
    fn of(response: &Response) -> Option<Self> {
        Some(match response.status() {
            StatusCode::UNAUTHORIZED => Reason::unauthenticated,
            StatusCode::FORBIDDEN => Reason::forbidden,
            StatusCode::TOO_MANY_REQUESTS => Reason::rate_limited,
            StatusCode::PAYLOAD_TOO_LARGE => Reason::body_too_large,
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Reason::validation,
            StatusCode::SERVICE_UNAVAILABLE
                if response
                    .extensions()
                    .get::<crate::http::ErrorCode>()
                    .is_some_and(|code| code.0 == "overloaded") =>
            {
                Reason::overloaded
            }
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    http_route: String,
    reason: Reason,
}

/// One server's request metrics. Clones share the same series: one is
/// registered with the process's `/metrics`, another measures in
/// [`crate::serve`].
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    duration: Family<RequestLabels, Histogram>,
    active: Family<ActiveLabels, Gauge>,
    refusals: Family<RefusalLabels, Counter>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            duration: Family::new_with_constructor(|| {
                Histogram::new(DURATION_BUCKETS.iter().copied())
            }),
            active: Family::default(),
            refusals: Family::default(),
        }
    }
}

impl HttpMetrics {
    /// Adds the metrics to `registry` under the names the README lists.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_server_request_duration_seconds",
            "Time from a request's arrival to its answer's headers (for a long-poll, the whole wait), by method, route template and status",
            self.duration.clone(),
        );
        registry.register(
            "http_server_active_requests",
            "Requests being answered now",
            self.active.clone(),
        );
        registry.register(
            "choreo_http_refusals",
            "Requests turned away, by route template and reason (unauthenticated, forbidden, rate_limited, body_too_large, validation, overloaded)",
            self.refusals.clone(),
        );
    }

    /// Middleware that measures every request through it.
    pub(crate) async fn measure(
        State(metrics): State<HttpMetrics>,
        request: Request,
        next: Next,
    ) -> Response {
        let started = Instant::now();
        let method = method_label(request.method());
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        // A clone: the family's lock is not held across the await.
        let active = metrics
            .active
            .get_or_create(&ActiveLabels {
                http_request_method: method,
                url_scheme: "http",
            })
            .clone();
        let _in_flight = InFlight::enter(active);
        let response = next.run(request).await;
        if let Some(reason) = Reason::of(&response) {
            metrics
                .refusals
                .get_or_create(&RefusalLabels {
                    http_route: route.clone(),
                    reason,
                })
                .inc();
        }
        metrics
            .duration
            .get_or_create(&RequestLabels {
                http_request_method: method,
                http_route: route,
                http_response_status_code: response.status().as_u16(),
            })
            .observe(started.elapsed().as_secs_f64());
        response
    }
}

/// One request counted in `http_server_active_requests` until dropped,
/// which also happens when the client goes away mid-request.
struct InFlight(Gauge);

impl InFlight {
    fn enter(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
