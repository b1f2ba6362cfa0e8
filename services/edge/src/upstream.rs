//! Calling the services that own the data.
//!
//! A service's 4xx answer is the caller's mistake and is passed through as
//! it came. A service that cannot be reached answers 503, one that fails
//! answers 502; either is logged here with its cause.

use crate::Settings;
use axum::http::StatusCode;
use choreo_kit::HttpError;
use serde_json::Value;
use std::time::Duration;

#[derive(Clone)]
pub(crate) struct Upstreams {
    pub(crate) http: reqwest::Client,
    pub(crate) order: String,
    pub(crate) inventory: String,
    pub(crate) payment: String,
    pub(crate) timeout: Duration,
}

impl Upstreams {
    pub(crate) fn new(settings: &Settings) -> Self {
        Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(1))
                .build()
                .unwrap_or_default(),
            order: settings.order_url.trim_end_matches('/').to_owned(),
            inventory: settings.inventory_url.trim_end_matches('/').to_owned(),
            payment: settings.payment_url.trim_end_matches('/').to_owned(),
            timeout: Duration::from_millis(settings.upstream_timeout_ms),
        }
    }
}

/// A service's answer: its status, headers and JSON body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

/// Sends `request` to `service` and returns its successful answer.
///
/// # Errors
/// The service's own 4xx error, or 502/503 when it failed or was unreachable.
pub(crate) async fn call(
    service: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<Answer, HttpError> {
    let response = request.send().await.map_err(|e| {
        if e.is_connect() {
            tracing::warn!(service, error = %e, "service unreachable");
            HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                format!("the {service} service is unavailable; try again shortly"),
            )
        } else {
            // The request may have been applied before the answer was lost:
            // a blind retry of a POST could place a second order.
            tracing::error!(service, error = %e, "no answer from service");
            HttpError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "outcome_unknown",
                format!("the {service} service did not answer in time; the request may or may not have been applied"),
            )
        }
    })?;
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(Answer {
            status,
            headers,
            body,
        });
    }
    if status.is_client_error() {
        let code = body["error"]["code"].as_str().unwrap_or("invalid_request");
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("request rejected")
            .to_owned();
        return Err(HttpError::new(status, static_code(code), message));
    }
    tracing::error!(service, %status, body = %body, "service failed");
    Err(HttpError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_failed",
        format!("the {service} service failed; the cause is in its log"),
    ))
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
