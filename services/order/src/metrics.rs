//! The saga's own metrics: sagas started, finished by outcome and reason,
//! and how long they took, from the order's creation to its outcome.
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
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

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
}

impl Default for SagaMetrics {
    fn default() -> Self {
        Self {
            started: Counter::default(),
            finished: Family::default(),
            // 10 ms to about 5 minutes: the local saga takes tens of
            // milliseconds, and the deadline (30 s by default) bounds it.
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 15))
            }),
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
    }

    pub(crate) fn started(&self) {
        self.started.inc();
    }

    pub(crate) fn confirmed(&self, seconds: f64) {
        self.finished("confirmed", "", seconds);
    }

    pub(crate) fn cancelled(&self, reason: &str, seconds: f64) {
        self.finished("cancelled", reason, seconds);
    }

    fn finished(&self, outcome: &'static str, reason: &str, seconds: f64) {
        self.finished
            .get_or_create(&Finished {
                outcome,
                reason: reason.to_owned(),
            })
            .inc();
        self.duration
            .get_or_create(&Outcome { outcome })
            .observe(seconds.max(0.0));
    }
}
