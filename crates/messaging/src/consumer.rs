//! The consumer loop: decode, deduplicate, apply, then move the offset.
//!
//! For each message, in partition order: the runtime decodes it, opens a
//! transaction, records the event id in the inbox and runs the handler in that
//! transaction. Only after the commit does it store the offset, which the
//! client commits in the background and on shutdown. A crash anywhere before
//! the commit redelivers the event; a crash after it redelivers an event the
//! inbox already holds, which is skipped. Either way the effect happens once.

use crate::{
    KafkaSettings, MessagingError, inbox,
    outbox::OutboxError,
    relay::{backoff, error_chain},
};
use choreo_events::{
    CodecError, Decoded, Decoder, Event, EventMeta, RegistryClient, Topic, Topics,
};
use rdkafka::{
    Message,
    consumer::{CommitMode, Consumer as _, StreamConsumer},
    message::{BorrowedMessage, Headers},
};
use sqlx::{PgConnection, PgPool};
use std::future::Future;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A decoded message and where it came from.
#[derive(Debug)]
pub struct Delivery {
    pub topic: Topic,
    pub partition: i32,
    pub offset: i64,
    pub message: Decoded,
    /// The `traceparent` header, to carry the saga's trace into the events
    /// this one causes.
    pub traceparent: Option<String>,
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
            traceparent: None,
        })
    }

    pub fn meta(&self) -> &EventMeta {
        self.message.meta()
    }

    /// The message as the record `E`.
    ///
    /// # Errors
    /// [`HandlerError::Permanent`]: a message that does not decode as the
    /// record its schema names will not decode on a retry either.
    pub fn parse<E: Event>(&self) -> Result<E, HandlerError> {
        self.message
            .parse::<E>()
            .map_err(|e| HandlerError::Permanent {
                reason: format!("cannot decode as {}: {}", E::NAME, error_chain(&e)),
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
    /// The event can never be applied (invalid content). The consumer logs it
    /// and moves on.
    #[error("permanent failure: {reason}")]
    Permanent { reason: String },
}

impl From<sqlx::Error> for HandlerError {
    /// Database errors are transient (the database is down, a lock timed
    /// out) except integrity violations (SQLSTATE class 23): the same event
    /// would violate the same constraint on every retry.
    fn from(e: sqlx::Error) -> Self {
        let integrity = matches!(&e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("23")));
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

/// A service's reaction to the events it consumes.
pub trait Handler: Send + Sync + 'static {
    /// Applies the event inside `tx`, which the runtime commits together with
    /// the inbox entry (or rolls back, for [`Outcome::Ignored`]). Events the
    /// handler emits go to the outbox in the same transaction.
    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        delivery: &'a Delivery,
    ) -> impl Future<Output = Result<Outcome, HandlerError>> + Send + 'a;
}

pub struct Consumer<H> {
    service: String,
    consumer: StreamConsumer,
    pool: PgPool,
    decoder: Decoder,
    topics: Topics,
    handler: H,
}

impl<H: Handler> Consumer<H> {
    /// Subscribes the group `<prefix><service>` to `inputs`.
    ///
    /// # Errors
    /// When librdkafka rejects the configuration or the subscription.
    pub fn new(
        settings: &KafkaSettings,
        service: &str,
        inputs: &[Topic],
        pool: PgPool,
        registry: RegistryClient,
        handler: H,
    ) -> Result<Self, MessagingError> {
        let topics = settings.topics();
        let group = format!("{}{service}", settings.topic_prefix);
        let mut config = settings.client_config();
        config
            .set("group.id", &group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            // Offsets are stored by hand, only after the effect commits.
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // A saga is a chain of hops; the broker's default 500 ms fetch
            // wait would be paid at every hop when traffic is light.
            .set("fetch.wait.max.ms", "50")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000");
        settings.apply_overrides(&mut config);
        let consumer: StreamConsumer = config.create().map_err(MessagingError::kafka(format!(
            "creating consumer for group {group}"
        )))?;
        let names: Vec<String> = inputs.iter().map(|t| topics.name(*t)).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        consumer
            .subscribe(&refs)
            .map_err(MessagingError::kafka(format!(
                "subscribing {group} to {names:?}"
            )))?;
        Ok(Self {
            service: service.to_owned(),
            consumer,
            pool,
            decoder: Decoder::new(registry),
            topics,
            handler,
        })
    }

    /// Consumes until `shutdown`, finishing the event in hand, then commits
    /// the stored offsets.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = self.consumer.recv() => m,
            };
            match message {
                Ok(message) => {
                    if self.process(&message, &shutdown).await.is_ok() {
                        if let Err(e) = self.consumer.store_offset_from_message(&message) {
                            tracing::warn!(error = %e, "could not store offset; the event will be redelivered and skipped");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, service = %self.service, "consumer error");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff(1)) => {}
                    }
                }
            }
        }
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            // Nothing stored since the last commit is the usual cause.
            tracing::debug!(error = %e, "final offset commit");
        }
        tracing::info!(service = %self.service, "consumer stopped");
    }

    /// Handles one message to completion: `Ok` when its offset may move
    /// (applied, duplicate, ignored or permanently failed), `Err` when
    /// shutdown interrupted the retries.
    async fn process(
        &self,
        message: &BorrowedMessage<'_>,
        shutdown: &CancellationToken,
    ) -> Result<(), ()> {
        let span = tracing::info_span!(
            "consume",
            messaging.system = "kafka",
            messaging.destination.name = message.topic(),
            messaging.kafka.partition = message.partition(),
            messaging.kafka.message.offset = message.offset(),
            event_type = tracing::field::Empty,
            order_id = tracing::field::Empty,
        );
        async {
            let mut attempt = 0u32;
            loop {
                match self.try_process(message).await {
                    Ok(()) => return Ok(()),
                    Err(Failure::Permanent(reason)) => {
                        // Issue 4 routes these to the service's dead-letter topic.
                        tracing::error!(%reason, "event cannot be applied; skipping it");
                        return Ok(());
                    }
                    Err(Failure::Transient(error)) => {
                        attempt += 1;
                        tracing::warn!(%error, attempt, "event failed; retrying in place");
                        tokio::select! {
                            _ = shutdown.cancelled() => return Err(()),
                            _ = tokio::time::sleep(backoff(attempt)) => {}
                        }
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn try_process(&self, message: &BorrowedMessage<'_>) -> Result<(), Failure> {
        let Some(payload) = message.payload() else {
            return Err(Failure::Permanent("message has no value".into()));
        };
        let decoded = match self.decoder.decode(payload).await {
            Ok(d) => d,
            Err(CodecError::Registry(e)) if e.is_transient() => {
                return Err(Failure::Transient(error_chain(&e)));
            }
            Err(e) => return Err(Failure::Permanent(error_chain(&e))),
        };
        let span = tracing::Span::current();
        span.record("event_type", decoded.name());
        span.record(
            "order_id",
            tracing::field::display(decoded.meta().correlation_id),
        );
        let Some(topic) = self.topics.parse(message.topic()) else {
            return Err(Failure::Permanent(format!(
                "unexpected topic {}",
                message.topic()
            )));
        };
        let delivery = Delivery {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            traceparent: message.headers().and_then(|h| {
                h.iter()
                    .find(|h| h.key == "traceparent")
                    .and_then(|h| h.value)
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .map(str::to_owned)
            }),
            message: decoded,
        };
        match apply(&self.pool, &self.handler, &delivery).await {
            Ok(_) => Ok(()),
            Err(HandlerError::Transient(e)) => Err(Failure::Transient(error_chain(e.as_ref()))),
            Err(HandlerError::Permanent { reason }) => Err(Failure::Permanent(reason)),
        }
    }
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
    let mut tx = pool.begin().await?;
    let meta = delivery.meta();
    let topic_name = delivery.topic.base_name();
    let source = inbox::Source {
        topic: topic_name,
        partition: delivery.partition,
        offset: delivery.offset,
    };
    if !inbox::record(&mut tx, meta.event_id, &meta.event_type, source).await? {
        tracing::info!(event_id = %meta.event_id, "duplicate event skipped");
        return Ok(false);
    }
    match handler.handle(&mut tx, delivery).await? {
        Outcome::Applied => {
            tx.commit().await?;
            tracing::debug!(event_id = %meta.event_id, "event applied");
            Ok(true)
        }
        Outcome::Ignored => Ok(false),
    }
}

enum Failure {
    Transient(String),
    Permanent(String),
}
