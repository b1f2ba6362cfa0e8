//! The saga's own metrics: sagas started, finished by outcome and reason,
//! and how long they took, from the order's creation to its outcome; and,
//! read from the database at each scrape, the sagas still pending and how
//! old the oldest is, beside the deadline they are held to.
//!
//! A saga is counted as finished by the transaction that decides it, just
//! before that transaction commits: should the commit fail, the event is
//! retried and the saga counted once more. Prometheus counters are rates,
//! and such a commit failure is rare; what is never lost is the order.

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
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

/// The duration histogram's upper bounds: 10 ms to about 5 minutes (the
/// local saga takes tens of milliseconds, and the deadline, 30 s by
/// default, bounds it).
const DURATION_START: f64 = 0.01;
const DURATION_BUCKETS: u16 = 15;

fn duration_bounds() -> impl Iterator<Item = f64> {
    exponential_buckets(DURATION_START, 2.0, DURATION_BUCKETS)
}

/// The same counts as plain numbers, for `/stats` and the saga
/// dashboard's charts (a Prometheus family cannot be read back series by
/// series): sagas finished by outcome, and their durations counted into
/// the histogram's buckets, both outcomes together.
#[derive(Debug, Default)]
struct Totals {
    confirmed: AtomicU64,
    cancelled: AtomicU64,
    /// One per bound of [`duration_bounds`], then the rest (+Inf); not
    /// cumulative.
    durations: [AtomicU64; DURATION_BUCKETS as usize + 1],
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Finished {
    /// `confirmed` or `cancelled`.
    outcome: &'static str,
    /// The cancel reason (`OUT_OF_STOCK`, `TIMEOUT`, …); empty when
    /// confirmed.
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug)]
pub(crate) struct SagaMetrics {
    started: Counter,
    finished: Family<Finished, Counter>,
    duration: Family<Outcome, Histogram>,
    pending: Gauge,
    oldest_pending: Gauge<f64, AtomicU64>,
    deadline: Gauge<f64, AtomicU64>,
    totals: Arc<Totals>,
}

impl Default for SagaMetrics {
    fn default() -> Self {
        Self {
            started: Counter::default(),
            finished: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(duration_bounds())),
            pending: Gauge::default(),
            oldest_pending: Gauge::default(),
            deadline: Gauge::default(),
            totals: Arc::default(),
        }
    }
}

impl SagaMetrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "choreo_sagas_started",
            "Orders accepted, each starting a saga",
            self.started.clone(),
        );
        registry.register(
            "choreo_sagas_finished",
            "Sagas decided, by outcome and, for a cancel, its reason",
            self.finished.clone(),
        );
        registry.register(
            "choreo_saga_duration_seconds",
            "From an order's creation to its outcome",
            self.duration.clone(),
        );
        registry.register(
            "choreo_sagas_pending",
            "Orders whose saga is not decided yet, read at each scrape",
            self.pending.clone(),
        );
        registry.register(
            "choreo_saga_oldest_pending_seconds",
            "Age of the oldest order still PENDING, read at each scrape; 0 when none is",
            self.oldest_pending.clone(),
        );
        registry.register(
            "choreo_saga_deadline_seconds",
            "The saga deadline (saga_deadline_seconds): a saga pending longer is cancelled with TIMEOUT by the sweeper",
            self.deadline.clone(),
        );
    }

    pub(crate) fn set_deadline(&self, seconds: f64) {
        self.deadline.set(seconds);
    }

    /// Reads the pending sagas' gauges (on failure they keep their last
    /// values; the service's `choreo_ready` says when its database is
    /// gone), and returns the saga's figures for `/stats`: cumulative since
    /// the process started, as Prometheus' are, so that a reader takes
    /// rates and quantiles from the difference of two readings.
    pub(crate) async fn read(&self, pool: &PgPool) -> serde_json::Value {
        match crate::db::pending_sagas(pool).await {
            Ok((count, oldest)) => {
                self.pending.set(count);
                self.oldest_pending.set(oldest);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the pending sagas"),
        }
        let totals = &self.totals;
        let mut cumulative = 0;
        let buckets: Vec<serde_json::Value> = duration_bounds()
            .map(Some)
            .chain([None])
            .zip(&totals.durations)
            .map(|(le, count)| {
                cumulative += count.load(Ordering::Relaxed);
                // JSON has no +Inf: the last bucket's bound is null.
                serde_json::json!({"le": le, "count": cumulative})
            })
            .collect();
        serde_json::json!({
            "started": self.started.get(),
            "confirmed": totals.confirmed.load(Ordering::Relaxed),
            "cancelled": totals.cancelled.load(Ordering::Relaxed),
            "pending": self.pending.get(),
            "oldest_pending_seconds": self.oldest_pending.get(),
            "deadline_seconds": self.deadline.get(),
            "duration_buckets": buckets,
        })
    }

    pub(crate) fn started(&self) {
        self.started.inc();
    }

    pub(crate) fn confirmed(&self, seconds: f64) {
        self.finished("confirmed", "", seconds, &self.totals.confirmed);
    }

    pub(crate) fn cancelled(&self, reason: &str, seconds: f64) {
        self.finished("cancelled", reason, seconds, &self.totals.cancelled);
    }

    fn finished(&self, outcome: &'static str, reason: &str, seconds: f64, total: &AtomicU64) {
        let seconds = seconds.max(0.0);
        total.fetch_add(1, Ordering::Relaxed);
        let bucket = duration_bounds()
            .position(|le| seconds <= le)
            .unwrap_or(DURATION_BUCKETS as usize);
        self.totals.durations[bucket].fetch_add(1, Ordering::Relaxed);
        self.finished
            .get_or_create(&Finished {
                outcome,
                reason: reason.to_owned(),
            })
            .inc();
        self.duration
            .get_or_create(&Outcome { outcome })
            .observe(seconds);
    }
}
