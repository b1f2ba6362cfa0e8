//! What the order service does with each event it consumes: one module per
//! event.

mod payment_failed;
mod payment_refunded;
mod shipment_cancelled;
mod shipment_failed;
mod shipment_scheduled;
mod stock_rejected;
mod stock_released;
mod stock_reserved;

use crate::{changes::OrderChanges, db, metrics::SagaMetrics, saga, steps::Steps};
use choreo_events::{
    Event, EventMeta, InventoryEvent, PaymentCompleted, PaymentEvent, Record, ShippingEvent,
    choreography, inputs::OrderInput,
};
use choreo_messaging::{Batched, Delivery, Handler, HandlerError, Outcome};
use sqlx::PgConnection;
use tracing::Instrument;

pub struct OrderHandler {
    changes: OrderChanges,
    sagas: SagaMetrics,
}

impl OrderHandler {
    pub(crate) fn new(changes: OrderChanges, sagas: SagaMetrics) -> Self {
        Self { changes, sagas }
    }
}

impl Handler for OrderHandler {
    type Input = OrderInput;

    const BATCHES: bool = true;

    fn reacts_to(&self, record: Record) -> bool {
        choreography::ORDER.reacts_to(record)
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        _: &Delivery,
        event: OrderInput,
    ) -> Result<Outcome, HandlerError> {
        self.apply(tx, event).await
    }

    /// A replay after a restore finds nearly every order decided, from the
    /// service's own topic: one statement asks which orders of the batch
    /// are, and their events add their steps to a [`Steps`] written once
    /// at the end (what each would have written, the decision itself being
    /// a no-op on a decided order). The others go one after another as
    /// [`Handler::handle`] takes them, each on its locked order; an order
    /// decided is never among them, so the two never touch one order.
    async fn handle_batch(
        &self,
        tx: &mut PgConnection,
        batch: Vec<Batched<'_, OrderInput>>,
    ) -> Result<Vec<Outcome>, HandlerError> {
        let orders: Vec<_> = batch
            .iter()
            .map(|b| b.delivery.meta().correlation_id)
            .collect();
        let decided = crate::steps::decided(tx, &orders).await?;
        let mut steps = Steps::default();
        let mut outcomes = Vec::with_capacity(batch.len());
        for Batched {
            delivery,
            event,
            span,
        } in batch
        {
            let outcome = if decided.contains(&delivery.meta().correlation_id) {
                span.in_scope(|| step_of_decided(&mut steps, &event))?
            } else {
                self.apply(tx, event).instrument(span).await?
            };
            outcomes.push(outcome);
        }
        steps.write(tx).await?;
        Ok(outcomes)
    }

    /// Every event this service applies changes the order it names.
    fn committed(&self, delivery: &Delivery) {
        self.changes.committed(delivery.meta().correlation_id);
    }
}

/// What `event` records for its order, decided already: its step in the
/// timeline (with the payment it carries) and, for `StockReserved`, the
/// prices. The step's decision, confirming or cancelling, changes nothing
/// on a decided order.
fn step_of_decided(steps: &mut Steps, event: &OrderInput) -> Result<Outcome, HandlerError> {
    use {InventoryEvent as Inventory, PaymentEvent as Payment, ShippingEvent as Shipping};
    match event {
        OrderInput::Inventory(Inventory::StockReserved(e)) => {
            steps.record(&e.meta);
            steps.set_prices(
                e.order_id,
                &e.lines,
                e.total_cents,
                &e.currency,
                e.meta.occurred_at,
            );
        }
        OrderInput::Inventory(Inventory::StockRejected(e)) => steps.record(&e.meta),
        OrderInput::Inventory(Inventory::StockReleased(e)) => steps.record(&e.meta),
        OrderInput::Payment(Payment::Failed(e)) => steps.record(&e.meta),
        OrderInput::Payment(Payment::Refunded(e)) => {
            record_with_payment(steps, &e.meta, e.payment.as_ref())?;
        }
        OrderInput::Shipping(Shipping::Scheduled(e)) => {
            record_with_payment(steps, &e.meta, e.payment.as_ref())?;
        }
        OrderInput::Shipping(Shipping::Failed(e)) => {
            record_with_payment(steps, &e.meta, e.payment.as_ref())?;
        }
        OrderInput::Shipping(Shipping::Cancelled(e)) => steps.record(&e.meta),
        OrderInput::Payment(Payment::Completed(_) | Payment::WalletSet(_))
        | OrderInput::Inventory(Inventory::ProductSet(_)) => return Ok(Outcome::Ignored),
    }
    Ok(Outcome::Applied)
}

