//! What a service plugs into the consumer: a [`Handler`] that applies one
//! [`Delivery`] inside the transaction that also records it in the inbox.

use crate::{inbox, outbox::OutboxError};
use choreo_events::{CodecError, Decoded, Event, EventMeta, Input, Record, Topic};
use choreo_telemetry::error_chain;
use sqlx::{PgConnection, PgPool};
use std::future::Future;
use tracing::Instrument;

/// A decoded message and where it came from.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: Topic,
    pub partition: i32,
    pub offset: i64,
    pub message: Decoded,
}

impl Delivery {
    /// `event` as its service's consumer would receive it on its own topic,
    /// for tests that feed a handler through [`apply`] without a broker.
    ///
    /// # Errors
    /// When the event does not match its schema.
    pub fn of<E: Event>(event: &E) -> Result<Self, CodecError> {
        Ok(Self {
            topic: E::TOPIC,
            partition: 0,
            offset: 0,
            message: Decoded::from_event(event)?,
        })
    }

    pub fn meta(&self) -> &EventMeta {
        self.message.meta()
    }

    /// The message as the handler's input, if it is one of its records.
    ///
    /// # Errors
    /// [`HandlerError::Permanent`]: a message that does not decode as the
    /// record its schema names will not decode on a retry either.
    fn decode<I: Input>(&self) -> Result<Option<I>, HandlerError> {
        I::decode(&self.message).map_err(|e| HandlerError::Permanent {
            reason: format!(
                "cannot decode as {}: {}",
                self.message.name(),
                error_chain(&e)
            ),
        })
    }
}

/// What a handler's failure means for the event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Trying again later can succeed (database down, lock timeout). The
    /// event is retried in place; the consumer does not move past it.
    #[error("transient failure")]
    Transient(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The event can never be applied (invalid content). The consumer puts it
    /// on the service's dead-letter topic, with the reason, and moves on.
    #[error("permanent failure: {reason}")]
    Permanent { reason: String },
}

impl From<sqlx::Error> for HandlerError {
    /// Database errors are transient (the database is down, a lock timed
    /// out) except integrity violations (SQLSTATE class 23): the same event
    /// would violate the same constraint on every retry. Not so a unique
    /// violation (23505): partitions are applied in parallel, so two events
    /// of one order from different topics (a StockReserved and a customer's
    /// OrderCancelled, say) can race to insert the same row; the loser's
    /// retry sees the winner's row and takes its other branch. (Found by the
    /// edge-crash chaos suite: payment dead-lettered such a StockReserved.)
    fn from(e: sqlx::Error) -> Self {
        let integrity = matches!(&e, sqlx::Error::Database(db)
            if db.code().is_some_and(|c| c.starts_with("23") && c != "23505"));
        if integrity {
            HandlerError::Permanent {
                reason: error_chain(&e),
            }
        } else {
            HandlerError::Transient(Box::new(e))
        }
    }
}

impl From<OutboxError> for HandlerError {
    fn from(e: OutboxError) -> Self {
        match e {
            OutboxError::Database { .. } => HandlerError::Transient(Box::new(e)),
            OutboxError::Encode { .. } => HandlerError::Permanent {
                reason: error_chain(&e),
            },
        }
    }
}

/// Whether a handler acted on an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The effect is in the transaction; the event is recorded as applied.
    Applied,
    /// The service does not react to this record; nothing is recorded, so a
    /// later version of the service that does react can still apply it on a
    /// replay.
    Ignored,
}

impl Outcome {
    /// [`Outcome::Applied`] when the handler acted, [`Outcome::Ignored`]
    /// when it found nothing to do.
    pub fn applied_if(applied: bool) -> Self {
        if applied {
            Outcome::Applied
        } else {
            Outcome::Ignored
        }
    }
}

