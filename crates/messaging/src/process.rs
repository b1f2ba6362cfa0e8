//! One message, start to finish: decode it, apply it once through the
//! inbox, retry transient failures in place and dead-letter permanent ones.
//! The consumer's partition workers and a replay run the same steps, so an
//! event replayed is treated exactly as it was the first time.

use crate::{
    Delivery, Effect, Handler, HandlerError, Health, apply_effect,
    backoff::backoff,
    dead_letter::{DeadLetters, header},
    delivery::apply_all_in,
    headers::{EVENT_ID_HEADER, header_text},
    metrics::Attempt,
};
use choreo_events::{CodecError, Decoder, Topics};
use choreo_telemetry::{TRACEPARENT, attribute, error_chain};
use rdkafka::{Message, message::OwnedMessage};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, field::Empty};

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// The handler's effect is committed.
    Applied,
    /// Its event id was in the inbox: applied before, left alone.
    Duplicate,
    /// The service does not react to this record, or it was redriven for
    /// another service.
    Ignored,
    /// It can never be applied; it is on the service's dead-letter topic.
    DeadLettered,
}

impl From<Effect> for Processed {
    fn from(effect: Effect) -> Self {
        match effect {
            Effect::Applied => Processed::Applied,
            Effect::Duplicate => Processed::Duplicate,
            Effect::Ignored => Processed::Ignored,
        }
    }
}

enum Failure {
    Transient(String),
    Permanent(String),
}

/// Stopping interrupted the message; nothing of it is committed, so it is
/// redelivered (or replayed) from the same offset.
pub(crate) struct Abandoned;

/// Everything a message needs on its way through a service.
pub(crate) struct Processor<H> {
    pub(crate) service: String,
    /// The consumer group reading for it, for the spans.
    pub(crate) group: String,
    pub(crate) pool: PgPool,
    pub(crate) decoder: Decoder,
    pub(crate) topics: Topics,
    pub(crate) handler: H,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) health: Health,
    /// Whether a batch first asks the inbox which of its events it holds:
    /// for a replay, which mostly re-reads events applied before; the
    /// consumer, which rarely does, saves the query.
    pub(crate) inbox_first: bool,
}

impl<H: Handler> Processor<H> {
    /// Applies `message` effectively once. A transient failure is retried
    /// with capped, jittered backoff while `component` reads as stalled; a
    /// permanent one is dead-lettered, and only once the broker holds the
    /// dead letter does this return.
    pub(crate) async fn process(
        &self,
        message: &OwnedMessage,
        component: &str,
        stop: &CancellationToken,
    ) -> Result<Processed, Abandoned> {
        self.process_in(message, self.span(message), component, stop)
            .await
    }

    /// [`Self::process`] in the message's consumer span `span`.
    async fn process_in(
        &self,
        message: &OwnedMessage,
        span: tracing::Span,
        component: &str,
        stop: &CancellationToken,
    ) -> Result<Processed, Abandoned> {
        async {
            let mut attempt = 0u32;
            let result = loop {
                let failure = match self.try_process(message).await {
                    Ok(processed) => break Ok(processed),
                    Err(f) => f,
                };
                let error = match failure {
                    Failure::Permanent(reason) => {
                        match self.dead_letter(message, &reason, component, stop).await {
                            Ok(()) => {
                                tracing::Span::current().record("otel.status_code", "ERROR");
                                break Ok(Processed::DeadLettered);
                            }
                            Err(Abandoned) => break Err(Abandoned),
                        }
                    }
                    Failure::Transient(error) => error,
                };
                attempt += 1;
                self.health.metrics().retried("consumer");
                tracing::warn!(%error, attempt, "event failed; retrying in place");
                self.health.stall(component, &error);
                tokio::select! {
                    _ = stop.cancelled() => break Err(Abandoned),
                    _ = tokio::time::sleep(backoff(attempt)) => {}
                }
            };
            if attempt > 0 {
                self.health.recover(component);
            }
            result
        }
        .instrument(span)
        .await
    }

