//! The order service's HTTP API, called by the edge.
//!
//! - `POST /orders`: stores a PENDING order and its `OrderPlaced` event in one
//!   transaction, so an accepted order is never lost and never silent. With
//!   an `Idempotency-Key` header, a repeat of the same request returns the
//!   order the key placed (`idempotency`), and the key with another request
//!   is refused with 422.
//! - `GET /orders/{id}?wait=SECONDS`: the order, its priced lines and its
//!   timeline; with `wait`, answers as soon as the order is terminal or the
//!   time is up.
//! - `POST /orders/{id}/cancel`: the customer's cancel.
//!
//! - `GET /orders?customer=&status=&limit=&cursor=`: orders newest first, a
//!   page at a time; `next_cursor` continues where a page ended.
//!
//! `?customer=ID` on the last three restricts them to that customer's orders:
//! another's answers 404, as a missing one does. The edge sets it for every
//! caller but an admin.

use crate::{
    db::{self, Order, OrderStatus},
    idempotency::{self, Claim},
    metrics::SagaMetrics,
    saga::{self, Cancel},
};
use axum::{
    Json, Router,
    extract::{Path, Query, State as AxumState},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use choreo_contract::order::{Address, Item, NewOrder, OrderPage, PlaceOrder, PostalAddress};
use choreo_events::{EventMeta, OrderLine, OrderPlaced, ShippingAddress};
use choreo_kit::{HttpError, IDEMPOTENT_REPLAYED, idempotency_key};
use serde::Deserialize;
use sqlx::PgPool;
use std::time::Duration;
use tracing::Instrument;
use uuid::Uuid;

#[derive(Clone)]
pub(crate) struct State {
    pub(crate) pool: PgPool,
    pub(crate) changes: crate::changes::OrderChanges,
    pub(crate) max_wait: Duration,
    pub(crate) idempotency_key_lifetime: Duration,
    pub(crate) sagas: SagaMetrics,
    /// Long-polls in flight (`?wait=`), at most [`MAX_WAITING`].
    pub(crate) waiting: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Long-polls one process holds at once; past them, a read answers at once
/// (`wait` is an upper bound). The edge caps them per customer.
pub(crate) const MAX_WAITING: usize = 512;

pub(crate) fn router(state: State) -> Router {
    Router::new()
        .route("/orders", post(place_order).get(list_orders))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/cancel", post(cancel_order))
        .with_state(state)
}

/// The request as an idempotency key remembers it: normalised JSON, the same
/// however the client spelled it, and the same when rebuilt from the order's
/// event after a restore ([`request_of`]).
fn request(order: &NewOrder) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(order)
}

/// The request that placed `placed`, as its `OrderPlaced` tells it: the JSON
/// [`request`] made of it when it was placed.
pub(crate) fn request_of(placed: &OrderPlaced) -> Result<serde_json::Value, serde_json::Error> {
    let address = &placed.shipping_address;
    serde_json::to_value(PlaceOrder {
        customer_id: Some(placed.customer_id.clone()),
        items: placed
            .lines
            .iter()
            .map(|line| Item {
                sku: line.sku.clone(),
                quantity: line.quantity,
            })
            .collect(),
        shipping_address: Address {
            name: address.name.clone(),
            line1: address.line1.clone(),
            line2: address.line2.clone(),
            city: address.city.clone(),
            postal_code: address.postal_code.clone(),
            country: address.country.clone(),
        },
    })
}

/// The body parses into a [`NewOrder`] by the contract's rules, the edge's
/// own, so nothing that bypasses the edge bypasses them.
#[tracing::instrument(skip_all, fields(order_id = tracing::field::Empty, customer_id = %body.customer_id()))]
async fn place_order(
    AxumState(state): AxumState<State>,
    headers: HeaderMap,
    Json(body): Json<NewOrder>,
) -> Result<impl IntoResponse, HttpError> {
    let order_id = Uuid::new_v4();
    let key = idempotency_key(&headers)?;
    // The transaction in a span of its own, as the consumers' are.
    let request_span = tracing::Span::current();
    let transaction = choreo_telemetry::db_transaction_span();
    async {
        let mut tx = state.pool.begin().await?;
        // The order is placed as of its event: the key, the row and the
        // timeline all take its time, which a replay reads back.
        let event = placed_event(order_id, &body, key);
        if let Some(key) = key {
            let request = request(&body)?;
            let claim = idempotency::claim(
                &mut tx,
                body.customer_id(),
                key,
                &request,
                order_id,
                event.meta.occurred_at,
                state.idempotency_key_lifetime,
            )
            .await?;
            match claim {
                Claim::New => {}
                Claim::Replay(earlier) => {
                    let order = db::fetch_order(&mut tx, earlier)
                        .await?
                        .ok_or_else(|| HttpError::not_found(format!("no order {earlier}")))?;
                    tracing::info!(order_id = %earlier, "idempotent retry; answering with the order it placed");
                    return Ok(placed(order, true));
                }
                Claim::Reused => {
                    return Err(HttpError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used with a different request; use a new key for a new order",
                    ));
                }
            }
        }
        request_span.record("order_id", tracing::field::display(order_id));

        db::insert_order(&mut tx, &event)
            .await?;
        db::append_timeline(&mut tx, &event.meta)
            .await?;
        choreo_messaging::outbox::enqueue(&mut tx, &event)
            .await?;
        let order = db::fetch_order(&mut tx, order_id)
            .await?
            .ok_or_else(|| HttpError::not_found("order vanished inside its own transaction"))?;
        tx.commit().await?;
        state.sagas.started();
        tracing::info!(order_id = %order_id, "order placed");
        Ok(placed(order, false))
    }
    .instrument(transaction)
    .await
}

