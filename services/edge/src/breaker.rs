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
struct Inner {
    state: State,
    /// Bumped at every change of state, so that the outcome of a call let
    /// through under an earlier state (one still running when the breaker
    /// opened, a trial given up on) cannot decide the current one.
    generation: u64,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    failures: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

/// Leave to make one call; its outcome is reported with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Permit {
    generation: u64,
}

/// A call was refused; retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused(pub(crate) Duration);

impl Breaker {
    pub(crate) fn new(failures: u32, cooldown: Duration) -> Self {
        Self {
            failures: failures.max(1),
            cooldown,
            inner: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                generation: 0,
            }),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the state torn: every
        // update assigns whole values.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go out now.
    pub(crate) fn admit(&self, now: Instant) -> Result<Permit, Refused> {
        let mut inner = self.inner();
        match inner.state {
            State::Closed { .. } => Ok(Permit {
                generation: inner.generation,
            }),
            State::Open { until: due } | State::HalfOpen { retry_at: due } if now >= due => {
                inner.state = State::HalfOpen {
                    retry_at: now + self.cooldown,
                };
                inner.generation += 1;
                Ok(Permit {
                    generation: inner.generation,
                })
            }
            State::Open { until: due } | State::HalfOpen { retry_at: due } => {
                Err(Refused(due - now))
            }
        }
    }

    /// The permitted call was answered (a 4xx counts: the service works).
    pub(crate) fn succeeded(&self, permit: Permit) {
        let mut inner = self.inner();
        if permit.generation != inner.generation {
            return;
        }
        match inner.state {
            State::Closed { failures: 0 } => {}
            _ => {
                inner.state = State::Closed { failures: 0 };
                inner.generation += 1;
            }
        }
    }

    /// The permitted call failed: no connection, no answer in time, a 5xx.
    pub(crate) fn failed(&self, permit: Permit, now: Instant) {
        let mut inner = self.inner();
        if permit.generation != inner.generation {
            return;
        }
        match inner.state {
            State::Closed { failures } if failures + 1 < self.failures => {
                inner.state = State::Closed {
                    failures: failures + 1,
                };
            }
            // The threshold reached, or the trial failed.
            _ => {
                inner.state = State::Open {
                    until: now + self.cooldown,
                };
                inner.generation += 1;
            }
        }
    }

    /// `closed`, `open` or `half_open`, for readiness and logs.
    pub(crate) fn describe(&self) -> &'static str {
        match self.inner().state {
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
        let call = || breaker.admit(now).expect("closed");
        breaker.failed(call(), now);
        breaker.failed(call(), now);
        breaker.succeeded(call());
        breaker.failed(call(), now);
        breaker.failed(call(), now);
        assert!(breaker.admit(now).is_ok(), "two in a row: still closed");
        breaker.failed(call(), now);
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
        breaker.failed(breaker.admit(start).expect("closed"), start);
        let later = start + Duration::from_secs(5);
        let trial = breaker.admit(later).expect("the trial goes out");
        assert!(breaker.admit(later).is_err(), "only one trial at a time");
        breaker.failed(trial, later);
        assert_eq!(breaker.describe(), "open", "a failed trial opens it again");
        assert!(breaker.admit(later + Duration::from_secs(1)).is_err());

        let again = later + Duration::from_secs(5);
        let trial = breaker.admit(again).expect("a new trial");
        breaker.succeeded(trial);
        assert_eq!(breaker.describe(), "closed");
        assert!(breaker.admit(again).is_ok());
    }

    #[test]
    fn a_trial_that_never_reports_back_is_replaced_after_a_cooldown() {
        let breaker = Breaker::new(1, Duration::from_secs(5));
        let start = Instant::now();
        breaker.failed(breaker.admit(start).expect("closed"), start);
        let lost = breaker
            .admit(start + Duration::from_secs(5))
            .expect("trial");
        let next = breaker
            .admit(start + Duration::from_secs(10))
            .expect("another trial once the first is given up on");
        // The lost trial, answering at last, decides nothing.
        breaker.succeeded(lost);
        assert_eq!(breaker.describe(), "half_open");
        breaker.failed(next, start + Duration::from_secs(10));
        assert_eq!(breaker.describe(), "open");
    }

    #[test]
    fn calls_let_through_before_it_opened_do_not_steer_it() {
        let breaker = Breaker::new(2, Duration::from_secs(5));
        let now = Instant::now();
        let slow = breaker.admit(now).expect("closed");
        breaker.failed(breaker.admit(now).expect("closed"), now);
        breaker.failed(breaker.admit(now).expect("closed"), now);
        assert_eq!(breaker.describe(), "open");
        // The slow call from before answers: the breaker stays open, and a
        // late failure does not push the reopening back.
        breaker.succeeded(slow);
        assert_eq!(breaker.describe(), "open");
        breaker.failed(slow, now + Duration::from_secs(4));
        assert!(breaker.admit(now + Duration::from_secs(5)).is_ok());
    }
}