/// A service's reaction to the events it consumes.
pub trait Handler: Send + Sync + 'static {
    /// What the handler consumes, decoded once before [`Handler::handle`]:
    /// an enum of its input topics' records, which the handler matches
    /// exhaustively. A message that is none of its records (a newer
    /// producer's) is passed over as [`Effect::Ignored`].
    type Input: Input;

    /// Applies `event` inside `tx`, which the runtime commits together with
    /// the inbox entry (or rolls back, for [`Outcome::Ignored`]). Events the
    /// handler emits go to the outbox in the same transaction.
    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        delivery: &'a Delivery,
        event: Self::Input,
    ) -> impl Future<Output = Result<Outcome, HandlerError>> + Send + 'a;

    /// Whether the handler may act on `record`. The runtime asks before it
    /// decodes the datum or opens a transaction: a record the service never
    /// acts on is passed over without touching the database, where recording
    /// it in the inbox and rolling back would still cost a write transaction
    /// (the topics carry many records each consumer ignores: three per
    /// saga). Services answer from their part of
    /// [`choreo_events::choreography`].
    /// `true` sends every record to [`Handler::handle`], which may still
    /// answer [`Outcome::Ignored`].
    fn reacts_to(&self, _record: Record) -> bool {
        true
    }

    /// Whether the handler applies a batch's events together, through
    /// [`Handler::handle_batch`], rather than one by one, each under a
    /// savepoint of its own. A handler that batches must write nothing for
    /// an event it answers [`Outcome::Ignored`].
    const BATCHES: bool = false;

    /// Applies `batch` inside `tx` at once: consecutive events of one
    /// partition (a replay's own topic: in commit order), in that order,
    /// each recorded in the inbox already and none a duplicate. What it
    /// decides must equal what [`Handler::handle`] would decide for each
    /// event in turn; a handler can read and write the rows of the whole
    /// batch with a few statements where each event would take several.
    /// Answers one outcome per event, in order. Only called when
    /// [`Handler::BATCHES`]; by default, [`Handler::handle`] for each.
    ///
    /// On an error nothing of the batch is kept, and the runtime applies
    /// its events again one at a time, each through [`Handler::handle`],
    /// so that only the event at fault is retried or dead-lettered.
    fn handle_batch<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        batch: Vec<Batched<'a, Self::Input>>,
    ) -> impl Future<Output = Result<Vec<Outcome>, HandlerError>> + Send + 'a {
        async move {
            let mut outcomes = Vec::with_capacity(batch.len());
            for Batched {
                delivery,
                event,
                span,
            } in batch
            {
                outcomes.push(
                    self.handle(&mut *tx, delivery, event)
                        .instrument(span)
                        .await?,
                );
            }
            Ok(outcomes)
        }
    }

    /// Called once an event the handler applied has committed: for what
    /// must wait until its effect is visible to others, such as waking the
    /// readers waiting for it. Not called for a duplicate or an ignored
    /// record, nor when the commit fails.
    fn committed(&self, _delivery: &Delivery) {}
}

/// One event of a batch, as [`Handler::handle_batch`] receives it.
#[derive(Debug)]
pub struct Batched<'a, I> {
    pub delivery: &'a Delivery,
    pub event: I,
    /// The event's own `handle` span. What the handler does for this event
    /// runs in it, so that its logs, and the trace context of the events it
    /// pushes to the outbox, belong to this event's trace.
    pub span: tracing::Span,
}

/// What [`apply_effect`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Applied now: the effect and the inbox entry are committed.
    Applied,
    /// Its id was in the inbox already; nothing was done.
    Duplicate,
    /// The handler does not react to the record; nothing was recorded.
    Ignored,
}

/// Applies one delivered event effectively once: in one transaction, records
/// its id in the inbox and runs the handler, then commits. Returns whether it
/// was applied (`false`: a duplicate, or a record the service ignores). The
/// consumer calls this for every message; tests call it to feed a handler
/// events in any order.
///
/// # Errors
/// The handler's error, or a transient one when the database fails; nothing
/// is committed then.
pub async fn apply<H: Handler>(
    pool: &PgPool,
    handler: &H,
    delivery: &Delivery,
) -> Result<bool, HandlerError> {
    Ok(apply_effect(pool, handler, delivery).await? == Effect::Applied)
}

