//! The runtime's metrics, in Prometheus' data model (`prometheus-client`):
//! how long handlers take, what retries and dead-letters, how far behind
//! each partition is, and what waits in the outbox. One set per service,
//! shared by its consumer, relay and dead-letter publisher through
//! [`Health`](crate::Health); the service serves them at `/metrics`.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use sqlx::PgPool;
use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    event_type: String,
    /// `applied`, `duplicate`, `ignored`, `failed` (retried) or `rejected`
    /// (dead-lettered).
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabels {
    /// `consumer`, `dead_letter` or `relay`.
    component: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StalledLabels {
    /// What is stuck: `broker`, `registry`, `relay`, a partition
    /// (`order.events/2`), ...
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    topic: String,
    partition: i32,
    /// `committed`: from the group's committed offset, as the group
    /// coordinator answers; `position`: from what this member applied.
    by: &'static str,
}

/// A partition's lag, two ways: they differ while the member has applied
/// events whose offsets the group has not committed yet, and for good when
/// the group stopped taking its commits (which the group watch heals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Lag {
    /// Events past the group's committed offset (what a restart would
    /// read again); `None` when the coordinator could not be asked.
    pub committed: Option<i64>,
    /// Events past this member's position.
    pub position: Option<i64>,
}

#[derive(Debug)]
pub struct RuntimeMetrics {
    handler_duration: Family<HandledLabels, Histogram>,
    retries: Family<ComponentLabels, Counter>,
    dead_letters: Family<TopicLabels, Counter>,
    published: Family<TopicLabels, Counter>,
    consumer_lag: Family<LagLabels, Gauge>,
    commit_failures: Family<PartitionLabels, Counter>,
    rejoins: Counter,
    stalled: Family<StalledLabels, Gauge>,
    outbox_backlog: Gauge,
    outbox_oldest_age: Gauge<f64, AtomicU64>,
    /// The same numbers as a plain snapshot, for `/stats` (a Prometheus
    /// family cannot be read back series by series).
    dead_letters_total: AtomicU64,
    retries_total: AtomicU64,
    commit_failures_total: AtomicU64,
    lag: Mutex<BTreeMap<String, Lag>>,
}

/// What [`RuntimeMetrics::summary`] reports, for the saga dashboard.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Events dead-lettered since the process started.
    pub dead_letters: u64,
    /// Retries since the process started.
    pub retries: u64,
    /// `topic/partition` → events not yet consumed, by the group's
    /// committed offset and by this member's position, for the partitions
    /// it holds, as of the group watch's last check.
    pub consumer_lag: BTreeMap<String, Lag>,
    /// Offset commits the group refused since the process started.
    pub commit_failures: u64,
    /// Times the consumer replaced its group member because the group no
    /// longer took its progress (see the group watch).
    pub rejoins: u64,
    pub outbox_backlog: i64,
    pub outbox_oldest_age_seconds: f64,
}

impl Default for RuntimeMetrics {
    /// With the series an operator alerts on already there at zero: a
    /// counter's first step from no series at all is one `increase()`
    /// cannot see, and a panel reads "no data" where it should read 0.
    /// Each partition's commit failures start with its lag
    /// ([`RuntimeMetrics::record_lag`]), each input's dead letters with
    /// the consumer ([`RuntimeMetrics::expect_input`]).
    fn default() -> Self {
        let metrics = Self::empty();
        for component in ["consumer", "dead_letter", "relay"] {
            let _ = metrics
                .retries
                .get_or_create(&ComponentLabels { component });
        }
        for component in ["broker", "registry", "relay"] {
            metrics.set_stalled(component, false);
        }
        metrics
    }
}

impl RuntimeMetrics {
    fn empty() -> Self {
        Self {
            // 0.5 ms to about 16 s: a handler is a few queries, and a slow one
            // is waiting on a lock or a provider.
            handler_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            retries: Family::default(),
            dead_letters: Family::default(),
            published: Family::default(),
            consumer_lag: Family::default(),
            commit_failures: Family::default(),
            rejoins: Counter::default(),
            stalled: Family::default(),
            outbox_backlog: Gauge::default(),
            outbox_oldest_age: Gauge::default(),
            dead_letters_total: AtomicU64::new(0),
            retries_total: AtomicU64::new(0),
            commit_failures_total: AtomicU64::new(0),
            lag: Mutex::default(),
        }
    }
}

/// What became of one attempt at an event, for [`RuntimeMetrics::handled`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attempt {
    Applied,
    Duplicate,
    Ignored,
    Failed,
    Rejected,
}

impl From<crate::Effect> for Attempt {
    fn from(effect: crate::Effect) -> Self {
        match effect {
            crate::Effect::Applied => Attempt::Applied,
            crate::Effect::Duplicate => Attempt::Duplicate,
            crate::Effect::Ignored => Attempt::Ignored,
        }
    }
}

