//! Calling the services that own the data.
//!
//! A service's 4xx answer is the caller's mistake and is passed through as
//! it came. A service that cannot be reached answers 503, one that does not
//! answer in time 504, one that fails 502; each is logged here with its
//! cause. Reads are retried, twice, when the service could not be reached
//! or answered 502/503; writes never are (the edge cannot know whether a
//! write it did not hear back from was applied).
//!
//! A service may run several replicas (`order_url` lists them,
//! comma-separated): calls go to each in turn, and a call that could not
//! reach its replica (no connection: nothing was sent) goes to the next,
//! a write too, since none of it was applied.
//!
//! Each replica has its own circuit breaker (`breaker`): every attempt on a
//! replica counts for or against it, and a replica whose breaker is open is
//! passed over, so one replica that hangs (stopped, or out of connections)
//! costs callers nothing while the others answer. Only when every replica's
//! breaker is open does the service answer 503 at once. A breaker for the
//! whole service turned a single stopped replica into minutes of refused
//! orders (issue 27's goal suite).

use crate::{
    Settings,
    breaker::{Breaker, Permit, Refused},
    metrics::{CallMetrics, Outcome},
};
use axum::http::StatusCode;
use choreo_kit::{HttpError, internal_auth::Signer};
use serde_json::Value;
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tracing::{Instrument, field::Empty};

/// The services behind the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Order,
    Inventory,
    Payment,
}

impl Service {
    pub(crate) const ALL: [Service; 3] = [Service::Order, Service::Inventory, Service::Payment];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::Order => "order",
            Service::Inventory => "inventory",
            Service::Payment => "payment",
        }
    }
}

/// Whether a call may be repeated when it fails on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// A read: repeating it changes nothing.
    Idempotent,
    /// A write: sent once.
    Never,
}

/// Attempts for an idempotent call, and the pause before each repeat.
const READ_ATTEMPTS: u32 = 3;
const READ_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// A service's replicas, called in turn.
#[derive(Debug)]
pub(crate) struct Replicas {
    /// Base URLs, without a trailing `/`.
    pub(crate) urls: Vec<String>,
    next: AtomicUsize,
}

impl Replicas {
    /// Reads `listed` (one URL, or several comma-separated).
    ///
    /// # Errors
    /// When it lists nothing, or something that is not an `http(s)` URL.
    pub(crate) fn parse(listed: &str) -> Result<Self, String> {
        let urls: Vec<String> = listed
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return Err("no URL".to_owned());
        }
        for url in &urls {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => return Err(format!("{url:?} is not an http(s) URL")),
            }
        }
        Ok(Self {
            urls,
            next: AtomicUsize::new(0),
        })
    }

    /// The replica a new call starts with.
    fn take_turn(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn nth(&self, turn: usize) -> &str {
        &self.urls[turn % self.urls.len()]
    }
}

/// A service the edge was given no usable URL for.
#[derive(Debug, thiserror::Error)]
#[error("the {service} service's URL setting: {problem}")]
pub struct BadUpstream {
    service: &'static str,
    problem: String,
}

/// The saga services' names, in the order `Upstreams` keeps their
/// replicas: the three the edge calls (`Service`'s order), then shipping,
/// which it only asks for the dashboard's figures.
const SAGA_SERVICES: [&str; 4] = ["order", "inventory", "payment", "shipping"];

#[derive(Clone)]
pub(crate) struct Upstreams {
    pub(crate) http: reqwest::Client,
    /// Indexed by `Service`, then shipping's.
    replicas: Arc<[Replicas; 4]>,
    /// Indexed by `Service`, then by replica.
    breakers: Arc<[Vec<Breaker>; 3]>,
    pub(crate) timeout: Duration,
    /// Signs every call: the services trust no address.
    pub(crate) signer: Signer,
    /// Every attempt, by service and outcome, with its duration.
    pub(crate) calls: CallMetrics,
}

