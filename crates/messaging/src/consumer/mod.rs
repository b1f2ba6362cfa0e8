//! The consumer: partitions in parallel, each partition in order.
//!
//! One task reads the group's messages and hands each to the worker of its
//! partition (`partition`), over a bounded queue. Events with the same key
//! (an order id) share a partition, so they are applied in order, while a
//! slow order on one partition does not hold up the others. When a
//! partition's queue is full the reader pauses fetching for that partition,
//! keeps the few messages already fetched, and resumes once the worker has
//! caught up: a slow handler costs a bounded amount of memory.
//!
//! Each worker decodes a message, applies it with [`apply`] (inbox record
//! and effect in one transaction; with `batch_max` above 1, the messages
//! queued behind it in the same one) and only then stores its offset, which
//! the client commits in the background and on shutdown. A crash anywhere before
//! the database commit redelivers the event; after it, the redelivered event
//! finds its id in the inbox and is skipped. Either way the effect happens
//! once.

mod partition;

use crate::{
    Handler, Health, KafkaSettings, MessagingError, admin, dead_letter::DeadLetters,
    process::Processor, relay::backoff,
};
use choreo_events::{Decoder, RegistryClient, Topic};
use partition::Partition;
use rdkafka::{
    ClientContext, Message, TopicPartitionList,
    consumer::{
        BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
    },
    message::OwnedMessage,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};
use tokio::{
    sync::mpsc::{self, error::TrySendError},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

/// How a service consumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerSettings {
    /// Messages fetched ahead per partition; beyond this the partition is
    /// paused until its handler catches up.
    pub partition_queue: usize,
    /// Static group membership (`group.instance.id`, KIP-345): a name for
    /// this replica that stays the same across its restarts and differs
    /// from every other replica of the service (a pod name, `order-0`).
    /// A restarted replica then takes its old place in the group, with its
    /// partitions, instead of waiting for the group to evict its dead self.
    /// On the local Tansu broker this is what keeps a group usable after a
    /// member is SIGKILLed (see DEVELOPERS.md). `None`: dynamic membership.
    pub instance_id: Option<String>,
    /// How long the broker may hold a fetch that finds nothing new
    /// (`fetch.wait.max.ms`, Kafka's default 500 ms). A broker answers as
    /// soon as a message arrives (Apache Kafka, and the patched local
    /// Tansu), so this only sets how often an idle consumer asks. Measured
    /// on the local broker with an idle `choreo up`: 0.02 cores at 500 ms;
    /// before the broker kept watermarks in memory, when each ask read
    /// every partition the consumer holds, 0.51 cores at 50 ms and 0.06 at
    /// 500. (Tansu 0.6 as published held every fetch this long, data or
    /// not, and then it was added to every hop of a saga.)
    pub fetch_wait_ms: u32,
    /// The most events of one partition applied in one transaction. A
    /// worker takes what has queued up while it applied the last batch,
    /// never waiting for more, so this only matters under load.
    ///
    /// Off (1: a transaction per event) unless a service turns it on. It
    /// pays where a partition owns the rows its events touch; where events
    /// of several partitions change the same rows (one product's stock),
    /// a batch holds their locks for the whole batch, batches wait on each
    /// other, and the benchmark measured more transactions per saga with
    /// it, not fewer (README, "Where it stands").
    pub batch_max: usize,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            partition_queue: 64,
            instance_id: None,
            fetch_wait_ms: 500,
            batch_max: 1,
        }
    }
}

/// `(topic, partition)`.
type Key = (String, i32);

/// Partitions taken from or given to this consumer in a rebalance.
pub(crate) enum Rebalanced {
    Revoked(Vec<Key>),
    Assigned(Vec<Key>),
}

/// Reports rebalances to the reader. librdkafka calls it on the thread that
/// polls, inside `recv`, before `recv` returns any message fetched for the
/// new assignment: so the reader learns of a rebalance before it sees a
/// message that follows it.
///
/// It also takes librdkafka's periodic statistics, for the consumer lag
/// per partition at `/metrics`.
pub(crate) struct Rebalances(mpsc::UnboundedSender<Rebalanced>, Health);

fn keys(list: &TopicPartitionList) -> Vec<Key> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for Rebalances {
    fn stats(&self, statistics: rdkafka::Statistics) {
        self.1.metrics().record_lag(&statistics);
    }
}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let _ = self.0.send(Rebalanced::Revoked(keys(list)));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let _ = self.0.send(Rebalanced::Assigned(keys(list)));
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
pub(crate) struct GroupConsumer(Option<StreamConsumer<Rebalances>>);

