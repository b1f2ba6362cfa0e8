//! The order's two outcomes, decided here and nowhere else.
//!
//! Both run with the order row locked (`db::lock_status`) and only move a
//! PENDING order, so a cancel racing a confirmation ends in exactly one of
//! them: whichever transaction takes the lock first decides, the other finds
//! the order terminal and changes nothing.

use crate::{
    db::{self, OrderStatus},
    metrics::SagaMetrics,
};
use choreo_events::{EventMeta, OrderCancelled, OrderConfirmed};
use choreo_messaging::outbox::{self, OutboxError};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub(crate) enum SagaError {
    #[error("database")]
    Database(#[from] sqlx::Error),
    #[error("outbox")]
    Outbox(#[from] OutboxError),
}

impl From<SagaError> for choreo_messaging::HandlerError {
    fn from(e: SagaError) -> Self {
        match e {
            SagaError::Database(e) => e.into(),
            SagaError::Outbox(e) => e.into(),
        }
    }
}

/// Confirms a PENDING order once both facts it needs are in: the prices
/// (`StockReserved`) and the scheduled shipment (`ShipmentScheduled`, which
/// shipping only emits after payment). They arrive on different topics in
/// either order, so both handlers call this.
pub(crate) async fn confirm_if_ready(
    tx: &mut PgConnection,
    order_id: Uuid,
    sagas: &SagaMetrics,
) -> Result<(), SagaError> {
    if db::lock_status(tx, order_id).await? != Some(OrderStatus::Pending) {
        return Ok(());
    }
    let Some(shipment_event) = db::timeline_event(tx, order_id, "ShipmentScheduled").await? else {
        return Ok(());
    };
    let Some((total_cents, currency)) = db::total(tx, order_id).await? else {
        tracing::info!(order_id = %order_id, "shipment scheduled before the prices arrived; waiting for them");
        return Ok(());
    };
    let confirmed = OrderConfirmed {
        meta: EventMeta::once_per_order::<OrderConfirmed>(order_id, Some(shipment_event), "order"),
        order_id,
        total_cents,
        currency,
    };
    let age = db::set_status(
        tx,
        order_id,
        OrderStatus::Confirmed,
        confirmed.meta.occurred_at,
    )
    .await?;
    db::append_timeline(tx, &confirmed.meta).await?;
    outbox::enqueue(tx, &confirmed).await?;
    sagas.confirmed(age);
    tracing::info!(order_id = %order_id, total_cents, "order confirmed");
    Ok(())
}

/// What [`cancel`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancel {
    Cancelled,
    /// The order was already CONFIRMED or CANCELLED; nothing changed.
    AlreadyDecided(OrderStatus),
    NoSuchOrder,
}

/// Cancels a PENDING order with `reason` and emits `OrderCancelled`, on which
/// every service compensates what it did for the order. `cause` is the event
/// that made the saga fail, or `None` for a customer's cancel or the deadline.
pub(crate) async fn cancel(
    tx: &mut PgConnection,
    order_id: Uuid,
    reason: &str,
    detail: &str,
    cause: Option<&EventMeta>,
    sagas: &SagaMetrics,
) -> Result<Cancel, SagaError> {
    match db::lock_status(tx, order_id).await? {
        None => return Ok(Cancel::NoSuchOrder),
        Some(OrderStatus::Pending) => {}
        Some(decided) => return Ok(Cancel::AlreadyDecided(decided)),
    }
    let cancelled = OrderCancelled {
        meta: EventMeta::once_per_order::<OrderCancelled>(
            order_id,
            cause.map(|c| c.event_id),
            "order",
        ),
        order_id,
        reason: reason.to_owned(),
        detail: detail.to_owned(),
    };
    let age = db::set_cancelled(tx, order_id, reason, detail, cancelled.meta.occurred_at).await?;
    db::append_timeline(tx, &cancelled.meta).await?;
    outbox::enqueue(tx, &cancelled).await?;
    sagas.cancelled(reason, age);
    tracing::info!(order_id = %order_id, reason, detail, "order cancelled");
    Ok(Cancel::Cancelled)
}
