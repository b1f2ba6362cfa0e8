//! The maximum-throughput search: the open loop at rising arrival rates
//! until a rate is no longer sustained, then a few steps between the last
//! rate that was and the first that was not.
//!
//! A closed loop says what the platform does with N clients waiting on
//! each other; users send orders regardless of how the last ones went. A
//! rate is *sustained* when every order the edge was sent is accepted and
//! ends within the drain, the sagas end as fast as they arrive, and the
//! saga p99 stays within the limit: past it, orders queue somewhere and
//! latency grows with the length of the run rather than with the work.

use super::report::PhaseReport;
use super::stats::Latency;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// How the search runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// The first rate tried, orders per second.
    pub start: f64,
    /// The saga p99 above which a rate is not sustained.
    pub p99_limit_ms: f64,
    /// The most steps (rates) it tries.
    pub steps: usize,
}

/// Half of `rate`, in whole orders a second and at least one, so that a
/// platform too slow for any rate still gets an open loop. The search
/// starts at half the closed loop's rate, the open loop runs at half the
/// highest sustained one, and the goals judge it by the same rule.
pub(crate) fn half_rate(rate: f64) -> f64 {
    (rate / 2.0).round().max(1.0)
}

/// Each rising step multiplies the rate by this much.
const GROWTH: f64 = 1.25;
/// The search stops narrowing once the rate that failed is within this
/// ratio of the one that held: the noise between two steps is larger.
const RESOLUTION: f64 = 1.05;
/// A step whose sagas ended slower than this share of its arrival rate
/// left orders behind it, even if they all ended within the drain.
const KEPT_UP: f64 = 0.9;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Search {
    pub seconds_per_step: f64,
    pub p99_limit_ms: f64,
    pub steps: Vec<SearchStep>,
    /// The highest rate that was sustained; `None` when none was.
    pub highest_sustained: Option<f64>,
}

impl Search {
    pub(crate) fn write(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nsearch: the open loop at rising rates, {:.0} s each, until one is not sustained \
             (saga p99 over {:.0} ms, orders refused or left behind)",
            self.seconds_per_step, self.p99_limit_ms
        );
        let _ = writeln!(
            out,
            "  {:>9} {:>9} {:>9} {:>9} {:>8}  sustained",
            "orders/s", "sagas/s", "saga p50", "saga p99", "tx/saga"
        );
        for step in &self.steps {
            let _ = writeln!(
                out,
                "  {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8.1}  {}",
                step.rate_per_second,
                step.sagas_per_second,
                step.saga.p50_ms,
                step.saga.p99_ms,
                step.transactions_per_saga,
                step.why.as_deref().unwrap_or("yes")
            );
        }
        let _ = writeln!(
            out,
            "  highest sustained: {}",
            self.highest_sustained
                .map_or_else(|| "none".to_owned(), |r| format!("{r:.1} sagas/s"))
        );
    }
}

/// One rate of the search, as it went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SearchStep {
    pub rate_per_second: f64,
    pub sagas_per_second: f64,
    pub placed: usize,
    pub refused: usize,
    pub unfinished: usize,
    pub saga: Latency,
    pub transactions_per_saga: f64,
    pub sustained: bool,
    /// Why not, when it was not.
    pub why: Option<String>,
}

impl SearchStep {
    pub(crate) fn judge(phase: &PhaseReport, p99_limit_ms: f64) -> Self {
        let rate = phase.rate_per_second.unwrap_or(0.0);
        let why = if phase.placed == 0 {
            Some("no order was accepted".to_owned())
        } else if phase.refused > 0 {
            Some(format!("{} orders refused", phase.refused))
        } else if phase.unfinished > 0 {
            Some(format!(
                "{} orders had not ended after the drain",
                phase.unfinished
            ))
        } else if phase.saga.p99_ms > p99_limit_ms {
            Some(format!(
                "saga p99 {:.0} ms over {p99_limit_ms:.0} ms",
                phase.saga.p99_ms
            ))
        } else if phase.sagas_per_second < rate * KEPT_UP {
            Some(format!(
                "sagas ended at {:.1}/s of {rate:.1}/s sent",
                phase.sagas_per_second
            ))
        } else {
            None
        };
        Self {
            rate_per_second: rate,
            sagas_per_second: phase.sagas_per_second,
            placed: phase.placed,
            refused: phase.refused,
            unfinished: phase.unfinished,
            saga: phase.saga.clone(),
            transactions_per_saga: phase.transactions_per_saga,
            sustained: why.is_none(),
            why,
        }
    }
}

/// Where the search stands: the next rate to try, or the end.
#[derive(Debug, Default)]
pub(crate) struct Searcher {
    held: Option<f64>,
    failed: Option<f64>,
    tried: usize,
}

