//! One partition's worker: applies its events one at a time, in offset order.
//!
//! Per event: a transient failure (database down, registry unreachable) is
//! retried in place with capped, jittered exponential backoff, without moving
//! the offset and while reporting the partition stalled, so the service
//! reads as not ready until the event goes through. A permanent failure
//! (undecodable bytes, unknown schema id, a handler rejecting the event)
//! sends the message to the service's dead-letter topic; only once the
//! broker holds it does the offset move on.

use super::Shared;
use crate::{
    Delivery, Handler, HandlerError, apply,
    dead_letter::{header, header_text},
    fail_points,
    relay::{backoff, error_chain},
};
use choreo_events::CodecError;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer as _},
    message::OwnedMessage,
};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub(super) struct Partition<H> {
    pub(super) shared: Arc<Shared<H>>,
    pub(super) topic: String,
    pub(super) partition: i32,
}

enum Failure {
    Transient(String),
    Permanent(String),
}

/// Shutdown (or a rebalance) interrupted the event; its offset stays.
struct Abandoned;

impl<H: Handler> Partition<H> {
    pub(super) async fn run(
        self,
        mut queue: mpsc::Receiver<OwnedMessage>,
        stop: CancellationToken,
    ) {
        loop {
            let message = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                m = queue.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
            };
            if fail_points::mutant(fail_points::MUTANT_COMMIT_OFFSET_FIRST) {
                self.commit_offset_first(&message);
            }
            if self.process(&message, &stop).await.is_err() {
                break;
            }
            fail_points::crash_point(fail_points::CONSUMER_AFTER_COMMIT);
            // Stored only now that the effect (or the dead letter) is safe.
            if let Err(e) =
                self.shared
                    .consumer
                    .store_offset(&self.topic, self.partition, message.offset())
            {
                // The partition was revoked; its new owner redelivers the
                // event and the inbox skips it.
                tracing::debug!(error = %e, topic = %self.topic, partition = self.partition, "offset not stored");
            }
        }
    }

    /// The bug the mutant switch plants (see `fail_points`): the offset is
    /// committed before the effect, so a crash in between loses the event.
    fn commit_offset_first(&self, message: &OwnedMessage) {
        let mut list = TopicPartitionList::new();
        let next = Offset::Offset(message.offset() + 1);
        if list
            .add_partition_offset(&self.topic, self.partition, next)
            .is_ok()
        {
            if let Err(e) = self.shared.consumer.commit(&list, CommitMode::Sync) {
                // Then the planted bug did not take: say so, since a suite
                // run against this mutant would pass for the wrong reason.
                tracing::warn!(error = %e, topic = %self.topic, partition = self.partition, "mutant: offset not committed first");
            }
        }
    }

    fn component(&self) -> String {
        format!("consumer {}/{}", self.topic, self.partition)
    }

    async fn process(
        &self,
        message: &OwnedMessage,
        stop: &CancellationToken,
    ) -> Result<(), Abandoned> {
        let span = tracing::info_span!(
            "consume",
            messaging.system = "kafka",
            messaging.destination.name = %self.topic,
            messaging.kafka.partition = self.partition,
            messaging.kafka.message.offset = message.offset(),
            service = %self.shared.service,
            event_type = tracing::field::Empty,
            order_id = tracing::field::Empty,
        );
        async {
            let mut attempt = 0u32;
            let result = loop {
                let failure = match self.try_process(message).await {
                    Ok(()) => break Ok(()),
                    Err(f) => f,
                };
                let error = match failure {
                    Failure::Permanent(reason) => {
                        match self.dead_letter(message, &reason, stop).await {
                            Ok(()) => break Ok(()),
                            Err(Abandoned) => break Err(Abandoned),
                        }
                    }
                    Failure::Transient(error) => error,
                };
                attempt += 1;
                tracing::warn!(%error, attempt, "event failed; retrying in place");
                self.shared.health.stall(&self.component(), &error);
                tokio::select! {
                    _ = stop.cancelled() => break Err(Abandoned),
                    _ = tokio::time::sleep(backoff(attempt)) => {}
                }
            };
            if attempt > 0 {
                self.shared.health.recover(&self.component());
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn try_process(&self, message: &OwnedMessage) -> Result<(), Failure> {
        if let Some(target) = header_text(message, header::REDRIVE_FOR) {
            if target != self.shared.service {
                // Redriven for another consumer of this topic.
                return Ok(());
            }
        }
        let Some(payload) = message.payload() else {
            return Err(Failure::Permanent("message has no value".into()));
        };
        let decoded = match self.shared.decoder.decode(payload).await {
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
        let Some(topic) = self.shared.topics.parse(&self.topic) else {
            return Err(Failure::Permanent(format!(
                "unexpected topic {}",
                self.topic
            )));
        };
        let delivery = Delivery {
            topic,
            partition: self.partition,
            offset: message.offset(),
            traceparent: header_text(message, "traceparent").map(str::to_owned),
            message: decoded,
        };
        match apply(&self.shared.pool, &self.shared.handler, &delivery).await {
            Ok(_) => Ok(()),
            Err(HandlerError::Transient(e)) => Err(Failure::Transient(error_chain(e.as_ref()))),
            Err(HandlerError::Permanent { reason }) => Err(Failure::Permanent(reason)),
        }
    }

    /// Publishes `message` to the dead-letter topic, retrying until the
    /// broker acknowledges it or shutdown.
    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        reason: &str,
        stop: &CancellationToken,
    ) -> Result<(), Abandoned> {
        let mut attempt = 0u32;
        let result = loop {
            let published = tokio::select! {
                _ = stop.cancelled() => break Err(Abandoned),
                r = self.shared.dead_letters.publish(message, reason) => r,
            };
            match published {
                Ok(id) => {
                    tracing::error!(%reason, dead_letter = %id, topic = %self.shared.dead_letters.topic, "event cannot be applied; dead-lettered");
                    break Ok(());
                }
                Err(e) => {
                    attempt += 1;
                    let error = error_chain(&e);
                    tracing::warn!(%error, attempt, "cannot dead-letter the event; retrying");
                    self.shared.health.stall(&self.component(), &error);
                    tokio::select! {
                        _ = stop.cancelled() => break Err(Abandoned),
                        _ = tokio::time::sleep(backoff(attempt)) => {}
                    }
                }
            }
        };
        // Done or abandoned, this worker is no longer stuck on the event.
        if attempt > 0 {
            self.shared.health.recover(&self.component());
        }
        result
    }
}
