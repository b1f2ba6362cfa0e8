//! The consumer's membership in its group, as librdkafka reports it:
//! rebalances, offset commits and the partitions' ends, and the group
//! member itself, closed with a deadline.

use crate::Health;
use rdkafka::{
    ClientContext, Offset, TopicPartitionList,
    consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer},
    error::{KafkaError, KafkaResult},
    types::RDKafkaErrorCode,
};
use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard},
    time::Duration,
};
use tokio::sync::mpsc;

/// `(topic, partition)`.
pub(crate) type Key = (String, i32);

pub(crate) fn label((topic, partition): &Key) -> String {
    format!("{topic}/{partition}")
}

/// Partitions taken from or given to this consumer in a rebalance.
pub(crate) enum Rebalanced {
    Revoked(Vec<Key>),
    Assigned(Vec<Key>),
}

/// What one offset commit did, per partition: the offset the group now
/// has, or why it was refused.
pub(crate) type Commit = Vec<(Key, Result<i64, String>)>;

/// Where this member stands on each of its partitions, as far as it knows
/// without asking the broker: what it has applied, and the partitions'
/// ends from librdkafka's statistics.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// The next offset to apply (the last applied one plus one).
    applied: Mutex<BTreeMap<Key, i64>>,
    /// Each fetched partition's high watermark, every statistics interval.
    ends: Mutex<BTreeMap<Key, i64>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain numbers: a panic while holding the lock leaves them meaningful.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Progress {
    /// `offset` of `key` is applied (its effect committed, its offset stored).
    pub(crate) fn applied(&self, key: &Key, offset: i64) {
        // Once per applied event: the key is copied only the first time.
        let mut applied = locked(&self.applied);
        match applied.get_mut(key) {
            Some(next) => *next = offset + 1,
            None => {
                applied.insert(key.clone(), offset + 1);
            }
        }
    }

    pub(crate) fn forget(&self, keys: &[Key]) {
        let mut applied = locked(&self.applied);
        for key in keys {
            applied.remove(key);
        }
    }

    pub(crate) fn applied_positions(&self) -> BTreeMap<Key, i64> {
        locked(&self.applied).clone()
    }

    pub(crate) fn ends(&self) -> BTreeMap<Key, i64> {
        locked(&self.ends).clone()
    }
}

/// Reports rebalances and offset commits to the consumer, and keeps the
/// partitions' ends from librdkafka's periodic statistics.
///
/// librdkafka calls it on the thread that polls, inside `recv`. A
/// rebalance is reported before `recv` returns any message fetched for the
/// new assignment, so the reader learns of it before it sees a message
/// that follows it.
pub(crate) struct GroupContext {
    pub(crate) rebalances: mpsc::UnboundedSender<Rebalanced>,
    pub(crate) commits: mpsc::UnboundedSender<Commit>,
    pub(crate) health: Health,
    pub(crate) progress: Progress,
}

fn keys(list: &TopicPartitionList) -> Vec<Key> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for GroupContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut ends = BTreeMap::new();
        for (topic, t) in &statistics.topics {
            for (id, p) in &t.partitions {
                // -1 is librdkafka's internal partition; a watermark of -1
                // is not known yet.
                if *id >= 0 && p.hi_offset >= 0 {
                    ends.insert((topic.clone(), *id), p.hi_offset);
                }
            }
        }
        *locked(&self.progress.ends) = ends;
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let _ = self.rebalances.send(Rebalanced::Revoked(keys(list)));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let _ = self.rebalances.send(Rebalanced::Assigned(keys(list)));
        }
    }

    /// Every commit, the automatic ones included. A refused commit is
    /// counted and logged with its partition; the offsets stay stored, so
    /// the next automatic commit (a second later) tries them again, and the
    /// group watch (`watch`) heals a group whose commits keep failing.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) = result {
            // Nothing stored since the last commit: nothing was asked.
            return;
        }
        let mut commit = Commit::new();
        for element in offsets.elements() {
            let key = (element.topic().to_owned(), element.partition());
            let refused = match (&result, &element.error()) {
                (_, Err(e)) | (Err(e), Ok(())) => Some(e.to_string()),
                (Ok(()), Ok(())) => None,
            };
            match (refused, element.offset()) {
                (Some(error), offset) => {
                    tracing::warn!(
                        topic = %key.0, partition = key.1, ?offset, %error,
                        "offset commit failed; the offset stays stored and is committed again at the next commit"
                    );
                    self.health.metrics().commit_failed(&key.0, key.1);
                    commit.push((key, Err(error)));
                }
                (None, Offset::Offset(offset)) => commit.push((key, Ok(offset))),
                (None, _) => {}
            }
        }
        if !commit.is_empty() {
            let _ = self.commits.send(commit);
        }
    }
}

/// How long dropping the consumer may take to leave its group cleanly.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The group member, closed on a thread of its own when dropped.
///
/// librdkafka's consumer close (final commit, leave the group) waits for the
/// group coordinator with no deadline, and rdkafka's `Drop` polls until it
/// is done: with the broker gone, dropping a consumer would block its
/// thread, and the exit of the whole service, forever (seen with Tansu
/// killed under a running consumer). The close gets [`CLOSE_TIMEOUT`];
/// past that the thread is left behind and the process may exit without a
/// clean leave, which costs only a session timeout before the group hands
/// the partitions to another member.
pub(crate) struct GroupConsumer(pub(crate) Option<StreamConsumer<GroupContext>>);

impl std::ops::Deref for GroupConsumer {
    type Target = StreamConsumer<GroupContext>;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("the consumer is only taken on drop")
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        let Some(consumer) = self.0.take() else {
            return;
        };
        let (closed, done) = std::sync::mpsc::channel();
        let closing = std::thread::Builder::new()
            .name("consumer-close".into())
            .spawn(move || {
                drop(consumer);
                let _ = closed.send(());
            });
        if closing.is_ok() && done.recv_timeout(CLOSE_TIMEOUT).is_err() {
            tracing::warn!(
                timeout = ?CLOSE_TIMEOUT,
                "the consumer could not leave its group (is the broker down?); going on without a clean close"
            );
        }
    }
}
