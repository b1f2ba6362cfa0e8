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
//!
//! The group member itself is replaceable: the group watch (`watch`) checks
//! that the group still takes the member's commits, and when it no longer
//! does, the consumer hands its partitions back (workers finish the event
//! in hand), closes the member and joins with a new one, reporting not
//! ready meanwhile. Whatever the broker did, the service heals without a
//! restart.

mod group;
mod partition;
mod watch;

use crate::{
    Handler, Health, KafkaSettings, MessagingError, admin, backoff::backoff,
    dead_letter::DeadLetters, process::Processor,
};
use choreo_events::{Decoder, RegistryClient, Topic};
use group::{Commit, GroupConsumer, GroupContext, Key, Progress, Rebalanced, label};
use partition::Partition;
use rdkafka::{
    ClientConfig, Message, TopicPartitionList,
    consumer::{CommitMode, Consumer as _, StreamConsumer},
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// How often the group watch asks the group coordinator for the
    /// member's committed offsets (see `watch`), in seconds.
    pub group_check_seconds: f64,
    /// How long the group may refuse the member's commits, leave its
    /// committed offsets standing while the member applies events, or
    /// leave a partition with events without an owner while the member
    /// holds none, before the member reports it (the service reads as
    /// degraded) and is replaced.
    /// Longer than a commit takes in a slow moment (commits go out every
    /// second), shorter than an operator's patience.
    pub group_stall_seconds: f64,
    /// The longest message value decoded, in bytes; a longer one is
    /// dead-lettered unread. Apache Kafka's default `message.max.bytes`.
    pub max_message_bytes: usize,
    /// The most memory one value in a message may claim (a string's or an
    /// array's length), in bytes: a message that claims more is
    /// dead-lettered instead of allocated. For the whole process, set by
    /// its first consumer.
    pub max_allocation_bytes: usize,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            partition_queue: 64,
            instance_id: None,
            fetch_wait_ms: 500,
            batch_max: 1,
            group_check_seconds: 5.0,
            group_stall_seconds: 30.0,
            max_message_bytes: choreo_events::DEFAULT_MAX_MESSAGE_BYTES,
            max_allocation_bytes: 8 << 20,
        }
    }
}

/// What every partition worker of one group member shares.
pub(crate) struct Shared<H> {
    pub(crate) consumer: Arc<GroupConsumer>,
    pub(crate) processor: Arc<Processor<H>>,
}

pub struct Consumer<H> {
    processor: Arc<Processor<H>>,
    kafka: KafkaSettings,
    settings: ConsumerSettings,
    /// The group member's configuration, for each member it joins with.
    config: ClientConfig,
    group: String,
    topics: Vec<String>,
    /// The member `new` joined with, so that a bad configuration is an
    /// error at start; later members are joined by `run`.
    first: Option<Member>,
}

/// One group member and what its context reports.
struct Member {
    consumer: Arc<GroupConsumer>,
    rebalances: mpsc::UnboundedReceiver<Rebalanced>,
    commits: mpsc::UnboundedReceiver<Commit>,
}

