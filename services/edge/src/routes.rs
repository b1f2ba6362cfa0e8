//! The public REST API.
//!
//! | route | owner | who may call |
//! |---|---|---|
//! | `POST /v1/orders` | order | a customer, for itself; an admin, for anyone |
//! | `GET /v1/orders?status=&limit=&cursor=` | order | a customer, its own; an admin, anyone's (`customer_id=`) |
//! | `GET /v1/orders/{id}[?wait=SECONDS]` | order | its customer, or an admin |
//! | `POST /v1/orders/{id}/cancel` | order | its customer, or an admin |
//! | `GET /v1/products`, `GET /v1/products/{sku}` | inventory | any caller |
//! | `PUT /v1/admin/products/{sku}` | inventory | an admin |
//! | `PUT /v1/admin/customers/{id}/wallet` | payment | an admin |
//!
//! Every `/v1` route needs a bearer token (`auth`) and is rate-limited
//! (`limit`); the health probes are neither. Another customer's order answers 404, exactly like a missing one,
//! so that order ids cannot be probed.

use crate::{
    auth::{self, Caller, Verifier},
    limit::{self, Limits},
    openapi::{self, ErrorBody},
    upstream::{Retry, Service, Upstreams},
    waits::Waits,
};
use axum::{
    Json, Router,
    body::Bytes,
    extract::rejection::BytesRejection,
    extract::{DefaultBodyLimit, Extension, FromRequestParts, Path, Query, State},
    http::request::Parts,
    http::{HeaderMap, HeaderName, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
    routing::get,
};
use choreo_contract::{
    catalog::{Product, PutProduct},
    field::{CustomerId, Sku},
    order::{Order, OrderPage, OrderStatus, PlaceOrder},
    wallet::{PutWallet, Wallet},
};
use choreo_kit::{HttpError, IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, idempotency_key};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

/// Requests are small JSON documents; anything larger is a mistake or abuse.
const BODY_LIMIT: usize = 64 * 1024;
/// The longest `?wait=` the edge passes on.
const MAX_WAIT_SECONDS: f64 = 30.0;

pub(crate) fn router(
    upstreams: Upstreams,
    verifier: Verifier,
    limits: Limits,
    waits: Waits,
) -> Router {
    // Each `routes!` registers handlers with their OpenAPI entries, so the
    // document lists exactly the routes served.
    let api = OpenApiRouter::new()
        .routes(routes!(place_order, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(cancel_order))
        .routes(routes!(list_products))
        .routes(routes!(get_product))
        .routes(routes!(put_product))
        .routes(routes!(put_wallet))
        .routes(routes!(platform))
        .routes(routes!(saga_flow))
        // On matched routes only: an unknown path is a 404 for anyone. The
        // last layer runs first: the address limit, then authentication,
        // then the customer's limit.
        .route_layer(middleware::from_fn_with_state(
            limits.clone(),
            limit::by_customer,
        ))
        .route_layer(middleware::from_fn_with_state(verifier, auth::authenticate))
        .route_layer(middleware::from_fn_with_state(limits, limit::by_address));
    let (api, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(api)
        .routes(routes!(live))
        .routes(routes!(ready))
        .split_for_parts();
    let document = Arc::new(document);
    api.route(
        "/ui",
        // The page is public; everything it shows comes through the API
        // with the admin token the operator gives it.
        get(|| async { axum::response::Html(include_str!("ui/index.html")) }),
    )
    .route(
        "/openapi.json",
        get(move || {
            let document = document.clone();
            async move { Json(document.as_ref().clone()) }
        }),
    )
    .fallback(|| async { HttpError::not_found("no such route") })
    .method_not_allowed_fallback(|| async {
        HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
    })
    .layer(DefaultBodyLimit::max(BODY_LIMIT))
    .layer(Extension(waits))
    .with_state(upstreams)
}

#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    summary = "Live while the process answers",
    responses((status = 200, description = "live", body = openapi::Health)),
)]
async fn live() -> Json<Value> {
    Json(serde_json::json!({"status": "live", "service": "edge"}))
}

/// Ready when every service the edge routes to answers its liveness probe
/// within a second: without them the edge can only answer 503.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    summary = "Ready when every service behind answers",
    responses(
        (status = 503, description = "not ready", body = openapi::Health),
        (status = 200, description = "ready", body = openapi::Health),
    ),
)]
async fn ready(State(upstreams): State<Upstreams>) -> (StatusCode, Json<serde_json::Value>) {
    let probe = |base: &str| {
        let request = upstreams
            .http
            .get(format!("{base}/health/live"))
            .timeout(std::time::Duration::from_secs(1))
            .send();
        async move {
            match request.await {
                Ok(r) if r.status().is_success() => serde_json::json!("ok"),
                Ok(r) => serde_json::json!({"error": format!("answered {}", r.status())}),
                Err(e) => serde_json::json!({"error": choreo_telemetry::error_chain(&e)}),
            }
        }
    };
    let (order, inventory, payment) = tokio::join!(
        probe(upstreams.url(Service::Order)),
        probe(upstreams.url(Service::Inventory)),
        probe(upstreams.url(Service::Payment))
    );
    let ready = [&order, &inventory, &payment].iter().all(|c| *c == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let breakers: serde_json::Map<String, Value> = Service::ALL
        .iter()
        .map(|s| (s.name().to_owned(), upstreams.breaker_state(*s).into()))
        .collect();
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "service": "edge",
        "checks": {"order": order, "inventory": inventory, "payment": payment},
        "breakers": breakers,
    });
    (status, Json(body))
}