    /// Applies `messages`, in the order given (the consumer's: one
    /// partition's, in offset order; a replay's own topic: the service's
    /// commit order), in one transaction: one commit where there would be one per
    /// event. Each event still has a savepoint of its own, so an ignored
    /// record leaves nothing behind, and a duplicate is skipped as ever; a
    /// handler that [batches](crate::Handler::BATCHES) gets the new events
    /// whole instead, after one inbox statement for all of them.
    ///
    /// Should anything of the batch fail (a decode, a handler, a deadlock
    /// with another partition's batch, the commit), nothing of it is kept
    /// and each message goes through [`Self::process`] alone, with its
    /// retries and its dead letter: a batch changes the number of commits,
    /// never what becomes of an event. Returns what became of each message,
    /// in order.
    pub(crate) async fn process_batch(
        &self,
        messages: &[OwnedMessage],
        component: &str,
        stop: &CancellationToken,
    ) -> Result<Vec<Processed>, Abandoned> {
        let [message] = messages else {
            // One consumer span per message, whether the batch sticks or
            // its events go one by one: a tracing backend shows each
            // delivery consumed once.
            let spans: Vec<tracing::Span> = messages
                .iter()
                .map(|message| {
                    let span = self.span(message);
                    attribute(
                        &span,
                        "messaging.batch.message_count",
                        i64::try_from(messages.len()).unwrap_or(i64::MAX),
                    );
                    span
                })
                .collect();
            let error = match self.try_batch(messages, &spans).await {
                Ok(processed) => return Ok(processed),
                Err(error) => error,
            };
            tracing::debug!(
                %error,
                events = messages.len(),
                "batch rolled back; applying its events one at a time"
            );
            let mut processed = Vec::with_capacity(messages.len());
            for (message, span) in messages.iter().zip(spans) {
                processed.push(self.process_in(message, span, component, stop).await?);
            }
            return Ok(processed);
        };
        self.process(message, component, stop)
            .await
            .map(|p| vec![p])
    }

    /// The batch in one transaction, each message in its span of `spans`,
    /// and what became of each; or the first error, with nothing committed.
    async fn try_batch(
        &self,
        messages: &[OwnedMessage],
        spans: &[tracing::Span],
    ) -> Result<Vec<Processed>, String> {
        let started = std::time::Instant::now();
        let mut events = Vec::with_capacity(messages.len());
        for (message, span) in messages.iter().zip(spans) {
            let delivery = match self.delivery(message).instrument(span.clone()).await {
                Ok(delivery) => delivery,
                Err(Failure::Transient(error) | Failure::Permanent(error)) => return Err(error),
            };
            events.push((span, delivery, None));
        }
        // Events the inbox holds are skipped with one query for the batch
        // (`inbox_first`), where each would otherwise take a savepoint, an
        // insert and a rollback. Only a hint: an event it misses meets the
        // inbox's insert as ever.
        let applied_before = if self.inbox_first {
            let ids: Vec<uuid::Uuid> = events
                .iter()
                .filter_map(|(_, delivery, _)| delivery.as_ref().map(|d| d.meta().event_id))
                .collect();
            crate::inbox::applied_among(&self.pool, &ids)
                .await
                .map_err(|e| error_chain(&e))?
        } else {
            Default::default()
        };
        for (span, delivery, effect) in &mut events {
            if let Some(delivery) = delivery {
                if applied_before.contains(&delivery.meta().event_id) {
                    span.in_scope(|| tracing::debug!("duplicate event skipped"));
                    *effect = Some(Effect::Duplicate);
                }
            }
        }
        if events
            .iter()
            .all(|(_, delivery, effect)| delivery.is_none() || effect.is_some())
        {
            return Ok(self.finish_batch(&events, started));
        }
        let mut tx = self.pool.begin().await.map_err(|e| error_chain(&e))?;
        // A batch holds its rows' locks until its last event, so two
        // batches touching the same rows (one product's stock, reserved by
        // orders on different partitions) can wait on each other in a
        // cycle, and PostgreSQL breaks a deadlock only after
        // `deadlock_timeout` (1 s). A batch gives up a lock wait far sooner
        // and goes event by event instead.
        sqlx::query("SET LOCAL lock_timeout = '20ms'")
            .execute(&mut *tx)
            .await
            .map_err(|e| error_chain(&e))?;
        let undecided: Vec<(&Delivery, &tracing::Span)> = events
            .iter()
            .filter_map(|(span, delivery, effect)| match (delivery, effect) {
                (Some(delivery), None) => Some((delivery, *span)),
                _ => None,
            })
            .collect();
        let mut applied = apply_all_in(&mut tx, &self.handler, &undecided)
            .await
            .map_err(|e| error_chain(&e))?
            .into_iter();
        for (_, delivery, effect) in &mut events {
            if delivery.is_some() && effect.is_none() {
                *effect = applied.next();
            }
        }
        // Each event's span stays open until the commit that makes it
        // stick; the commit itself goes under the last one.
        let commit = tracing::info_span!(
            parent: events.last().and_then(|(span, ..)| span.id()),
            "commit",
            otel.name = "db.commit"
        );
        async {
            if events
                .iter()
                .any(|(.., effect)| *effect == Some(Effect::Applied))
            {
                crate::fail_points::crash_point(crate::fail_points::HANDLER_BEFORE_COMMIT);
            }
            tx.commit().await
        }
        .instrument(commit)
        .await
        .map_err(|e| error_chain(&e))?;
        Ok(self.finish_batch(&events, started))
    }

