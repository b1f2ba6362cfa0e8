//! Riding out the platform's faults from the runner's side.
//!
//! A suite's faults overlap on purpose: the broker is restarted while the
//! runner reads a topic to duplicate its messages, a database is cut while
//! the audit reads it. Every read the runner makes to judge, and every
//! fault it injects, therefore goes through [`persist`]: retried with capped,
//! jittered backoff until it succeeds or [`PATIENCE`] has passed. A suite
//! ends "could not run" only when the environment never comes back, never
//! because the runner's own faults met.

use backon::{ExponentialBuilder, Retryable};
use std::{future::Future, time::Duration};

/// How long the runner keeps retrying one step before it gives up on the
/// environment: longer than any one fault lasts plus a restart (a broker
/// restart on a busy machine takes tens of seconds).
pub(crate) const PATIENCE: Duration = Duration::from_secs(180);

/// Runs `attempt` until it succeeds, retrying every error for up to
/// [`PATIENCE`]; `what` names the step in the log and in the final error.
///
/// Only steps that are safe to repeat belong here: a read, or a fault whose
/// repetition is the same fault.
///
/// # Errors
/// The last attempt's error, once [`PATIENCE`] is spent.
pub(crate) async fn persist<T, F, Fut>(what: &str, attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let policy = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .with_total_delay(Some(PATIENCE));
    attempt
        .retry(policy)
        .notify(|e: &anyhow::Error, after: Duration| {
            tracing::info!(step = what, error = format!("{e:#}"), retry_in = ?after, "the platform did not answer (a fault of the suite's?); retrying");
        })
        .await
        .map_err(|e| e.context(format!("{what}: still failing after {PATIENCE:?} of retries")))
}