impl Upstreams {
    /// # Errors
    /// When a service's URL setting lists no valid URL.
    pub(crate) fn new(settings: &Settings, signer: Signer) -> Result<Self, BadUpstream> {
        let cooldown = Duration::from_millis(settings.breaker.cooldown_ms);
        let breaker = || Breaker::new(settings.breaker.failures, cooldown);
        let parse = |service: &'static str, listed: &str| {
            Replicas::parse(listed).map_err(|problem| BadUpstream { service, problem })
        };
        let replicas = [
            parse("order", &settings.order_url)?,
            parse("inventory", &settings.inventory_url)?,
            parse("payment", &settings.payment_url)?,
            parse("shipping", &settings.shipping_url)?,
        ];
        let breakers = Service::ALL.map(|service| {
            replicas[service as usize]
                .urls
                .iter()
                .map(|_| breaker())
                .collect()
        });
        Ok(Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(1))
                .build()
                .unwrap_or_default(),
            replicas: Arc::new(replicas),
            breakers: Arc::new(breakers),
            timeout: Duration::from_millis(settings.upstream_timeout_ms),
            signer,
            calls: CallMetrics::default(),
        })
    }

    /// Every replica of each saga service, for the dashboard's figures.
    pub(crate) fn saga_replicas(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        SAGA_SERVICES
            .into_iter()
            .zip(self.replicas.iter())
            .flat_map(|(name, replicas)| replicas.urls.iter().map(move |url| (name, url.as_str())))
    }

    /// The service's base URL, to build a request with; [`Self::call`]
    /// sends it to whichever replica's turn it is.
    pub(crate) fn url(&self, service: Service) -> &str {
        &self.replicas[service as usize].urls[0]
    }

    /// The service's breakers taken together: `closed` while any replica's
    /// is (calls go out), else `half_open` while a replica's trial call is
    /// out, else `open` (calls are refused at once).
    pub(crate) fn breaker_state(&self, service: Service) -> &'static str {
        let breakers = &self.breakers[service as usize];
        ["closed", "half_open"]
            .into_iter()
            .find(|state| breakers.iter().any(|b| b.describe() == *state))
            .unwrap_or("open")
    }

    /// Sends `request` to `service` and returns its successful answer.
    ///
    /// # Errors
    /// The service's own 4xx error; 503 when it is unreachable or its
    /// breaker is open; 504 when it did not answer in time; 502 when it
    /// failed.
    pub(crate) async fn call(
        &self,
        service: Service,
        retry: Retry,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, HttpError> {
        let name = service.name();
        let replicas = &self.replicas[service as usize];
        let breakers = &self.breakers[service as usize];
        let count = replicas.urls.len();
        let started = Instant::now();
        let (mut turn, mut permit) = admit(breakers, replicas.take_turn()).map_err(|refused| {
            let method = request
                .try_clone()
                .and_then(|r| r.build().ok())
                .map(|r| r.method().clone())
                .unwrap_or_default();
            self.calls.observe(
                service,
                &method,
                None,
                Outcome::circuit_open,
                started.elapsed().as_secs_f64(),
            );
            let seconds = refused.0.as_secs() + 1;
            HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "circuit_open",
                format!(
                    "the {name} service has been failing; not calling it for the next {seconds} s"
                ),
            )
        })?;
        let attempts = match retry {
            Retry::Idempotent => READ_ATTEMPTS,
            Retry::Never => 1,
        };
        // Replicas left to try for a call that reached none.
        let mut unreached = count - 1;
        let mut attempt = 1;
        let result = loop {
            // Bodies here are small JSON documents, so every request clones.
            let this = request.try_clone().ok_or_else(|| {
                HttpError::internal(&std::io::Error::other("a streamed request body"))
            })?;
            let replica = replicas.nth(turn);
            let this = this.header(
                reqwest::header::AUTHORIZATION,
                self.signer.authorization(name),
            );
            let result = attempt_once(service, this, replica, &self.calls).await;
            let breaker = &breakers[turn % count];
            match &result {
                Ok(_) | Err(CallError::Rejected(_)) => breaker.succeeded(permit),
                Err(_) => {
                    breaker.failed(permit, Instant::now());
                    tracing::warn!(
                        service = name,
                        replica,
                        breaker = breaker.describe(),
                        "call failed"
                    );
                }
            }
            let passing = matches!(
                &result,
                Err(CallError::Unreachable(_))
                    | Err(CallError::ServerError(
                        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE,
                        _
                    ))
            );
            let again = if matches!(result, Err(CallError::Unreachable(_))) && unreached > 0 {
                // Nothing was sent: another replica may take it, a write too.
                unreached -= 1;
                true
            } else if passing && attempt < attempts {
                attempt += 1;
                tokio::time::sleep(READ_RETRY_PAUSE).await;
                true
            } else {
                false
            };
            // The next replica whose breaker lets the call out, if any.
            match again.then(|| admit(breakers, turn + 1)) {
                Some(Ok((next, next_permit))) => (turn, permit) = (next, next_permit),
                _ => break result,
            }
        };
        result.map_err(CallError::into_error)
    }
}

