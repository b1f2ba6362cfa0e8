//! The stand-in's HTTP API.
//!
//! | Route | What |
//! |---|---|
//! | `POST /v1/charges` | capture a charge; the `Idempotency-Key` header names it |
//! | `GET /v1/charges/{id}` | a charge |
//! | `POST /v1/charges/{id}/refund` | refund it in full (or void a key never charged) |
//! | `GET /admin/faults` | the faults switched on |
//! | `PUT /admin/faults/{decline,error,timeout}` | switch one on: `{"share", "seed", "hold_ms"}` |
//! | `DELETE /admin/faults/{kind}` | switch it off |
//! | `GET /admin/declined` | the orders with a declined charge |
//!
//! A charge is answered with the charge itself: 201 when captured now, 200
//! when a retry finds it captured, 402 when declined, 409 when its key was
//! refunded or voided first. 503 is an injected (or real) outage: nothing
//! was done, and a retry with the same key is safe.

use crate::{
    faults::{Faults, Kind, Setting},
    ledger::{self, Charge, ChargeRequest},
};
use axum::{
    Json, Router,
    extract::{Path, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use choreo_kit::HttpError;
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Clone)]
struct App {
    pool: PgPool,
    faults: Arc<Faults>,
}

/// Faults and the declined list are for operators' drills: the admin key
/// only.
fn admin_routes() -> Router<App> {
    Router::new()
        .route("/admin/faults", get(get_faults))
        .route("/admin/faults/{kind}", put(put_fault).delete(delete_fault))
        .route("/admin/declined", get(declined))
        .route_layer(axum::middleware::from_fn(
            choreo_kit::internal_auth::admin_only,
        ))
}

pub(crate) fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/v1/charges", post(charge))
        .route("/v1/charges/{id}", get(get_charge))
        .route("/v1/charges/{id}/refund", post(refund))
        .merge(admin_routes())
        .route(
            "/health/live",
            get(|| async { Json(json!({"status": "live", "service": "provider"})) }),
        )
        .route("/health/ready", get(ready))
        .with_state(App {
            pool,
            faults: Arc::new(Faults::default()),
        })
}

fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, HttpError> {
    body.map(|Json(t)| t)
        .map_err(|e| HttpError::invalid(e.body_text()))
}

/// The outage a suite injects: nothing is done.
fn unavailable() -> HttpError {
    HttpError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the provider is unavailable; retry with the same idempotency key",
    )
}

/// Holds the answer past the caller's patience when a timeout is drawn;
/// what was done stays done.
async fn maybe_hold(app: &App) {
    if let Some(hold) = app.faults.hold() {
        tracing::info!(
            hold_ms = hold.as_millis() as u64,
            "injected timeout: holding the answer"
        );
        tokio::time::sleep(hold).await;
    }
}

#[tracing::instrument(skip_all, fields(key = tracing::field::Empty, order_id = tracing::field::Empty), err(Debug))]
async fn charge(
    State(app): State<App>,
    headers: HeaderMap,
    request: Result<Json<ChargeRequest>, JsonRejection>,
) -> Result<Response, HttpError> {
    let key = choreo_kit::idempotency_key(&headers)?
        .ok_or_else(|| HttpError::invalid("a charge needs an Idempotency-Key header"))?
        .to_owned();
    let request = body(request)?;
    let span = tracing::Span::current();
    span.record("key", key.as_str());
    span.record("order_id", tracing::field::display(request.order_id));
    if request.amount_cents < 0 {
        return Err(HttpError::invalid("amount_cents must not be negative"));
    }
    if request.currency.len() != 3 || !request.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::invalid("currency must be three capital letters"));
    }
    if app.faults.errs() {
        return Err(unavailable());
    }
    let decline = app.faults.declines(&key);
    let (charge, new) = ledger::charge(&app.pool, &key, &request, decline).await?;
    let same = charge.order_id == request.order_id
        && charge.amount_cents == request.amount_cents
        && charge.currency == request.currency
        && charge.customer_id == request.customer_id;
    if !new && !same && charge.status != "VOIDED" {
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            format!("the key {key} names another charge"),
        ));
    }
    maybe_hold(&app).await;
    let status = match charge.status.as_str() {
        "CAPTURED" if new => StatusCode::CREATED,
        "CAPTURED" => StatusCode::OK,
        "DECLINED" => StatusCode::PAYMENT_REQUIRED,
        _ => StatusCode::CONFLICT,
    };
    tracing::info!(status = %charge.status, new, "charge answered");
    Ok((status, Json(charge)).into_response())
}

async fn get_charge(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Charge>, HttpError> {
    ledger::get(&app.pool, &id)
        .await?
        .map(Json)
        .ok_or_else(|| HttpError::not_found(format!("no charge {id}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    order_id: Uuid,
}

#[tracing::instrument(skip_all, fields(key = %id), err(Debug))]
async fn refund(
    State(app): State<App>,
    Path(id): Path<String>,
    request: Result<Json<RefundRequest>, JsonRejection>,
) -> Result<Json<Charge>, HttpError> {
    let request = body(request)?;
    if app.faults.errs() {
        return Err(unavailable());
    }
    let charge = ledger::refund(&app.pool, &id, request.order_id).await?;
    if charge.order_id != request.order_id {
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            format!("the charge {id} is for another order"),
        ));
    }
    maybe_hold(&app).await;
    tracing::info!(status = %charge.status, "refund answered");
    Ok(Json(charge))
}

fn kind(name: &str) -> Result<Kind, HttpError> {
    serde_json::from_value(json!(name)).map_err(|_| {
        HttpError::not_found(format!(
            "no fault {name:?}; the faults are decline, error, timeout"
        ))
    })
}

async fn get_faults(State(app): State<App>) -> Json<crate::faults::Settings> {
    Json(app.faults.settings())
}

async fn put_fault(
    State(app): State<App>,
    Path(name): Path<String>,
    setting: Result<Json<Setting>, JsonRejection>,
) -> Result<Json<crate::faults::Settings>, HttpError> {
    let kind = kind(&name)?;
    let setting = body(setting)?;
    if let Some(problem) = setting.problem(kind) {
        return Err(HttpError::invalid(problem));
    }
    app.faults.set(kind, Some(setting));
    tracing::warn!(
        fault = name,
        share = setting.share,
        seed = setting.seed,
        "fault switched on"
    );
    Ok(Json(app.faults.settings()))
}

async fn delete_fault(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<crate::faults::Settings>, HttpError> {
    app.faults.set(kind(&name)?, None);
    tracing::warn!(fault = name, "fault switched off");
    Ok(Json(app.faults.settings()))
}

async fn declined(State(app): State<App>) -> Result<Json<serde_json::Value>, HttpError> {
    let orders = ledger::declined_orders(&app.pool).await?;
    Ok(Json(json!({ "order_ids": orders })))
}

async fn ready(State(app): State<App>) -> Response {
    match ledger::ping(&app.pool).await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %choreo_telemetry::error_chain(&e), "health check: ledger unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not_ready"})),
            )
                .into_response()
        }
    }
}