/// Query parameters; malformed ones (a repeated or unknown field, a value
/// of the wrong type) are a 422 in the API's JSON error form, not axum's
/// plain-text 400.
struct Params<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(query)| Self(query))
            .map_err(|e| HttpError::invalid(e.body_text()))
    }
}

/// A route's one path parameter; one that cannot be read (not UTF-8 once
/// decoded) names nothing that exists: 404.
struct Segment(String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(segment)| Self(segment))
            .map_err(|_| HttpError::not_found("no such route"))
    }
}

/// Parses a JSON body: 415 without a JSON content type, 400 for malformed
/// JSON, 422 for a document of the wrong shape (unknown or missing fields).
fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, HttpError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            HttpError::new(
                status,
                "payload_too_large",
                format!("the body is larger than {BODY_LIMIT} bytes"),
            )
        } else {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                rejection.body_text(),
            )
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    let document: Value = serde_json::from_slice(&body).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    crate::validate::no_control_characters(&document)?;
    serde_json::from_value(document).map_err(|e| HttpError::invalid(e.to_string()))
}

/// The order service's owner filter: a customer sees only its own orders
/// (another's answers 404); an admin sees all.
fn owner(caller: &Caller) -> Vec<(&'static str, &str)> {
    caller
        .owner_filter()
        .map(|customer| ("customer", customer))
        .into_iter()
        .collect()
}

fn json(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

#[utoipa::path(
    post,
    path = "/v1/orders",
    tag = "orders",
    summary = "Place an order",
    params(("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters; a retry with the same key and body returns the same order")),
    request_body(content = PlaceOrder, content_type = "application/json"),
    responses(
        (status = 201, description = "placed (or, for a repeated Idempotency-Key, the order it placed)", body = Order, headers(("location" = String), ("idempotent-replayed" = String, description = "true for a replay"))),
        openapi::Proxied,
        openapi::JsonWrite,
    ),
    security(("bearer" = [])),
)]
#[tracing::instrument(skip_all)]
async fn place_order(
    State(up): State<Upstreams>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let mut request: PlaceOrder = json_body(&headers, body)?;
    match &request.customer_id {
        None => request.customer_id = Some(caller.customer.clone()),
        Some(customer) if *customer != caller.customer && !caller.admin => {
            return Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a customer can place orders only for itself; leave customer_id out or use your own",
            ));
        }
        Some(_) => {}
    }
    let order = request.parse()?;
    let mut request = up
        .http
        .post(format!("{}/orders", up.url(Service::Order)))
        .timeout(up.timeout)
        .json(&order);
    if let Some(key) = idempotency_key(&headers)? {
        request = request.header(IDEMPOTENCY_KEY, key);
    }
    let answer = up.call(Service::Order, Retry::Never, request).await?;
    let Some(id) = answer.body["id"].as_str().map(str::to_owned) else {
        tracing::error!(body = %answer.body, "order service answered without an order id");
        return Err(HttpError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_failed",
            "the order service answered without an order id",
        ));
    };
    let replayed = answer
        .headers
        .get(IDEMPOTENT_REPLAYED)
        .is_some_and(|v| v.as_bytes() == b"true");
    tracing::info!(order_id = %id, replayed, "order accepted");
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v1/orders/{id}")),
            (
                HeaderName::from_static(IDEMPOTENT_REPLAYED),
                replayed.to_string(),
            ),
        ],
        Json(answer.body),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    wait: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    /// Admins only: one customer's orders.
    customer_id: Option<String>,
}

