//! One partition's worker: applies its events one at a time, in offset order.
//!
//! Per event (see `process`): a transient failure (database down, registry
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
}

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
        self.shared
            .processor
            .process(message, &self.component(), stop)
            .await
            .map(|_| ())
    }
}