    /// After a batch is committed (or needed no transaction): the handler
    /// told of what was applied, the metrics counted, and what became of
    /// each message.
    fn finish_batch(
        &self,
        events: &[(&tracing::Span, Option<Delivery>, Option<Effect>)],
        started: std::time::Instant,
    ) -> Vec<Processed> {
        let seconds = started.elapsed().as_secs_f64();
        for (_, delivery, effect) in events {
            if let (Some(delivery), Some(effect)) = (delivery, effect) {
                if *effect == Effect::Applied {
                    self.handler.committed(delivery);
                }
                self.health.metrics().handled(
                    delivery.message.name(),
                    Attempt::from(*effect),
                    seconds,
                );
            }
        }
        // A record redriven for another service has no delivery: ignored.
        events
            .iter()
            .map(|(.., effect)| effect.map_or(Processed::Ignored, Processed::from))
            .collect()
    }

    /// The message's consumer span, in OpenTelemetry's messaging
    /// conventions, so that a tracing backend shows the hop from producer
    /// to consumer.
    fn span(&self, message: &OwnedMessage) -> tracing::Span {
        let span = tracing::info_span!(
            "process",
            otel.name = %format_args!("process {}", message.topic()),
            otel.kind = "consumer",
            otel.status_code = Empty,
            service = %self.service,
            trace_id = Empty,
            event_type = Empty,
            order_id = Empty,
        );
        for (key, value) in [
            ("messaging.system", "kafka"),
            ("messaging.operation.type", "process"),
            ("messaging.operation.name", "process"),
        ] {
            attribute(&span, key, value);
        }
        attribute(
            &span,
            "messaging.destination.name",
            message.topic().to_owned(),
        );
        attribute(
            &span,
            "messaging.destination.partition.id",
            message.partition().to_string(),
        );
        attribute(&span, "messaging.consumer.group.name", self.group.clone());
        attribute(&span, "messaging.kafka.offset", message.offset());
        if let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) {
            attribute(&span, "messaging.kafka.message.key", key.to_owned());
        }
        if let Some(id) = header_text(message, EVENT_ID_HEADER) {
            attribute(&span, "messaging.message.id", id.to_owned());
        }
        choreo_telemetry::continue_trace(&span, header_text(message, TRACEPARENT));
        span
    }

    async fn try_process(&self, message: &OwnedMessage) -> Result<Processed, Failure> {
        let Some(delivery) = self.delivery(message).await? else {
            return Ok(Processed::Ignored);
        };
        let started = std::time::Instant::now();
        let result = apply_effect(&self.pool, &self.handler, &delivery).await;
        let attempt = match &result {
            Ok(effect) => Attempt::from(*effect),
            Err(HandlerError::Transient(_)) => Attempt::Failed,
            Err(HandlerError::Permanent { .. }) => Attempt::Rejected,
        };
        self.health.metrics().handled(
            delivery.message.name(),
            attempt,
            started.elapsed().as_secs_f64(),
        );
        match result {
            Ok(effect) => Ok(effect.into()),
            Err(HandlerError::Transient(e)) => Err(Failure::Transient(error_chain(e.as_ref()))),
            Err(HandlerError::Permanent { reason }) => Err(Failure::Permanent(reason)),
        }
    }

    /// The message decoded, with where it came from; `None` for a letter
    /// redriven for another service.
    async fn delivery(&self, message: &OwnedMessage) -> Result<Option<Delivery>, Failure> {
        if let Some(target) = header_text(message, header::REDRIVE_FOR) {
            if target != self.service {
                // Redriven for another consumer of this topic.
                return Ok(None);
            }
        }
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
        Ok(Some(Delivery {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            message: decoded,
        }))
    }

    /// Publishes `message` to the dead-letter topic, retrying until the
    /// broker acknowledges it or `stop`.
    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        reason: &str,
        component: &str,
        stop: &CancellationToken,
    ) -> Result<(), Abandoned> {
        let mut attempt = 0u32;
        let result = loop {
            let published = tokio::select! {
                _ = stop.cancelled() => break Err(Abandoned),
                r = self.dead_letters.publish(message, reason) => r,
            };
            match published {
                Ok(id) => {
                    self.health.metrics().dead_lettered(message.topic());
                    tracing::error!(%reason, dead_letter = %id, topic = %self.dead_letters.topic, "event cannot be applied; dead-lettered");
                    break Ok(());
                }
                Err(e) => {
                    attempt += 1;
                    self.health.metrics().retried("dead_letter");
                    let error = error_chain(&e);
                    tracing::warn!(%error, attempt, "cannot dead-letter the event; retrying");
                    self.health.stall(component, &error);
                    tokio::select! {
                        _ = stop.cancelled() => break Err(Abandoned),
                        _ = tokio::time::sleep(backoff(attempt)) => {}
                    }
                }
            }
        };
        // Done or abandoned, this worker is no longer stuck on the event.
        if attempt > 0 {
            self.health.recover(component);
        }
        result
    }
}