/// The caller's orders (an admin's: everyone's, or one customer's), newest
/// first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/orders",
    tag = "orders",
    summary = "The caller's orders, newest first, a page at a time",
    params(("status" = Option<OrderStatus>, Query), ("limit" = Option<u8>, Query, minimum = 1, maximum = 100), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"), ("customer_id" = Option<String>, Query, description = "admins only: one customer's orders")),
    responses(
        (status = 200, description = "a page", body = OrderPage),
        openapi::Proxied,
        openapi::Forbidden,
        openapi::Invalid,
    ),
    security(("bearer" = [])),
)]
#[tracing::instrument(skip_all)]
async fn list_orders(
    State(up): State<Upstreams>,
    Extension(caller): Extension<Caller>,
    Params(query): Params<ListQuery>,
) -> Result<Response, HttpError> {
    let mut problems = Vec::new();
    if let Some(status) = &query.status {
        if !["PENDING", "CONFIRMED", "CANCELLED"].contains(&status.as_str()) {
            problems.push("status must be PENDING, CONFIRMED or CANCELLED".to_owned());
        }
    }
    if let Some(limit) = &query.limit {
        if !limit.parse::<u8>().is_ok_and(|l| (1..=100).contains(&l)) {
            problems.push("limit must be a whole number between 1 and 100".to_owned());
        }
    }
    if let Some(cursor) = &query.cursor {
        let shaped = cursor.len() <= 100
            && cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !shaped {
            problems.push("cursor must be one this API gave out".to_owned());
        }
    }
    if let Some(customer) = &query.customer_id {
        if let Err(invalid) = CustomerId::parse(&**customer) {
            problems.push(invalid.at("customer_id"));
        }
    }
    if !problems.is_empty() {
        return Err(HttpError::invalid(problems.join("; ")));
    }
    // A customer sees its own orders whatever it asks for; naming another
    // customer is refused rather than silently ignored.
    let customer = match (caller.owner_filter(), &query.customer_id) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a customer can list only its own orders; leave customer_id out",
            ));
        }
        (Some(own), _) => Some(own),
        (None, asked) => asked.as_deref(),
    };
    let params: Vec<(&str, &str)> = [
        ("customer", customer),
        ("status", query.status.as_deref()),
        ("limit", query.limit.as_deref()),
        ("cursor", query.cursor.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect();
    let answer = up
        .call(
            Service::Order,
            Retry::Idempotent,
            up.http
                .get(format!("{}/orders", up.url(Service::Order)))
                .query(&params)
                .timeout(up.timeout),
        )
        .await?;
    Ok(json(answer.status, answer.body))
}

#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    tag = "orders",
    summary = "One order, with its lines and timeline",
    params(("id" = Uuid, Path), ("wait" = Option<f64>, Query, minimum = 0, maximum = 30, description = "seconds to wait for the order to be CONFIRMED or CANCELLED")),
    responses(
        (status = 200, description = "the order", body = Order),
        openapi::Proxied,
        openapi::NotFound,
        openapi::Invalid,
    ),
    security(("bearer" = [])),
)]
#[tracing::instrument(skip_all, fields(order_id = %id))]
async fn get_order(
    State(up): State<Upstreams>,
    Extension(caller): Extension<Caller>,
    Extension(waits): Extension<Waits>,
    Segment(id): Segment,
    Params(query): Params<WaitQuery>,
) -> Result<Response, Response> {
    let id = Uuid::parse_str(&id)
        .map_err(|_| HttpError::not_found(format!("no order {id}")).into_response())?;
    let wait = match query.wait.as_deref() {
        None => 0.0,
        Some(w) => match w.parse::<f64>() {
            Ok(w) if w.is_finite() && (0.0..=MAX_WAIT_SECONDS).contains(&w) => w,
            _ => {
                return Err(HttpError::invalid(format!(
                    "wait must be a number of seconds between 0 and {MAX_WAIT_SECONDS}"
                ))
                .into_response());
            }
        },
    };
    // Held until the answer is in.
    let _held = if wait > 0.0 {
        Some(
            waits
                .enter(&caller.customer)
                .map_err(IntoResponse::into_response)?,
        )
    } else {
        None
    };
    let answer = up
        .call(
            Service::Order,
            Retry::Idempotent,
            up.http
                .get(format!("{}/orders/{id}", up.url(Service::Order)))
                .query(&[("wait", wait)])
                .query(&owner(&caller))
                .timeout(up.timeout + Duration::from_secs_f64(wait)),
        )
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(json(answer.status, answer.body))
}

