//! How long the runtime waits before trying again: the relay after a failed
//! publish, the consumer after a transient failure, the processor before a
//! retry in place.

use std::time::Duration;

/// Exponential backoff with full jitter, capped at ten seconds.
pub(crate) fn backoff(attempt: u32) -> Duration {
    use rand::Rng;
    let cap = Duration::from_secs(10);
    let base = Duration::from_millis(100).saturating_mul(1u32 << attempt.min(10));
    let ceiling = base.min(cap);
    let millis =
        rand::rng().random_range(ceiling.as_millis() as u64 / 2..=ceiling.as_millis() as u64);
    Duration::from_millis(millis)
}