/// [`apply`], telling a duplicate from an ignored record (a replay counts
/// them apart).
///
/// # Errors
/// As [`apply`].
pub async fn apply_effect<H: Handler>(
    pool: &PgPool,
    handler: &H,
    delivery: &Delivery,
) -> Result<Effect, HandlerError> {
    let Some(event) = input_for(handler, delivery)? else {
        return Ok(Effect::Ignored);
    };
    let transaction = choreo_telemetry::db_transaction_span();
    async {
        let mut tx = pool.begin().await?;
        match record_and_handle(&mut tx, handler, delivery, event).await? {
            Effect::Applied => {
                crate::fail_points::crash_point(crate::fail_points::HANDLER_BEFORE_COMMIT);
                tx.commit().await?;
                handler.committed(delivery);
                tracing::debug!(event_id = %delivery.meta().event_id, "event applied");
                Ok(Effect::Applied)
            }
            // Rolled back: an ignored record leaves no inbox entry.
            effect => Ok(effect),
        }
    }
    .instrument(transaction)
    .await
}

/// [`Handler::handle`] for a handler whose rules live in
/// [`Handler::handle_batch`]: the event as a batch of one, in the caller's
/// span, so that one event and a batch go by the same rules.
///
/// # Errors
/// As [`Handler::handle_batch`].
pub async fn handle_alone<H: Handler>(
    handler: &H,
    tx: &mut PgConnection,
    delivery: &Delivery,
    event: H::Input,
) -> Result<Outcome, HandlerError> {
    let one = Batched {
        delivery,
        event,
        span: tracing::Span::current(),
    };
    let outcomes = handler.handle_batch(tx, vec![one]).await?;
    Ok(outcomes.into_iter().next().unwrap_or(Outcome::Ignored))
}

/// Applies `deliveries`, in order, in one transaction, as a consumer applies
/// a batch of one partition's messages, and commits. Tests use it to feed a
/// handler batches; [`apply`] feeds it one event.
///
/// # Errors
/// As [`apply`]; nothing of the batch is committed then.
pub async fn apply_batch<H: Handler>(
    pool: &PgPool,
    handler: &H,
    deliveries: &[Delivery],
) -> Result<Vec<Effect>, HandlerError> {
    let span = tracing::Span::current();
    let batch: Vec<(&Delivery, &tracing::Span)> = deliveries.iter().map(|d| (d, &span)).collect();
    let mut tx = pool.begin().await?;
    let effects = apply_all_in(&mut tx, handler, &batch).await?;
    tx.commit().await?;
    for (delivery, effect) in deliveries.iter().zip(&effects) {
        if *effect == Effect::Applied {
            handler.committed(delivery);
        }
    }
    Ok(effects)
}

/// A batch's events, each with its message span, inside the batch's
/// transaction `tx`: together when the handler [batches](Handler::BATCHES),
/// else one by one ([`apply_in_batch`]). The caller commits, and calls
/// [`Handler::committed`] for the events applied.
///
/// # Errors
/// As [`apply`]; the caller must then roll back the whole batch, since the
/// handler may have failed halfway.
pub(crate) async fn apply_all_in<H: Handler>(
    tx: &mut PgConnection,
    handler: &H,
    batch: &[(&Delivery, &tracing::Span)],
) -> Result<Vec<Effect>, HandlerError> {
    if H::BATCHES {
        return apply_together_in(tx, handler, batch).await;
    }
    let mut effects = Vec::with_capacity(batch.len());
    for (delivery, span) in batch {
        effects.push(
            apply_in_batch(tx, handler, delivery)
                .instrument((*span).clone())
                .await?,
        );
    }
    Ok(effects)
}

