//! Serving an axum router on an address until shutdown, and the JSON error
//! body every Choreo HTTP API answers with.

use axum::{
    Json, Router,
    body::Body,
    extract::{MatchedPath, Request},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use std::{net::SocketAddr, time::Duration};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use tracing::{Span, field::Empty};

/// Binds `addr` (port 0 picks a free port) and serves `router` until `shutdown`
/// is cancelled, letting in-flight requests finish. Every request but the
/// health probes runs in a server span that continues the caller's trace.
///
/// # Errors
/// Fails when the address cannot be bound.
pub async fn serve(
    router: Router,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let router = router.layer(
        TraceLayer::new_for_http()
            .make_span_with(server_span)
            .on_request(())
            .on_response(|response: &Response, _: Duration, span: &Span| {
                choreo_telemetry::attribute(
                    span,
                    "http.response.status_code",
                    i64::from(response.status().as_u16()),
                );
                if response.status().is_server_error() {
                    span.record("otel.status_code", "ERROR");
                }
            })
            .on_failure(()),
    );
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        // With the peer's address, for handlers that limit per client.
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    });
    Ok((bound, task))
}

/// A `/metrics` answer: `registry` in the text format Prometheus scrapes
/// (OpenMetrics 1.0, which Prometheus asks for first).
pub fn metrics(registry: &prometheus_client::registry::Registry) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => HttpError::internal(&e).into_response(),
    }
}

/// The span of one request, named by its route as OpenTelemetry's HTTP
/// conventions ask (`POST /orders/{id}/cancel`, not one name per order).
/// Probes and scrapes get none: a trace per second per service would bury
/// the sagas.
fn server_span(request: &Request<Body>) -> Span {
    let path = request.uri().path();
    if path.starts_with("/health/") || path == "/metrics" {
        return Span::none();
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(path, MatchedPath::as_str);
    let method = request.method().as_str();
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        trace_id = Empty,
    );
    choreo_telemetry::attribute(&span, "http.request.method", method.to_owned());
    choreo_telemetry::attribute(&span, "http.route", route.to_owned());
    let traceparent = request
        .headers()
        .get(choreo_telemetry::TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    choreo_telemetry::continue_trace(&span, traceparent);
    span
}

/// An error as every Choreo HTTP API reports it:
/// `{"error": {"code": "...", "message": "..."}}`.
///
/// Client mistakes carry a message that says what to fix. Server faults carry
/// an opaque message; their cause is logged once, where they are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl HttpError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    /// Logs `cause` with its whole source chain and returns an opaque 500.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the cause is in the service log",
        )
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// The `Idempotency-Key` request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set to `true` on the answer to a retry that placed nothing new.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The request's `Idempotency-Key`, if it has one: 1 to 255 visible ASCII
/// characters, anything else a 422.
///
/// # Errors
/// A 422 naming the header when the key is malformed.
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<&str>, HttpError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(key))
        }
        _ => Err(HttpError::invalid(
            "the Idempotency-Key header must be 1-255 visible ASCII characters",
        )),
    }
}
