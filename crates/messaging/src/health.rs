//! What the runtime knows about its own progress, for `/health/ready`, and
//! its metrics, for `/metrics` ([`RuntimeMetrics`]).
//!
//! The consumer's partition workers and the relay report here when they are
//! stuck retrying (the database is down, the broker is away) and when they
//! recover; the consumer also reports which partitions it has paused because
//! their handler is behind. A service with something stuck still takes
//! requests (its outbox holds what it cannot publish): it reads as
//! degraded, with what and why.

use crate::RuntimeMetrics;
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard},
};

/// Shared, cheap to clone; every clone sees the same state.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<State>>, Arc<RuntimeMetrics>);

#[derive(Debug, Default)]
struct State {
    /// Component (`relay`, `consumer order.events/2`) → its last error.
    stalled: BTreeMap<String, String>,
    /// `topic/partition` paused for backpressure.
    paused: BTreeSet<String>,
}

/// A copy of the state at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    /// Components retrying a failure, with the last error each saw.
    pub stalled: BTreeMap<String, String>,
    /// Partitions whose fetching is paused until their handler catches up.
    pub paused_partitions: Vec<String>,
}

impl Health {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind; the
        // state is still meaningful.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The metrics of the runtime this belongs to.
    pub fn metrics(&self) -> &RuntimeMetrics {
        &self.1
    }

    /// `component` cannot make progress; `error` says why.
    pub fn stall(&self, component: &str, error: &str) {
        self.state()
            .stalled
            .insert(component.to_owned(), error.to_owned());
        self.metrics().set_stalled(component, true);
    }

    /// `component` made progress again.
    pub fn recover(&self, component: &str) {
        if self.state().stalled.remove(component).is_some() {
            self.metrics().set_stalled(component, false);
        }
    }

    pub(crate) fn set_paused(&self, partition: &str, paused: bool) {
        let mut state = self.state();
        if paused {
            state.paused.insert(partition.to_owned());
        } else {
            state.paused.remove(partition);
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.state();
        Snapshot {
            stalled: state.stalled.clone(),
            paused_partitions: state.paused.iter().cloned().collect(),
        }
    }
}