/// A batch for a handler that batches: the inbox entries of all its events
/// with one statement, then the handler once with those new to the inbox.
async fn apply_together_in<H: Handler>(
    tx: &mut PgConnection,
    handler: &H,
    batch: &[(&Delivery, &tracing::Span)],
) -> Result<Vec<Effect>, HandlerError> {
    let mut effects = vec![Effect::Ignored; batch.len()];
    let mut inputs = Vec::with_capacity(batch.len());
    for (i, (delivery, span)) in batch.iter().enumerate() {
        if let Some(event) = span.in_scope(|| input_for(handler, delivery))? {
            inputs.push((i, *delivery, event, *span));
        }
    }
    let entries: Vec<_> = inputs
        .iter()
        .map(|(_, delivery, ..)| {
            let meta = delivery.meta();
            (meta.event_id, meta.event_type.as_str(), source(delivery))
        })
        .collect();
    let mut new = inbox::record_all(tx, &entries).await?;
    let mut handled = Vec::with_capacity(inputs.len());
    let mut batched = Vec::with_capacity(inputs.len());
    for (i, delivery, event, span) in inputs {
        let meta = delivery.meta();
        if new.remove(&meta.event_id) {
            handled.push((i, meta.event_id));
            batched.push(Batched {
                delivery,
                event,
                span: handle_span(meta, span),
            });
        } else {
            span.in_scope(|| tracing::info!(event_id = %meta.event_id, "duplicate event skipped"));
            effects[i] = Effect::Duplicate;
        }
    }
    if batched.is_empty() {
        return Ok(effects);
    }
    let outcomes = handler.handle_batch(tx, batched).await?;
    if outcomes.len() != handled.len() {
        return Err(HandlerError::Transient(
            format!(
                "the handler answered {} outcomes for a batch of {} events",
                outcomes.len(),
                handled.len()
            )
            .into(),
        ));
    }
    let mut ignored = Vec::new();
    for ((i, event_id), outcome) in handled.into_iter().zip(outcomes) {
        effects[i] = match outcome {
            Outcome::Applied => Effect::Applied,
            Outcome::Ignored => {
                ignored.push(event_id);
                Effect::Ignored
            }
        };
    }
    // An ignored record leaves no inbox entry, as under a savepoint.
    inbox::forget(tx, &ignored).await?;
    Ok(effects)
}

/// Where `delivery` was read from, for its inbox entry.
fn source(delivery: &Delivery) -> inbox::Source<'_> {
    inbox::Source {
        topic: delivery.topic.base_name(),
        partition: delivery.partition,
        offset: delivery.offset,
    }
}

/// The span a handler acts on an event in, under `parent`: the event's
/// consumer span.
fn handle_span(meta: &EventMeta, parent: &tracing::Span) -> tracing::Span {
    tracing::info_span!(
        parent: parent,
        "handle",
        otel.name = %format_args!("handle {}", meta.event_type),
    )
}

/// One event of a batch, inside the batch's transaction `tx`: as
/// [`apply_effect`], but under a savepoint of its own instead of a
/// transaction, so that an ignored record leaves nothing behind while the
/// events around it stay. The caller commits, and calls
/// [`Handler::committed`] for the events applied.
///
/// # Errors
/// As [`apply`]; the caller must then roll back the whole batch, since the
/// handler may have failed halfway.
async fn apply_in_batch<H: Handler>(
    tx: &mut PgConnection,
    handler: &H,
    delivery: &Delivery,
) -> Result<Effect, HandlerError> {
    let Some(event) = input_for(handler, delivery)? else {
        return Ok(Effect::Ignored);
    };
    let transaction = choreo_telemetry::db_transaction_span();
    async {
        // sqlx makes a nested begin a SAVEPOINT.
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
        let effect = record_and_handle(&mut savepoint, handler, delivery, event).await?;
        if effect == Effect::Applied {
            savepoint.commit().await?;
        } else {
            savepoint.rollback().await?;
        }
        Ok(effect)
    }
    .instrument(transaction)
    .await
}

/// The delivery as `handler`'s input, when the handler acts on its record:
/// `None` for a record it passes over or does not know.
///
/// # Errors
/// [`HandlerError::Permanent`] for a record it acts on that does not decode.
fn input_for<H: Handler>(
    handler: &H,
    delivery: &Delivery,
) -> Result<Option<H::Input>, HandlerError> {
    match delivery.message.record() {
        Some(record) if handler.reacts_to(record) => delivery.decode(),
        _ => Ok(None),
    }
}

/// The inbox entry and the handler's effect, in `tx`, not committed.
async fn record_and_handle<H: Handler>(
    tx: &mut PgConnection,
    handler: &H,
    delivery: &Delivery,
    event: H::Input,
) -> Result<Effect, HandlerError> {
    let meta = delivery.meta();
    if !inbox::record(tx, meta.event_id, &meta.event_type, source(delivery)).await? {
        tracing::info!(event_id = %meta.event_id, "duplicate event skipped");
        return Ok(Effect::Duplicate);
    }
    let handle = handle_span(meta, &tracing::Span::current());
    Ok(
        match handler
            .handle(tx, delivery, event)
            .instrument(handle)
            .await?
        {
            Outcome::Applied => Effect::Applied,
            Outcome::Ignored => Effect::Ignored,
        },
    )
}