impl Searcher {
    /// The next rate after the steps so far, or `None` when the search is
    /// done: rising by [`GROWTH`] while rates hold, halving while none has,
    /// then halfway (geometrically) between the highest that held and the
    /// lowest that failed until they are within [`RESOLUTION`].
    pub(crate) fn next(&self, plan: &Plan) -> Option<f64> {
        if self.tried >= plan.steps {
            return None;
        }
        let rate = match (self.held, self.failed) {
            (None, None) => plan.start,
            (Some(held), None) => (held * GROWTH).max(held + 1.0),
            (None, Some(failed)) => failed / 2.0,
            (Some(held), Some(failed)) => {
                if failed / held <= RESOLUTION {
                    return None;
                }
                (held * failed).sqrt()
            }
        };
        // Below one order a second a step holds too few sagas to judge.
        (rate >= 1.0).then(|| (rate * 10.0).round() / 10.0)
    }

    pub(crate) fn record(&mut self, step: &SearchStep) {
        self.tried += 1;
        let rate = step.rate_per_second;
        if step.sustained {
            self.held = Some(self.held.map_or(rate, |h| h.max(rate)));
        } else {
            self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
        }
    }

    pub(crate) fn highest_sustained(&self) -> Option<f64> {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rate: f64, sustained: bool) -> SearchStep {
        SearchStep {
            rate_per_second: rate,
            sagas_per_second: rate,
            placed: 10,
            refused: 0,
            unfinished: 0,
            saga: Latency::default(),
            transactions_per_saga: 0.0,
            sustained,
            why: None,
        }
    }

    /// Runs the search against a platform that sustains up to `capacity`.
    fn search(capacity: f64, plan: &Plan) -> (Vec<f64>, Option<f64>) {
        let mut searcher = Searcher::default();
        let mut rates = Vec::new();
        while let Some(rate) = searcher.next(plan) {
            rates.push(rate);
            searcher.record(&step(rate, rate <= capacity));
        }
        (rates, searcher.highest_sustained())
    }

    #[test]
    fn rates_rise_until_one_fails_then_narrow_to_within_five_per_cent() {
        let plan = Plan {
            start: 20.0,
            p99_limit_ms: 250.0,
            steps: 20,
        };
        let (rates, highest) = search(47.0, &plan);
        assert_eq!(&rates[..4], &[20.0, 25.0, 31.3, 39.1]);
        assert!(rates.windows(2).take(4).all(|w| w[1] > w[0]), "{rates:?}");
        let highest = highest.expect("a rate held");
        assert!((47.0 / 1.05 / 1.05..=47.0).contains(&highest), "{rates:?}");
        assert!(rates.len() < 12, "{rates:?}");
    }

    #[test]
    fn a_first_rate_that_fails_halves_until_one_holds() {
        let plan = Plan {
            start: 40.0,
            p99_limit_ms: 250.0,
            steps: 20,
        };
        let (rates, highest) = search(12.0, &plan);
        assert_eq!(&rates[..3], &[40.0, 20.0, 10.0]);
        let highest = highest.expect("a rate held");
        assert!((10.0..=12.0).contains(&highest), "{rates:?}");
    }

    #[test]
    fn it_stops_at_its_step_budget_and_below_one_order_a_second() {
        let plan = Plan {
            start: 10.0,
            p99_limit_ms: 250.0,
            steps: 3,
        };
        assert_eq!(search(1000.0, &plan).0, vec![10.0, 12.5, 15.6]);
        let plan = Plan { steps: 20, ..plan };
        let (rates, highest) = search(0.5, &plan);
        assert_eq!(rates, vec![10.0, 5.0, 2.5, 1.3]);
        assert_eq!(highest, None);
    }

    #[test]
    fn a_step_is_judged_by_refusals_unfinished_orders_p99_and_pace() {
        let mut phase = PhaseReport::empty_open(20.0);
        phase.placed = 100;
        phase.sagas_per_second = 19.5;
        phase.saga.p99_ms = 120.0;
        assert!(SearchStep::judge(&phase, 250.0).sustained);
        phase.saga.p99_ms = 300.0;
        let judged = SearchStep::judge(&phase, 250.0);
        assert!(!judged.sustained);
        assert_eq!(judged.why.as_deref(), Some("saga p99 300 ms over 250 ms"));
        phase.saga.p99_ms = 120.0;
        phase.sagas_per_second = 15.0;
        assert!(!SearchStep::judge(&phase, 250.0).sustained);
        phase.sagas_per_second = 19.5;
        phase.unfinished = 1;
        assert!(!SearchStep::judge(&phase, 250.0).sustained);
    }
}
