//! Serving an axum router on an address until shutdown, and the JSON error
//! body every Choreo HTTP API answers with.

use axum::{
    Json, Router,
    body::Body,
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder as ConnectionBuilder, graceful::GracefulShutdown},
};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tower_http::{timeout::RequestBodyTimeoutLayer, trace::TraceLayer};
use tracing::{Span, field::Empty};

pub use crate::http_metrics::HttpMetrics;

/// Binds `addr` (port 0 picks a free port) and serves `router` until `shutdown`
/// is cancelled, letting in-flight requests finish. Every request but the
/// health probes runs in a server span that continues the caller's trace.
/// Every request is measured in `metrics` (see [`HttpMetrics`]), which the
/// caller registers with the registry its `/metrics` serves.
///
/// # Errors
/// Fails when the address cannot be bound.
pub async fn serve(
    router: Router,
    addr: SocketAddr,
    shutdown: CancellationToken,
    metrics: HttpMetrics,
) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    serve_with(router, addr, shutdown, CallerTraces::Continue, metrics).await
}

/// Whether a request's `traceparent` is continued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerTraces {
    /// Its span joins the caller's trace: for callers that sign their
    /// calls (the processes behind the edge), or a developer's own client.
    Continue,
    /// Every request starts a trace of its own: for callers from the
    /// internet, who could otherwise graft their requests onto any trace
    /// (or force sampling) in the platform's tracing backend.
    Ignore,
}

/// How long a client may take to send a request's headers, and then its
/// body: one that trickles them (slowloris) holds a connection and a task
/// for no longer.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests one process works on at once, probes and scrapes aside; the
/// next is answered `503 overloaded` at once rather than queued behind
/// them (a long-poll counts for as long as it waits).
pub const MAX_CONCURRENT_REQUESTS: usize = 1024;

/// [`serve`], choosing whether callers' traces are continued.
///
/// # Errors
/// Fails when the address cannot be bound.
pub async fn serve_with(
    router: Router,
    addr: SocketAddr,
    shutdown: CancellationToken,
    traces: CallerTraces,
    metrics: HttpMetrics,
) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let in_flight = Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS));
    let router = router
        .layer(axum::middleware::from_fn_with_state(in_flight, admit))
        // Outside the admission, so that an overloaded answer is counted.
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            HttpMetrics::measure,
        ))
        .layer(RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &Request<Body>| server_span(request, traces))
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
    let task = tokio::spawn(accept_until(listener, router, shutdown));
    Ok((bound, task))
}

/// Serves each connection `listener` accepts until `shutdown`, then lets
/// the requests in flight finish. HTTP/1 connections get a header read
/// timeout, which `axum::serve` does not set.
async fn accept_until(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = ConnectionBuilder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: the listener is fine.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let router = router.clone();
        // With the peer's address, for handlers that limit per client.
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(router.clone(), request)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Admits a request while fewer than [`MAX_CONCURRENT_REQUESTS`] are in
/// flight; probes and scrapes always, so that an overloaded process is not
/// also restarted for failing its liveness probe.
async fn admit(State(in_flight): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/health/") || path == "/metrics" {
        return next.run(request).await;
    }
    match in_flight.try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => (
            [(axum::http::header::RETRY_AFTER, "1")],
            HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!("{MAX_CONCURRENT_REQUESTS} requests are in flight; retry in a second"),
            ),
        )
            .into_response(),
    }
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

/// `GET /metrics` serving `registry` alone: for processes whose figures
/// are all kept in it (the schema registry, the provider stand-in).
pub fn metrics_route(registry: prometheus_client::registry::Registry) -> Router {
    let registry = Arc::new(registry);
    Router::new().route(
        "/metrics",
        axum::routing::get(move || async move { metrics(&registry) }),
    )
}

/// The span of one request, named by its route as OpenTelemetry's HTTP
/// conventions ask (`POST /orders/{id}/cancel`, not one name per order).
/// Probes and scrapes get none: a trace per second per service would bury
/// the sagas.
fn server_span(request: &Request<Body>, traces: CallerTraces) -> Span {
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
        .and_then(|v| v.to_str().ok())
        .filter(|_| traces == CallerTraces::Continue);
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

    /// `401 unauthenticated` saying why, with the `WWW-Authenticate`
    /// `challenge` that names the scheme the caller should use.
    pub fn unauthenticated(message: impl Into<String>, challenge: &'static str) -> Response {
        (
            [(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(challenge),
            )],
            Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message),
        )
            .into_response()
    }

    /// What a failed handler answers: 422 when the database refused a value
    /// the caller sent (SQLSTATE class 22, "data exception": a NUL in text,
    /// a number out of range), since repeating it cannot help and it is no
    /// fault of the service's; otherwise an opaque 500, with `cause` and
    /// its whole source chain logged.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        if let Some(refused) = data_exception(cause) {
            return Self::invalid(format!(
                "the database refused a value in the request: {refused}"
            ));
        }
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

/// Any error a handler does not answer otherwise is the service's, so `?`
/// turns it into [`HttpError::internal`]: an opaque, logged 500, or a 422
/// for a value the database refused. (`HttpError` is itself no
/// `std::error::Error`, which is what lets this impl exist, as with
/// `anyhow::Error`.) A handler that means a 4xx says so with the
/// constructors above before it reaches for `?`.
impl<E: std::error::Error + 'static> From<E> for HttpError {
    fn from(cause: E) -> Self {
        Self::internal(&cause)
    }
}

/// The database's message when `cause`, or any error it wraps, is a
/// data exception.
fn data_exception(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    std::iter::successors(Some(cause), |e| e.source())
        .filter_map(|e| e.downcast_ref::<sqlx::Error>())
        .filter_map(sqlx::Error::as_database_error)
        .find(|db| db.code().is_some_and(|code| code.starts_with("22")))
        .map(|db| db.message().to_owned())
}

/// The `code` of an [`HttpError`] answer, kept on the response for the
/// middleware that counts refusals by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        response
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