/// Why a member stopped consuming.
enum Ended {
    Shutdown,
    /// The group watch found the group no longer takes its progress.
    Unhealthy(String),
    /// A partition's worker panicked: its events would go unapplied, so
    /// the consumer stops, and with it the service, for its supervisor to
    /// restart (a Kubernetes pod, `choreo up`'s process).
    WorkerPanicked(String),
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
        for input in inputs {
            health.metrics().expect_input(&topics.name(*input));
        }
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
            // The partitions' ends, for the lag the group watch reports,
            // are at most this old.
            .set("statistics.interval.ms", "5000");
        if let Some(instance) = &settings.instance_id {
            config.set("group.instance.id", instance);
        }
        kafka.apply_overrides(&mut config);
        let limit = choreo_events::limit_allocations(settings.max_allocation_bytes);
        if limit != settings.max_allocation_bytes {
            tracing::warn!(
                configured = settings.max_allocation_bytes,
                in_force = limit,
                "another consumer of this process set the allocation limit first"
            );
        }
        let mut consumer = Self {
            processor: Arc::new(Processor {
                service: service.to_owned(),
                group: group.clone(),
                pool,
                decoder: Decoder::new(registry).with_max_message_bytes(settings.max_message_bytes),
                topics: topics.clone(),
                handler,
                dead_letters: DeadLetters::new(kafka, service)?,
                health,
                inbox_first: false,
            }),
            kafka: kafka.clone(),
            settings: settings.clone(),
            config,
            group,
            topics: inputs.iter().map(|t| topics.name(*t)).collect(),
            first: None,
        };
        consumer.first = Some(consumer.join()?);
        Ok(consumer)
    }

    /// A new member of the group, subscribed to the inputs.
    fn join(&self) -> Result<Member, MessagingError> {
        let (rebalances_tx, rebalances) = mpsc::unbounded_channel();
        let (commits_tx, commits) = mpsc::unbounded_channel();
        let context = GroupContext {
            rebalances: rebalances_tx,
            commits: commits_tx,
            health: self.processor.health.clone(),
            progress: Progress::default(),
        };
        let group = &self.group;
        let consumer: StreamConsumer<GroupContext> = self
            .config
            .create_with_context(context)
            .map_err(MessagingError::kafka(format!(
                "creating consumer for group {group}"
            )))?;
        let refs: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&refs)
            .map_err(MessagingError::kafka(format!(
                "subscribing {group} to {:?}",
                self.topics
            )))?;
        Ok(Member {
            consumer: Arc::new(GroupConsumer(Some(consumer))),
            rebalances,
            commits,
        })
    }

    /// Consumes until `shutdown`. Then every worker finishes the event in
    /// hand (or gives up its retries), the queued events are left for the
    /// next run, and the offsets of finished events are committed.
    ///
    /// A member the group watch finds unhealthy is replaced by a new one
    /// the same way, without stopping the service.
    pub async fn run(mut self, shutdown: CancellationToken) {
        self.ensure_dead_letter_topic(&shutdown).await;
        let health = self.processor.health.clone();
        let service = self.processor.service.clone();
        let mut next = self.first.take();
        let mut attempt = 0u32;
        loop {
            let member = match next.take().map_or_else(|| self.join(), Ok) {
                Ok(member) => member,
                Err(e) => {
                    attempt += 1;
                    let error = choreo_telemetry::error_chain(&e);
                    tracing::warn!(%error, attempt, %service, "cannot join the consumer group; retrying");
                    health.stall(watch::COMPONENT, &error);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff(attempt)) => continue,
                    }
                }
            };
            attempt = 0;
            match self.consume(member, &shutdown).await {
                Ended::Shutdown => break,
                Ended::Unhealthy(reason) => {
                    tracing::error!(%service, group = %self.group, %reason, "the consumer group no longer takes this member's progress; joining with a new member");
                    health.metrics().rejoined();
                }
                Ended::WorkerPanicked(reason) => {
                    tracing::error!(%service, %reason, "stopping the consumer, and the service with it, to be restarted");
                    return;
                }
            }
        }
        tracing::info!(%service, "consumer stopped");
    }

    /// Consumes with `member` until `shutdown`, or until the group watch
    /// finds the member unhealthy.
    async fn consume(&self, member: Member, shutdown: &CancellationToken) -> Ended {
        let Member {
            consumer,
            mut rebalances,
            commits,
        } = member;
        let shared = Arc::new(Shared {
            consumer: consumer.clone(),
            processor: self.processor.clone(),
        });
        // Everything this member runs stops with it.
        let session = shutdown.child_token();
        let (unhealthy_tx, mut unhealthy) = mpsc::channel(1);
        let watch = tokio::spawn(watch::watch(
            consumer.clone(),
            commits,
            self.processor.health.clone(),
            watch::WatchSettings {
                check_interval: Duration::from_secs_f64(self.settings.group_check_seconds.max(0.1)),
                stall_after: Duration::from_secs_f64(self.settings.group_stall_seconds.max(1.0)),
                group: self.group.clone(),
                topics: self.topics.clone(),
            },
            unhealthy_tx,
            session.clone(),
        ));
        let mut lanes: HashMap<Key, Lane> = HashMap::new();
        let mut workers = JoinSet::new();
        let (panicked_tx, mut panicked) = mpsc::unbounded_channel();
        let mut retry_parked = tokio::time::interval(Duration::from_millis(20));
        retry_parked.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures = 0u32;
        let ended = loop {
            let any_parked = lanes.values().any(|l| !l.parked.is_empty());
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break Ended::Shutdown,
                Some(reason) = unhealthy.recv() => break Ended::Unhealthy(reason),
                Some((key, why)) = panicked.recv() => {
                    let reason = format!("the worker of {} panicked: {why}", label(&key));
                    self.processor.health.stall(&label(&key), &reason);
                    break Ended::WorkerPanicked(reason);
                }
                Some(rebalanced) = rebalances.recv() => {
                    self.rebalanced(&shared, &mut lanes, rebalanced);
                }
                _ = retry_parked.tick(), if any_parked => {
                    for (key, lane) in &mut lanes {
                        self.unpark(&shared, key, lane);
                    }
                }
                message = consumer.recv() => match message {
                    Ok(message) => {
                        failures = 0;
                        let message = message.detach();
                        // A rebalance reported during this `recv` comes
                        // first: the message may belong to the new
                        // assignment, not to a lane about to be dropped.
                        while let Ok(rebalanced) = rebalances.try_recv() {
                            self.rebalanced(&shared, &mut lanes, rebalanced);
                        }
                        let key = (message.topic().to_owned(), message.partition());
                        let lane = lanes.entry(key.clone()).or_insert_with(|| {
                            self.spawn_worker(&shared, &mut workers, key.clone(), &session, &panicked_tx)
                        });
                        self.dispatch(&shared, &key, lane, message);
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, service = %self.processor.service, "consumer error");
                        tokio::select! {
                            _ = shutdown.cancelled() => break Ended::Shutdown,
                            _ = tokio::time::sleep(backoff(failures)) => {}
                        }
                    }
                },
            }
        };
        // Workers see the session's token: each finishes its event in hand
        // and stops without taking the next.
        session.cancel();
        drop(lanes);
        while workers.join_next().await.is_some() {}
        let _ = watch.await;
        for paused in self.processor.health.snapshot().paused_partitions {
            self.processor.health.set_paused(&paused, false);
        }
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            // Nothing stored since the last commit is the usual cause.
            tracing::debug!(error = %e, "final offset commit");
        }
        // The last reference to the member goes with `shared` and
        // `consumer`: it closes (see `GroupConsumer`).
        ended
    }

    fn rebalanced(
        &self,
        shared: &Shared<H>,
        lanes: &mut HashMap<Key, Lane>,
        rebalanced: Rebalanced,
    ) {
        match rebalanced {
            Rebalanced::Revoked(keys) => {
                shared.consumer.context().progress.forget(&keys);
                for key in keys {
                    if let Some(lane) = lanes.remove(&key) {
                        // Its queued events are dropped unapplied, their
                        // offsets unstored: the partition's next owner
                        // fetches them again from the committed offset. An
                        // event the worker is applying right now, the
                        // inbox deduplicates.
                        lane.stop.cancel();
                        self.processor.health.set_paused(&label(&key), false);
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
                if let Err(e) = shared.consumer.resume(&list) {
                    tracing::debug!(error = %e, "resuming newly assigned partitions");
                }
            }
        }
    }

    /// The dead-letter topic must exist before anything can be
    /// dead-lettered; creating it is a no-op when it does.
    async fn ensure_dead_letter_topic(&self, shutdown: &CancellationToken) {
        let name = self.processor.dead_letters.topic.clone();
        let mut attempt = 0u32;
        loop {
            match admin::ensure_topics(&self.kafka, std::slice::from_ref(&name)).await {
                Ok(()) => {
                    self.processor.health.recover("dead-letter topic");
                    return;
                }
                Err(e) => {
                    attempt += 1;
                    let error = choreo_telemetry::error_chain(&e);
                    tracing::warn!(%error, attempt, topic = %name, "cannot create the dead-letter topic; retrying");
                    self.processor.health.stall("dead-letter topic", &error);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff(attempt)) => {}
            }
        }
    }

    /// Starts the worker of the partition `key`; should it panic, `panicked`
    /// hears which partition and why.
    fn spawn_worker(
        &self,
        shared: &Arc<Shared<H>>,
        workers: &mut JoinSet<()>,
        key: Key,
        session: &CancellationToken,
        panicked: &mpsc::UnboundedSender<(Key, String)>,
    ) -> Lane {
        let (queue, receiver) = mpsc::channel(self.settings.partition_queue.max(1));
        let stop = session.child_token();
        let worker = Partition {
            shared: shared.clone(),
            topic: key.0.clone(),
            partition: key.1,
            batch_max: self.settings.batch_max.max(1),
        };
        let panicked = panicked.clone();
        let run = std::panic::AssertUnwindSafe(worker.run(receiver, stop.clone()));
        workers.spawn(async move {
            if let Err(payload) = futures::FutureExt::catch_unwind(run).await {
                let why = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                let _ = panicked.send((key, why));
            }
        });
        Lane {
            queue,
            parked: VecDeque::new(),
            stop,
        }
    }

    /// Queues `message` for its partition's worker, or parks it and pauses
    /// the partition when the worker is behind.
    fn dispatch(&self, shared: &Shared<H>, key: &Key, lane: &mut Lane, message: OwnedMessage) {
        if !lane.parked.is_empty() {
            // Fetched before the pause took effect; keep offset order.
            lane.parked.push_back(message);
            return;
        }
        match lane.queue.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(message)) => {
                lane.parked.push_back(message);
                self.set_paused(shared, key, true);
            }
            // The worker stopped: shutdown is under way.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Moves parked messages into the queue as room frees up, and resumes
    /// the partition once none is left.
    fn unpark(&self, shared: &Shared<H>, key: &Key, lane: &mut Lane) {
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
        self.set_paused(shared, key, false);
    }

    fn set_paused(&self, shared: &Shared<H>, key: &Key, paused: bool) {
        let mut list = TopicPartitionList::new();
        list.add_partition(&key.0, key.1);
        let result = if paused {
            shared.consumer.pause(&list)
        } else {
            shared.consumer.resume(&list)
        };
        match result {
            Ok(()) => {
                tracing::debug!(topic = %key.0, partition = key.1, paused, "partition backpressure");
                self.processor.health.set_paused(&label(key), paused);
            }
            // A partition revoked meanwhile; its lane is about to go.
            Err(e) => {
                tracing::debug!(error = %e, topic = %key.0, partition = key.1, "pause/resume")
            }
        }
    }
}