impl RuntimeMetrics {
    /// Adds the metrics to `registry`, under the `choreo_` names the README
    /// lists.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "choreo_handler_duration_seconds",
            "Time to apply one consumed event (inbox, handler, commit; in a batch, the whole batch's), by event type and outcome",
            self.handler_duration.clone(),
        );
        registry.register(
            "choreo_retries",
            "Attempts retried after a transient failure, by component",
            self.retries.clone(),
        );
        registry.register(
            "choreo_dead_letters",
            "Events this service could never apply and put on its dead-letter topic, by source topic",
            self.dead_letters.clone(),
        );
        registry.register(
            "choreo_events_published",
            "Outbox rows the relay published and the broker acknowledged, by topic",
            self.published.clone(),
        );
        registry.register(
            "choreo_consumer_lag",
            "Events on a partition this member holds past the group's committed offset (by=committed, as the coordinator answers) or past this member's position (by=position)",
            self.consumer_lag.clone(),
        );
        registry.register(
            "choreo_offset_commit_failures",
            "Offset commits the group refused, by partition; each is tried again at the next commit",
            self.commit_failures.clone(),
        );
        registry.register(
            "choreo_stalled",
            "1 while a part of the service cannot make progress (the broker or the registry unreachable, a partition retrying an event, the relay unable to publish), by component; 0 once it has recovered",
            self.stalled.clone(),
        );
        registry.register(
            "choreo_consumer_rejoins",
            "Times the consumer replaced its group member because the group no longer took its progress",
            self.rejoins.clone(),
        );
        registry.register(
            "choreo_outbox_backlog",
            "Outbox rows not yet published",
            self.outbox_backlog.clone(),
        );
        registry.register(
            "choreo_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox row; 0 when the outbox is empty",
            self.outbox_oldest_age.clone(),
        );
    }

    pub(crate) fn handled(&self, event_type: &str, attempt: Attempt, seconds: f64) {
        let outcome = match attempt {
            Attempt::Applied => "applied",
            Attempt::Duplicate => "duplicate",
            Attempt::Ignored => "ignored",
            Attempt::Failed => "failed",
            Attempt::Rejected => "rejected",
        };
        self.handler_duration
            .get_or_create(&HandledLabels {
                event_type: event_type.to_owned(),
                outcome,
            })
            .observe(seconds);
    }

    pub(crate) fn set_stalled(&self, component: &str, stalled: bool) {
        self.stalled
            .get_or_create(&StalledLabels {
                component: component.to_owned(),
            })
            .set(i64::from(stalled));
    }

    pub(crate) fn retried(&self, component: &'static str) {
        self.retries_total.fetch_add(1, Ordering::Relaxed);
        self.retries
            .get_or_create(&ComponentLabels { component })
            .inc();
    }

    pub(crate) fn dead_lettered(&self, source_topic: &str) {
        self.dead_letters_total.fetch_add(1, Ordering::Relaxed);
        self.dead_letters
            .get_or_create(&TopicLabels {
                topic: source_topic.to_owned(),
            })
            .inc();
    }

    /// Starts `topic`'s dead-letter count at zero (see `Default`).
    pub(crate) fn expect_input(&self, topic: &str) {
        let _ = self.dead_letters.get_or_create(&TopicLabels {
            topic: topic.to_owned(),
        });
    }

    pub(crate) fn published(&self, topic: &str) {
        self.published
            .get_or_create(&TopicLabels {
                topic: topic.to_owned(),
            })
            .inc();
    }

    /// Replaces the lag of every partition with the group watch's last
    /// reading, by `(topic, partition)`: partitions the member no longer
    /// holds disappear.
    pub(crate) fn record_lag(&self, lag: &[((String, i32), Lag)]) {
        self.consumer_lag.clear();
        for ((topic, partition), l) in lag {
            // At zero from the first reading on (see `Default`).
            let _ = self.commit_failures.get_or_create(&PartitionLabels {
                topic: topic.clone(),
                partition: *partition,
            });
            for (by, value) in [("committed", l.committed), ("position", l.position)] {
                if let Some(value) = value {
                    self.consumer_lag
                        .get_or_create(&LagLabels {
                            topic: topic.clone(),
                            partition: *partition,
                            by,
                        })
                        .set(value);
                }
            }
        }
        if let Ok(mut last) = self.lag.lock() {
            *last = lag
                .iter()
                .map(|((topic, partition), l)| (format!("{topic}/{partition}"), *l))
                .collect();
        }
    }

    pub(crate) fn commit_failed(&self, topic: &str, partition: i32) {
        self.commit_failures_total.fetch_add(1, Ordering::Relaxed);
        self.commit_failures
            .get_or_create(&PartitionLabels {
                topic: topic.to_owned(),
                partition,
            })
            .inc();
    }

    pub(crate) fn rejoined(&self) {
        self.rejoins.inc();
    }

    /// The numbers an operator watches, as of now (the outbox as of the
    /// last [`RuntimeMetrics::read_outbox`]).
    pub fn summary(&self) -> Summary {
        Summary {
            dead_letters: self.dead_letters_total.load(Ordering::Relaxed),
            retries: self.retries_total.load(Ordering::Relaxed),
            consumer_lag: self.lag.lock().map(|l| l.clone()).unwrap_or_default(),
            commit_failures: self.commit_failures_total.load(Ordering::Relaxed),
            rejoins: self.rejoins.get(),
            outbox_backlog: self.outbox_backlog.get(),
            outbox_oldest_age_seconds: self.outbox_oldest_age.get(),
        }
    }

    /// Reads the outbox's backlog and its oldest row's age, for a scrape.
    ///
    /// # Errors
    /// When the database cannot answer; the gauges keep their last values.
    pub async fn read_outbox(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        // The partial index on unpublished rows keeps this cheap however
        // large the published history is.
        let (backlog, oldest): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8
             FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(pool)
        .await?;
        self.outbox_backlog.set(backlog);
        self.outbox_oldest_age.set(oldest.unwrap_or(0.0).max(0.0));
        Ok(())
    }
}