/// The first replica from `turn` on (all of them in turn, at most once)
/// whose breaker lets a call out now: its turn and leave; when every one is
/// open, the shortest wait.
fn admit(breakers: &[Breaker], turn: usize) -> Result<(usize, Permit), Refused> {
    let now = Instant::now();
    let mut wait: Option<Duration> = None;
    for at in turn..turn + breakers.len() {
        match breakers[at % breakers.len()].admit(now) {
            Ok(permit) => return Ok((at, permit)),
            Err(Refused(after)) => wait = Some(wait.map_or(after, |w| w.min(after))),
        }
    }
    Err(Refused(wait.unwrap_or_default()))
}

/// One attempt in a client span of its own, whose context the request
/// carries: the service's request span is its child.
async fn attempt_once(
    service: Service,
    request: reqwest::RequestBuilder,
    replica: &str,
    calls: &CallMetrics,
) -> Result<Answer, CallError> {
    let name = service.name();
    let (client, request) = request.build_split();
    let mut request = request.map_err(|e| {
        CallError::ServerError(StatusCode::INTERNAL_SERVER_ERROR, HttpError::internal(&e))
    })?;
    aim(&mut request, replica);
    let span = tracing::info_span!(
        "call",
        otel.name = %request.method(),
        otel.kind = "client",
        otel.status_code = Empty,
        service = name,
    );
    choreo_telemetry::attribute(&span, "http.request.method", request.method().to_string());
    choreo_telemetry::attribute(&span, "url.full", request.url().to_string());
    if let Some(host) = request.url().host_str() {
        choreo_telemetry::attribute(&span, "server.address", host.to_owned());
    }
    if let Some(port) = request.url().port_or_known_default() {
        choreo_telemetry::attribute(&span, "server.port", i64::from(port));
    }
    if let Some(traceparent) = choreo_telemetry::traceparent(&span) {
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&traceparent) {
            request
                .headers_mut()
                .insert(choreo_telemetry::TRACEPARENT, value);
        }
    }
    let method = request.method().clone();
    let started = Instant::now();
    let result = send(name, client.execute(request))
        .instrument(span.clone())
        .await;
    let (status, outcome) = match &result {
        Ok(answer) => (Some(answer.status), Outcome::ok),
        Err(CallError::Rejected(e)) => (Some(e.status), Outcome::rejected),
        Err(CallError::ServerError(status, _)) => (Some(*status), Outcome::failed),
        Err(CallError::Unreachable(_)) => (None, Outcome::unreachable),
        Err(CallError::NoAnswer(_)) => (None, Outcome::no_answer),
    };
    calls.observe(
        service,
        &method,
        status.map(|s| s.as_u16()),
        outcome,
        started.elapsed().as_secs_f64(),
    );
    if let Some(status) = status {
        status_code(&span, status);
    }
    if !matches!(outcome, Outcome::ok | Outcome::rejected) {
        span.record("otel.status_code", "ERROR");
    }
    result
}

