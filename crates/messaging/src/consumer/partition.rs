//! One partition's worker: applies its events in offset order; with
//! `batch_max` above 1, what has queued up since the last commit in one
//! transaction, so a busy partition pays one commit for several events and
//! an idle one adds no wait for a batch to fill.
//!
//! Per event (see `process`; a batch that fails is applied again event by
//! event): a transient failure (database down, registry
//! unreachable) is retried in place with capped, jittered exponential
//! backoff, without moving the offset and while reporting the partition
//! stalled, so the service reads as not ready until the event goes through.
//! A permanent failure (undecodable bytes, unknown schema id, a handler
//! rejecting the event) sends the message to the service's dead-letter
//! topic; only once the broker holds it does the offset move on.

use super::Shared;
use crate::{Handler, fail_points, process::Abandoned};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer as _},
    message::OwnedMessage,
};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(super) struct Partition<H> {
    pub(super) shared: Arc<Shared<H>>,
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) batch_max: usize,
}

impl<H: Handler> Partition<H> {
    pub(super) async fn run(
        self,
        mut queue: mpsc::Receiver<OwnedMessage>,
        stop: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(self.batch_max);
        let key = (self.topic.clone(), self.partition);
        loop {
            let message = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                m = queue.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
            };
            batch.clear();
            batch.push(message);
            while batch.len() < self.batch_max {
                match queue.try_recv() {
                    Ok(message) => batch.push(message),
                    Err(_) => break,
                }
            }
            let last = batch.last().map(Message::offset).unwrap_or_default();
            if fail_points::mutant(fail_points::MUTANT_COMMIT_OFFSET_FIRST) {
                self.commit_offset_first(last);
            }
            if self.process(&batch, &stop).await.is_err() {
                break;
            }
            fail_points::crash_point(fail_points::CONSUMER_AFTER_COMMIT);
            // Stored only now that the effects (or the dead letters) are safe.
            match self
                .shared
                .consumer
                .store_offset(&self.topic, self.partition, last)
            {
                Ok(()) => self.shared.consumer.context().progress.applied(&key, last),
                // The partition was revoked; its new owner redelivers the
                // events and the inbox skips them.
                Err(e) => {
                    tracing::debug!(error = %e, topic = %self.topic, partition = self.partition, "offset not stored")
                }
            }
        }
    }

    /// The bug the mutant switch plants (see `fail_points`): the offset is
    /// committed before the effect, so a crash in between loses the event.
    fn commit_offset_first(&self, last: i64) {
        let mut list = TopicPartitionList::new();
        let next = Offset::Offset(last + 1);
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
        batch: &[OwnedMessage],
        stop: &CancellationToken,
    ) -> Result<(), Abandoned> {
        self.shared
            .processor
            .process_batch(batch, &self.component(), stop)
            .await
            .map(|_| ())
    }
}