impl std::ops::Deref for GroupConsumer {
    type Target = StreamConsumer<Rebalances>;

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

/// What every partition worker shares.
pub(crate) struct Shared<H> {
    pub(crate) consumer: GroupConsumer,
    pub(crate) processor: Processor<H>,
}

pub struct Consumer<H> {
    shared: Arc<Shared<H>>,
    kafka: KafkaSettings,
    settings: ConsumerSettings,
    rebalances: mpsc::UnboundedReceiver<Rebalanced>,
}

/// A partition's worker as the reader sees it.
struct Lane {
    queue: mpsc::Sender<OwnedMessage>,
    /// Fetched while the queue was full, in offset order.
    parked: VecDeque<OwnedMessage>,
    stop: CancellationToken,
}

impl<H: Handler> Consumer<H> {
    /// Subscribes the group `<prefix><service>` to `inputs`.
    ///
    /// # Errors
    /// When librdkafka rejects the configuration or the subscription.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kafka: &KafkaSettings,
        settings: &ConsumerSettings,
        service: &str,
        inputs: &[Topic],
        pool: PgPool,
        registry: RegistryClient,
        handler: H,
        health: Health,
    ) -> Result<Self, MessagingError> {
        let topics = kafka.topics();
        let group = format!("{}{service}", kafka.topic_prefix);
        let mut config = kafka.client_config();
        config
            .set("group.id", &group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            // Offsets are stored by hand, only after the effect commits.
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // A saga is a chain of hops; the broker's default 500 ms fetch
            // wait would be paid at every hop when traffic is light.
            .set("fetch.wait.max.ms", settings.fetch_wait_ms.to_string())
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // Also the rebalance timeout: how long Apache Kafka lets a
            // rebalance wait for a member that joined and went silent (a
            // process killed mid-rebalance); the default is 5 minutes of a
            // stalled group. The reader polls continuously, so a short
            // interval costs nothing. (Tansu does not apply it: see the
            // README on the local broker.)
            .set("max.poll.interval.ms", "20000")
            // The lag at `/metrics` is at most this old.
            .set("statistics.interval.ms", "5000");
        if let Some(instance) = &settings.instance_id {
            config.set("group.instance.id", instance);
        }
        kafka.apply_overrides(&mut config);
        let (rebalance_tx, rebalances) = mpsc::unbounded_channel();
        let consumer: StreamConsumer<Rebalances> = config
            .create_with_context(Rebalances(rebalance_tx, health.clone()))
            .map_err(MessagingError::kafka(format!(
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
            shared: Arc::new(Shared {
                consumer: GroupConsumer(Some(consumer)),
                processor: Processor {
                    service: service.to_owned(),
                    group: group.clone(),
                    pool,
                    decoder: Decoder::new(registry),
                    topics,
                    handler,
                    dead_letters: DeadLetters::new(kafka, service)?,
                    health,
                },
            }),
            kafka: kafka.clone(),
            settings: settings.clone(),
            rebalances,
        })
    }

    /// Consumes until `shutdown`. Then every worker finishes the event in
    /// hand (or gives up its retries), the queued events are left for the
    /// next run, and the offsets of finished events are committed.
    pub async fn run(mut self, shutdown: CancellationToken) {
        self.ensure_dead_letter_topic(&shutdown).await;
        let mut lanes: HashMap<Key, Lane> = HashMap::new();
        let mut workers = JoinSet::new();
        let mut retry_parked = tokio::time::interval(Duration::from_millis(20));
        retry_parked.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures = 0u32;
        loop {
            let any_parked = lanes.values().any(|l| !l.parked.is_empty());
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(rebalanced) = self.rebalances.recv() => {
                    self.rebalanced(&mut lanes, rebalanced);
                }
                _ = retry_parked.tick(), if any_parked => {
                    for (key, lane) in &mut lanes {
                        self.unpark(key, lane);
                    }
                }
                message = self.shared.consumer.recv() => match message {
                    Ok(message) => {
                        failures = 0;
                        let message = message.detach();
                        // A rebalance reported during this `recv` comes
                        // first: the message may belong to the new
                        // assignment, not to a lane about to be dropped.
                        while let Ok(rebalanced) = self.rebalances.try_recv() {
                            self.rebalanced(&mut lanes, rebalanced);
                        }
                        let key = (message.topic().to_owned(), message.partition());
                        let lane = lanes.entry(key.clone()).or_insert_with(|| {
                            self.spawn_worker(&mut workers, key.clone(), &shutdown)
                        });
                        self.dispatch(&key, lane, message);
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, service = %self.shared.processor.service, "consumer error");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(backoff(failures)) => {}
                        }
                    }
                },
            }
        }
        // Workers see the same shutdown token: each finishes its event in
        // hand and stops without taking the next.
        drop(lanes);
        while workers.join_next().await.is_some() {}
        if let Err(e) = self.shared.consumer.commit_consumer_state(CommitMode::Sync) {
            // Nothing stored since the last commit is the usual cause.
            tracing::debug!(error = %e, "final offset commit");
        }
        tracing::info!(service = %self.shared.processor.service, "consumer stopped");
    }

    fn rebalanced(&self, lanes: &mut HashMap<Key, Lane>, rebalanced: Rebalanced) {
        match rebalanced {
            Rebalanced::Revoked(keys) => {
                for key in keys {
                    if let Some(lane) = lanes.remove(&key) {
                        // Its queued events are dropped unapplied, their
                        // offsets unstored: the partition's next owner
                        // fetches them again from the committed offset. An
                        // event the worker is applying right now, the
                        // inbox deduplicates.
                        lane.stop.cancel();
                        self.shared.processor.health.set_paused(&label(&key), false);
                    }
                }
            }
            Rebalanced::Assigned(keys) => {
                // A partition paused before a rebalance must not stay paused
                // with no lane left to resume it.
                let mut list = TopicPartitionList::new();
                for (topic, partition) in &keys {
                    list.add_partition(topic, *partition);
                }
                if let Err(e) = self.shared.consumer.resume(&list) {
                    tracing::debug!(error = %e, "resuming newly assigned partitions");
                }
            }
        }
    }

    /// The dead-letter topic must exist before anything can be
    /// dead-lettered; creating it is a no-op when it does.
    async fn ensure_dead_letter_topic(&self, shutdown: &CancellationToken) {
        let name = self.shared.processor.dead_letters.topic.clone();
        let mut attempt = 0u32;
        loop {
            match admin::ensure_topics(&self.kafka, std::slice::from_ref(&name)).await {
                Ok(()) => {
                    self.shared.processor.health.recover("dead-letter topic");
                    return;
                }
                Err(e) => {
                    attempt += 1;
                    let error = crate::relay::error_chain(&e);
                    tracing::warn!(%error, attempt, topic = %name, "cannot create the dead-letter topic; retrying");
                    self.shared
                        .processor
                        .health
                        .stall("dead-letter topic", &error);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff(attempt)) => {}
            }
        }
    }

    fn spawn_worker(
        &self,
        workers: &mut JoinSet<()>,
        key: Key,
        shutdown: &CancellationToken,
    ) -> Lane {
        let (queue, receiver) = mpsc::channel(self.settings.partition_queue.max(1));
        let stop = shutdown.child_token();
        let worker = Partition {
            shared: self.shared.clone(),
            topic: key.0,
            partition: key.1,
            batch_max: self.settings.batch_max.max(1),
        };
        workers.spawn(worker.run(receiver, stop.clone()));
        Lane {
            queue,
            parked: VecDeque::new(),
            stop,
        }
    }

    /// Queues `message` for its partition's worker, or parks it and pauses
    /// the partition when the worker is behind.
    fn dispatch(&self, key: &Key, lane: &mut Lane, message: OwnedMessage) {
        if !lane.parked.is_empty() {
            // Fetched before the pause took effect; keep offset order.
            lane.parked.push_back(message);
            return;
        }
        match lane.queue.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(message)) => {
                lane.parked.push_back(message);
                self.set_paused(key, true);
            }
            // The worker stopped: shutdown is under way.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Moves parked messages into the queue as room frees up, and resumes
    /// the partition once none is left.
    fn unpark(&self, key: &Key, lane: &mut Lane) {
        if lane.parked.is_empty() {
            return;
        }
        while let Some(message) = lane.parked.pop_front() {
            match lane.queue.try_send(message) {
                Ok(()) => {}
                Err(TrySendError::Full(message)) => {
                    lane.parked.push_front(message);
                    return;
                }
                Err(TrySendError::Closed(_)) => {
                    lane.parked.clear();
                    break;
                }
            }
        }
        self.set_paused(key, false);
    }

    fn set_paused(&self, key: &Key, paused: bool) {
        let mut list = TopicPartitionList::new();
        list.add_partition(&key.0, key.1);
        let result = if paused {
            self.shared.consumer.pause(&list)
        } else {
            self.shared.consumer.resume(&list)
        };
        match result {
            Ok(()) => {
                tracing::debug!(topic = %key.0, partition = key.1, paused, "partition backpressure");
                self.shared.processor.health.set_paused(&label(key), paused);
            }
            // A partition revoked meanwhile; its lane is about to go.
            Err(e) => {
                tracing::debug!(error = %e, topic = %key.0, partition = key.1, "pause/resume")
            }
        }
    }
}

fn label((topic, partition): &Key) -> String {
    format!("{topic}/{partition}")
}