#[utoipa::path(
    post,
    path = "/v1/orders/{id}/cancel",
    tag = "orders",
    summary = "Cancel a PENDING order",
    params(("id" = Uuid, Path)),
    responses(
        (status = 202, description = "cancelled; every step taken is compensated", body = Order),
        openapi::Proxied,
        openapi::NotFound,
        (status = 409, description = "the order is already decided", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
#[tracing::instrument(skip_all, fields(order_id = %id))]
async fn cancel_order(
    State(up): State<Upstreams>,
    Extension(caller): Extension<Caller>,
    Segment(id): Segment,
) -> Result<Response, HttpError> {
    let id = Uuid::parse_str(&id).map_err(|_| HttpError::not_found(format!("no order {id}")))?;
    let answer = up
        .call(
            Service::Order,
            Retry::Never,
            up.http
                .post(format!("{}/orders/{id}/cancel", up.url(Service::Order)))
                .query(&owner(&caller))
                .timeout(up.timeout),
        )
        .await?;
    Ok(json(answer.status, answer.body))
}

#[utoipa::path(
    get,
    path = "/v1/products",
    tag = "catalog",
    summary = "The catalog with stock",
    responses(
        (status = 200, description = "every product", body = Vec<Product>),
        openapi::Proxied,
    ),
    security(("bearer" = [])),
)]
async fn list_products(State(up): State<Upstreams>) -> Result<Response, HttpError> {
    let answer = up
        .call(
            Service::Inventory,
            Retry::Idempotent,
            up.http
                .get(format!("{}/products", up.url(Service::Inventory)))
                .timeout(up.timeout),
        )
        .await?;
    Ok(json(answer.status, answer.body))
}

#[utoipa::path(
    get,
    path = "/v1/products/{sku}",
    tag = "catalog",
    summary = "One product",
    params(("sku" = String, Path)),
    responses(
        (status = 200, description = "the product", body = Product),
        openapi::Proxied,
        openapi::NotFound,
    ),
    security(("bearer" = [])),
)]
async fn get_product(
    State(up): State<Upstreams>,
    Segment(sku): Segment,
) -> Result<Response, HttpError> {
    if Sku::parse(&*sku).is_err() {
        return Err(HttpError::not_found(format!("no product {sku}")));
    }
    let answer = up
        .call(
            Service::Inventory,
            Retry::Idempotent,
            up.http
                .get(format!("{}/products/{sku}", up.url(Service::Inventory)))
                .timeout(up.timeout),
        )
        .await?;
    Ok(json(answer.status, answer.body))
}

#[utoipa::path(
    put,
    path = "/v1/admin/products/{sku}",
    tag = "admin",
    summary = "Create or replace a product",
    params(("sku" = String, Path, pattern = r"^[A-Z0-9-]{1,64}$")),
    request_body(content = PutProduct, content_type = "application/json"),
    responses(
        (status = 200, description = "the product", body = Product),
        openapi::Proxied,
        openapi::JsonWrite,
    ),
    security(("bearer" = [])),
)]
#[tracing::instrument(skip_all, fields(sku = %sku))]
async fn put_product(
    State(up): State<Upstreams>,
    Extension(caller): Extension<Caller>,
    Segment(sku): Segment,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    caller.require_admin()?;
    let sku = Sku::parse(sku).map_err(|invalid| HttpError::invalid(invalid.at("sku")))?;
    let product = json_body::<PutProduct>(&headers, body)?.parse()?;
    let answer = up
        .call(
            Service::Inventory,
            Retry::Never,
            up.http
                .put(format!("{}/products/{sku}", up.url(Service::Inventory)))
                .timeout(up.timeout)
                .json(&product),
        )
        .await?;
    Ok(json(answer.status, answer.body))
}

