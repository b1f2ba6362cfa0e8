//! A circuit breaker per backend service.
//!
//! Closed, calls go through. After `failures` failures in a row (no answer,
//! a timeout, a 5xx) it opens: calls are refused at once for `cooldown`,
//! so a service that hangs costs callers nothing but a quick 503 instead of
//! a timeout each, and gets room to recover. Then one trial call goes
//! through (half-open): its success closes the breaker, its failure opens
//! it again. A 4xx is the caller's mistake and counts as a success.
//!
//! Time is passed in, so the state machine is tested without waiting.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A trial call is out; others are refused until it returns, or until
    /// `retry_at` if it never does (its caller went away mid-call).
    HalfOpen {
        retry_at: Instant,
    },
}

#[derive(Debug)]
pub(crate) struct Breaker {
    failures: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

/// A call was refused; retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused(pub(crate) Duration);

impl Breaker {
    pub(crate) fn new(failures: u32, cooldown: Duration) -> Self {
        Self {
            failures: failures.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state torn: every
        // update is a single assignment.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go out now.
    pub(crate) fn admit(&self, now: Instant) -> Result<(), Refused> {
        let mut state = self.state();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until: due } | State::HalfOpen { retry_at: due } if now >= due => {
                *state = State::HalfOpen {
                    retry_at: now + self.cooldown,
                };
                Ok(())
            }
            State::Open { until: due } | State::HalfOpen { retry_at: due } => {
                Err(Refused(due - now))
            }
        }
    }

    pub(crate) fn succeeded(&self) {
        *self.state() = State::Closed { failures: 0 };
    }

    pub(crate) fn failed(&self, now: Instant) {
        let mut state = self.state();
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.failures => State::Closed {
                failures: failures + 1,
            },
            // The threshold reached, or the trial failed.
            _ => State::Open {
                until: now + self.cooldown,
            },
        };
    }

    /// `closed`, `open` or `half_open`, for readiness and logs.
    pub(crate) fn describe(&self) -> &'static str {
        match *self.state() {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let breaker = Breaker::new(3, Duration::from_secs(5));
        let now = Instant::now();
        breaker.failed(now);
        breaker.failed(now);
        breaker.succeeded();
        breaker.failed(now);
        breaker.failed(now);
        assert_eq!(breaker.admit(now), Ok(()), "two in a row: still closed");
        breaker.failed(now);
        assert_eq!(breaker.describe(), "open");
        assert_eq!(
            breaker.admit(now + Duration::from_secs(1)),
            Err(Refused(Duration::from_secs(4)))
        );
    }

    #[test]
    fn after_the_cooldown_one_trial_decides() {
        let breaker = Breaker::new(1, Duration::from_secs(5));
        let start = Instant::now();
        breaker.failed(start);
        let later = start + Duration::from_secs(5);
        assert_eq!(breaker.admit(later), Ok(()), "the trial goes out");
        assert!(breaker.admit(later).is_err(), "only one trial at a time");
        // A trial that never reports back does not block the service for
        // good: after another cooldown, a new trial goes out.
        assert_eq!(breaker.admit(later + Duration::from_secs(5)), Ok(()));
        breaker.failed(later);
        assert_eq!(breaker.describe(), "open", "a failed trial opens it again");
        assert!(breaker.admit(later + Duration::from_secs(1)).is_err());

        let again = later + Duration::from_secs(5);
        assert_eq!(breaker.admit(again), Ok(()));
        breaker.succeeded();
        assert_eq!(breaker.describe(), "closed");
        assert_eq!(breaker.admit(again), Ok(()));
        assert_eq!(breaker.admit(again), Ok(()));
    }
}