/// The event that tells the saga `order` was placed as `order_id`.
fn placed_event(order_id: Uuid, order: &NewOrder, key: Option<&str>) -> OrderPlaced {
    OrderPlaced {
        meta: EventMeta::first::<OrderPlaced>(order_id, "order"),
        order_id,
        customer_id: order.customer_id().to_string(),
        lines: order
            .items()
            .iter()
            .map(|item| OrderLine {
                sku: item.sku.to_string(),
                quantity: item.quantity.get(),
            })
            .collect(),
        shipping_address: shipping_address(order.shipping_address()),
        idempotency_key: key.map(str::to_owned),
    }
}

fn shipping_address(address: &PostalAddress) -> ShippingAddress {
    ShippingAddress {
        name: address.name.to_string(),
        line1: address.line1.to_string(),
        line2: address.line2.as_ref().map(|line2| line2.to_string()),
        city: address.city.to_string(),
        postal_code: address.postal_code.to_string(),
        country: address.country.to_string(),
    }
}

/// `201` with the order, as first placed or as an idempotent replay (which
/// says so in `Idempotent-Replayed`, and shows the order as it is now).
fn placed(order: Order, replayed: bool) -> axum::response::Response {
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v1/orders/{}", order.id)),
            (
                header::HeaderName::from_static(IDEMPOTENT_REPLAYED),
                replayed.to_string(),
            ),
        ],
        Json(order),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaitQuery {
    wait: Option<f64>,
    customer: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OwnerQuery {
    customer: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    customer: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// The most orders one page holds.
const MAX_PAGE: i64 = 100;
const DEFAULT_PAGE: i64 = 20;

/// A cursor names the last order of a page: its creation time in
/// microseconds and its id. Clients treat it as opaque.
fn cursor_of(order: &db::OrderSummary) -> String {
    format!("{}_{}", order.created_at.timestamp_micros(), order.id)
}

fn parse_cursor(cursor: &str) -> Option<(chrono::DateTime<chrono::Utc>, Uuid)> {
    /// 9999-12-31T23:59:59.999999Z: PostgreSQL refuses times far outside
    /// 1970..9999 that chrono accepts, and no order was made outside them.
    const LAST_MICROS: i64 = 253_402_300_799_999_999;
    let (micros, id) = cursor.split_once('_')?;
    let micros: i64 = micros.parse().ok()?;
    if !(0..=LAST_MICROS).contains(&micros) {
        return None;
    }
    Some((
        chrono::DateTime::from_timestamp_micros(micros)?,
        id.parse().ok()?,
    ))
}

#[tracing::instrument(skip_all)]
async fn list_orders(
    AxumState(state): AxumState<State>,
    Query(query): Query<ListQuery>,
) -> Result<Json<OrderPage>, HttpError> {
    let mut problems = Vec::new();
    let status = query.status.as_deref().map(|s| {
        OrderStatus::parse(s).ok_or_else(|| {
            problems.push("status must be PENDING, CONFIRMED or CANCELLED".to_owned());
        })
    });
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        problems.push(format!("limit must be between 1 and {MAX_PAGE}"));
    }
    let after = query.cursor.as_deref().map(|c| {
        parse_cursor(c).ok_or_else(|| {
            problems.push("cursor is not one this API gave out".to_owned());
        })
    });
    if !problems.is_empty() {
        return Err(HttpError::invalid(problems.join("; ")));
    }
    let filter = db::ListFilter {
        customer: query.customer.as_deref(),
        status: status.and_then(Result::ok),
        after: after.and_then(Result::ok),
        // One more than asked, to know whether another page follows.
        limit: limit + 1,
    };
    let mut conn = state.pool.acquire().await?;
    let mut orders = db::list_orders(&mut conn, &filter).await?;
    let more = orders.len() as i64 > limit;
    orders.truncate(limit as usize);
    let next_cursor = more.then(|| orders.last().map(cursor_of)).flatten();
    Ok(Json(OrderPage {
        orders,
        next_cursor,
    }))
}

/// Whether `customer` (when given) may see an order of `owner`.
fn visible_to(customer: Option<&str>, owner: &str) -> bool {
    customer.is_none_or(|c| c == owner)
}

#[tracing::instrument(skip_all, fields(order_id = %id))]
async fn get_order(
    AxumState(state): AxumState<State>,
    Path(id): Path<Uuid>,
    Query(query): Query<WaitQuery>,
) -> Result<Json<Order>, HttpError> {
    let wait = match query.wait {
        None => Duration::ZERO,
        Some(w) if w.is_finite() && w >= 0.0 => {
            Duration::from_secs_f64(w.min(state.max_wait.as_secs_f64()))
        }
        Some(_) => {
            return Err(HttpError::invalid(
                "wait must be a non-negative number of seconds",
            ));
        }
    };
    let permit = if wait.is_zero() {
        None
    } else {
        state.waiting.clone().try_acquire_owned().ok()
    };
    let wait = if permit.is_some() {
        wait
    } else {
        Duration::ZERO
    };
    let deadline = tokio::time::Instant::now() + wait;
    let watch = state.changes.watch(id);
    loop {
        // Asked before the read, so a commit between the read and the wait
        // is not missed.
        let changed = watch.next_change();
        let mut conn = state.pool.acquire().await?;
        let order = db::fetch_order(&mut conn, id)
            .await?
            .filter(|o| visible_to(query.customer.as_deref(), &o.customer_id))
            .ok_or_else(|| HttpError::not_found(format!("no order {id}")))?;
        drop(conn);
        if order.status.is_terminal() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(order));
        }
        // Another replica's commits do not wake this one's OrderChanges;
        // poll as well.
        let poll = tokio::time::sleep(Duration::from_millis(250));
        tokio::select! {
            () = changed => {}
            _ = poll => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// A customer's cancel: `202` with the order once it is CANCELLED (every
/// step already taken is then compensated by the services), `409` when the
/// order is already CONFIRMED or CANCELLED.
#[tracing::instrument(skip_all, fields(order_id = %id))]
async fn cancel_order(
    AxumState(state): AxumState<State>,
    Path(id): Path<Uuid>,
    Query(query): Query<OwnerQuery>,
) -> Result<impl IntoResponse, HttpError> {
    let mut tx = state.pool.begin().await?;
    // An order's customer never changes, so checking before the cancel's
    // own lock is enough.
    let owner = db::customer_of(&mut tx, id).await?;
    if !owner.is_some_and(|o| visible_to(query.customer.as_deref(), &o)) {
        return Err(HttpError::not_found(format!("no order {id}")));
    }
    let outcome = saga::cancel(
        &mut tx,
        id,
        choreo_events::cancel_reason::CUSTOMER_CANCELLED,
        "cancelled by the customer",
        None,
        &state.sagas,
    )
    .await?;
    match outcome {
        Cancel::NoSuchOrder => Err(HttpError::not_found(format!("no order {id}"))),
        Cancel::AlreadyDecided(status) => Err(HttpError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "order {id} is already {}; only a PENDING order can be cancelled",
                status.as_str()
            ),
        )),
        Cancel::Cancelled => {
            let order = db::fetch_order(&mut tx, id)
                .await?
                .ok_or_else(|| HttpError::not_found(format!("no order {id}")))?;
            tx.commit().await?;
            state.changes.committed(id);
            Ok((StatusCode::ACCEPTED, Json(order)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idempotency key restored from the order's event after a restore
    /// must remember the very request the key was first used with, or the
    /// client's retry would be refused as another request.
    #[test]
    fn the_request_rebuilt_from_the_event_is_the_request_placed() {
        for line2 in [None, Some(""), Some("Flat 2")] {
            let order: NewOrder = serde_json::from_value(serde_json::json!({
                "customer_id": "alice",
                "items": [{"sku": "TEA-01", "quantity": 2}, {"sku": "MUG-02", "quantity": 1}],
                "shipping_address": {"name": "Alice", "line1": "1 Main St", "line2": line2,
                                     "city": "Berlin", "postal_code": "10115", "country": "DE"},
            }))
            .expect("a valid order");
            let event = placed_event(Uuid::new_v4(), &order, Some("key-1"));
            assert_eq!(
                request_of(&event).expect("json"),
                request(&order).expect("json")
            );
        }
    }
}