/// `meta`'s step and the payment it carries, as [`record`] and
/// [`record_payment`] record them on the long way.
fn record_with_payment(
    steps: &mut Steps,
    meta: &EventMeta,
    payment: Option<&EventMeta>,
) -> Result<(), HandlerError> {
    steps.record(meta);
    if let Some(payment) = payment_of(meta, payment)? {
        steps.record(payment);
    }
    Ok(())
}

impl OrderHandler {
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: OrderInput,
    ) -> Result<Outcome, HandlerError> {
        use {InventoryEvent as Inventory, PaymentEvent as Payment, ShippingEvent as Shipping};
        let sagas = &self.sagas;
        match event {
            OrderInput::Inventory(Inventory::StockReserved(e)) => {
                stock_reserved::handle(tx, e, sagas).await?;
            }
            OrderInput::Inventory(Inventory::StockRejected(e)) => {
                stock_rejected::handle(tx, e, sagas).await?;
            }
            OrderInput::Inventory(Inventory::StockReleased(e)) => {
                stock_released::handle(tx, e).await?;
            }
            OrderInput::Payment(Payment::Failed(e)) => payment_failed::handle(tx, e, sagas).await?,
            OrderInput::Payment(Payment::Refunded(e)) => payment_refunded::handle(tx, e).await?,
            OrderInput::Shipping(Shipping::Scheduled(e)) => {
                shipment_scheduled::handle(tx, e, sagas).await?;
            }
            OrderInput::Shipping(Shipping::Failed(e)) => {
                shipment_failed::handle(tx, e, sagas).await?;
            }
            OrderInput::Shipping(Shipping::Cancelled(e)) => {
                shipment_cancelled::handle(tx, e).await?;
            }
            // Passed over, each for the reason `choreography::ORDER` gives.
            OrderInput::Payment(Payment::Completed(_) | Payment::WalletSet(_))
            | OrderInput::Inventory(Inventory::ProductSet(_)) => return Ok(Outcome::Ignored),
        }
        Ok(Outcome::Applied)
    }
}

/// An event about an order this service never took: it did not come from
/// this deployment's saga, and no retry will change that.
fn unknown_order(order_id: uuid::Uuid) -> HandlerError {
    HandlerError::Permanent {
        reason: format!("no order {order_id} in this service"),
    }
}

/// Records an event in its order's timeline; the order must exist.
async fn record(tx: &mut PgConnection, meta: &EventMeta) -> Result<(), HandlerError> {
    if db::lock_status(tx, meta.correlation_id).await?.is_none() {
        return Err(unknown_order(meta.correlation_id));
    }
    db::append_timeline(tx, meta).await?;
    Ok(())
}

/// Records the payment a later event answers or refunds (shipping's events
/// and `PaymentRefunded`), from the `PaymentCompleted` envelope the event
/// carries. The payment's only use here is the timeline, so this service
/// opens no transaction for `PaymentCompleted` and records it with the step
/// that follows it: once (the timeline keeps one row per event id), and
/// ahead of that step (the timeline is ordered by when each event
/// occurred). Called after [`record`] of `event`, which found the order. An
/// envelope of another order or kind is refused: it would put a step in the
/// wrong timeline.
async fn record_payment(
    tx: &mut PgConnection,
    event: &EventMeta,
    payment: Option<&EventMeta>,
) -> Result<(), HandlerError> {
    if let Some(payment) = payment_of(event, payment)? {
        db::append_timeline(tx, payment).await?;
    }
    Ok(())
}

/// The payment `event` carries, to record: `None` from a service older
/// than the carried envelope (the timeline lacks this payment until a
/// rebuild reads it from payment.events). An envelope of another order or
/// kind is refused: it would put a step in the wrong timeline.
fn payment_of<'a>(
    event: &EventMeta,
    payment: Option<&'a EventMeta>,
) -> Result<Option<&'a EventMeta>, HandlerError> {
    let Some(payment) = payment else {
        return Ok(None);
    };
    if payment.correlation_id != event.correlation_id
        || payment.event_type != PaymentCompleted::NAME
    {
        return Err(HandlerError::Permanent {
            reason: format!(
                "{} {} carries a {} of order {} as its payment",
                event.event_type, event.event_id, payment.event_type, payment.correlation_id
            ),
        });
    }
    Ok(Some(payment))
}

/// A step said no: record it and cancel the order with `reason` (a no-op if
/// the order was already decided).
async fn step_failed(
    tx: &mut PgConnection,
    meta: &EventMeta,
    reason: &str,
    detail: &str,
    sagas: &SagaMetrics,
) -> Result<(), HandlerError> {
    record(tx, meta).await?;
    saga::cancel(tx, meta.correlation_id, reason, detail, Some(meta), sagas).await?;
    Ok(())
}