#[utoipa::path(
    put,
    path = "/v1/admin/customers/{id}/wallet",
    tag = "admin",
    summary = "Set a customer's wallet balance",
    params(("id" = String, Path, pattern = r"^[A-Za-z0-9_-]{1,64}$")),
    request_body(content = PutWallet, content_type = "application/json"),
    responses(
        (status = 200, description = "the wallet", body = Wallet),
        openapi::Proxied,
        openapi::JsonWrite,
    ),
    security(("bearer" = [])),
)]
#[tracing::instrument(skip_all, fields(customer_id = %id))]
async fn put_wallet(
    State(up): State<Upstreams>,
    Extension(caller): Extension<Caller>,
    Segment(id): Segment,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    caller.require_admin()?;
    let id =
        CustomerId::parse(id).map_err(|invalid| HttpError::invalid(invalid.at("customer id")))?;
    let wallet = json_body::<PutWallet>(&headers, body)?.parse()?;
    let answer = up
        .call(
            Service::Payment,
            Retry::Never,
            up.http
                .put(format!("{}/wallets/{id}", up.url(Service::Payment)))
                .timeout(up.timeout)
                .json(&wallet),
        )
        .await?;
    Ok(json(answer.status, answer.body))
}

#[utoipa::path(
    get,
    path = "/v1/admin/platform",
    tag = "admin",
    summary = "Admin: each saga service replica's dead letters, retries, consumer lag, outbox backlog and stuck parts, and the edge's breakers",
    description = "What the saga dashboard (`/ui`) shows beside the orders: one entry per replica of each saga service (its `instance`, its `url`). An order service replica's entry also holds `sagas`: sagas started, confirmed and cancelled since it started, pending now, the oldest pending one's age, the deadline, and the saga durations counted into cumulative buckets (`le` in seconds; null for the last, +Inf), all cumulative so that a reader takes rates and quantiles from two readings. A replica that does not answer within a second is listed with `reachable: false` and the error; the answer is still 200.",
    responses(
        (status = 200, description = "one entry per saga service, and the breakers", body = Object),
        openapi::Unauthenticated,
        openapi::Forbidden,
        openapi::RateLimited,
    ),
    security(("bearer" = [])),
)]
async fn platform(
    State(up): State<Upstreams>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, HttpError> {
    caller.require_admin()?;
    // One entry per replica of each service.
    let services = futures::future::join_all(up.saga_replicas().map(|(name, url)| {
        let request = up
            .http
            .get(format!("{url}/stats"))
            .header(header::AUTHORIZATION, up.signer.authorization(name))
            .timeout(Duration::from_secs(1));
        async move {
            let answer = async { request.send().await?.error_for_status()?.json::<Value>().await };
            match answer.await {
                // `sagas`: the order service's own figures (null elsewhere).
                Ok(stats) => serde_json::json!({"service": name, "instance": stats["instance"], "url": url, "reachable": true, "runtime": stats["runtime"], "stalled": stats["stalled"], "sagas": stats["own"]}),
                Err(e) => serde_json::json!({"service": name, "url": url, "reachable": false, "error": e.to_string()}),
            }
        }
    }))
    .await;
    let breakers: serde_json::Map<String, Value> = Service::ALL
        .iter()
        .map(|s| (s.name().to_owned(), Value::from(up.breaker_state(*s))))
        .collect();
    Ok(Json(
        serde_json::json!({"services": services, "breakers": breakers}),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/admin/saga",
    tag = "admin",
    summary = "Admin: the saga's steps as they run: per step, orders in the last minute, the median step latency and the orders waiting there now",
    description = "What the saga dashboard (`/ui`) draws as its live graph: `steps` (each saga record, its topic and publishing service, `events` in the last `window_seconds`, `p50_ms` from the order's step before, and `waiting`: PENDING orders whose latest step it is), `reactions` (which service turns which step into which) and `commands` (the ways in from outside the topics), from the order service's timelines and the choreography table.",
    responses(
        (status = 200, description = "the steps, reactions and commands", body = Object),
        openapi::Proxied,
        openapi::Forbidden,
    ),
    security(("bearer" = [])),
)]
async fn saga_flow(
    State(up): State<Upstreams>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, HttpError> {
    caller.require_admin()?;
    let answer = up
        .call(
            Service::Order,
            Retry::Idempotent,
            up.http
                .get(format!("{}/saga/flow", up.url(Service::Order)))
                .timeout(up.timeout),
        )
        .await?;
    Ok(json(answer.status, answer.body))
}