/// Points `request`, built against a service's first replica, at
/// `replica` (checked to be a URL at start): same path and query, another
/// origin.
fn aim(request: &mut reqwest::Request, replica: &str) {
    let Ok(base) = reqwest::Url::parse(replica) else {
        return;
    };
    let url = request.url_mut();
    if url.origin() == base.origin() {
        return;
    }
    // Both are http(s) URLs with a host, so none of these can fail.
    let _ = url.set_scheme(base.scheme());
    let _ = url.set_host(base.host_str());
    let _ = url.set_port(base.port());
}

fn status_code(span: &tracing::Span, status: StatusCode) {
    choreo_telemetry::attribute(
        span,
        "http.response.status_code",
        i64::from(status.as_u16()),
    );
}

async fn send(
    name: &'static str,
    sent: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
) -> Result<Answer, CallError> {
    let no_answer = |e: &reqwest::Error| {
        // The request may have been applied before the answer was lost: a
        // blind retry of a POST could place a second order (unless it
        // carries an Idempotency-Key).
        tracing::error!(service = name, error = %e, "no answer from service");
        CallError::NoAnswer(HttpError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "outcome_unknown",
            format!(
                "the {name} service did not answer in time; the request may or may not have been applied"
            ),
        ))
    };
    let response = match sent.await {
        Ok(response) => response,
        Err(e) if e.is_connect() => {
            tracing::warn!(service = name, error = %e, "service unreachable");
            return Err(CallError::Unreachable(HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                format!("the {name} service is unavailable; try again shortly"),
            )));
        }
        Err(e) => return Err(no_answer(&e)),
    };
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers().clone();
    // A body cut short (a timeout mid-way, a dropped connection) is no
    // answer; a success that is not JSON is the service failing.
    let bytes = response.bytes().await.map_err(|e| no_answer(&e))?;
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    if status.is_server_error() || (status.is_success() && body.is_none()) {
        tracing::error!(service = name, %status, body = %String::from_utf8_lossy(&bytes), "service failed");
        return Err(CallError::ServerError(
            status,
            HttpError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                format!("the {name} service failed; the cause is in its log"),
            ),
        ));
    }
    if status == StatusCode::UNAUTHORIZED {
        // The service refused the edge's own credential: the two were given
        // different service keys. The platform's fault, not the caller's.
        tracing::error!(service = name, body = %String::from_utf8_lossy(&bytes), "the service refused the edge's credential; check internal_auth.service_secret on both");
        return Err(CallError::ServerError(
            status,
            HttpError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                format!("the {name} service failed; the cause is in the edge's log"),
            ),
        ));
    }
    let body = body.unwrap_or_default();
    if status.is_client_error() {
        let code = body["error"]["code"].as_str().unwrap_or("invalid_request");
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("request rejected")
            .to_owned();
        return Err(CallError::Rejected(HttpError::new(
            status,
            static_code(code),
            message,
        )));
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Why a call did not succeed, and so whether repeating it may help.
enum CallError {
    /// Could not connect: nothing was applied.
    Unreachable(HttpError),
    /// Sent, no answer in time: it may have been applied.
    NoAnswer(HttpError),
    /// The service answered 5xx (its status) or not JSON.
    ServerError(StatusCode, HttpError),
    /// The service answered 4xx: the caller's mistake.
    Rejected(HttpError),
}

impl CallError {
    fn into_error(self) -> HttpError {
        match self {
            CallError::Unreachable(e)
            | CallError::NoAnswer(e)
            | CallError::ServerError(_, e)
            | CallError::Rejected(e) => e,
        }
    }
}

/// A service's answer: its status, headers and JSON body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

/// Error codes are a closed set; anything unexpected becomes a generic one.
fn static_code(code: &str) -> &'static str {
    match code {
        "not_found" => "not_found",
        "conflict" => "conflict",
        "idempotency_key_reused" => "idempotency_key_reused",
        _ => "invalid_request",
    }
}
