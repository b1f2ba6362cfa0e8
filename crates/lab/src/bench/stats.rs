//! Latency summaries: the nearest-rank percentiles of every sample kept
//! (a run keeps at most some hundred thousand, so they are sorted whole
//! rather than bucketed).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a set of durations is spread, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Latency {
    pub count: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub(crate) fn of(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let total: Duration = sorted.iter().sum();
        Self {
            count: sorted.len(),
            mean_ms: if sorted.is_empty() {
                0.0
            } else {
                ms(total) / sorted.len() as f64
            },
            p50_ms: percentile(&sorted, 0.50),
            p95_ms: percentile(&sorted, 0.95),
            p99_ms: percentile(&sorted, 0.99),
            max_ms: sorted.last().copied().map_or(0.0, ms),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `q` quantile of `sorted` by nearest rank, in milliseconds; 0 for
/// none.
fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    ms(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_over_the_samples_in_any_order() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let l = Latency::of(&samples);
        assert_eq!(l.count, 100);
        assert_eq!(
            (l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
        assert!((l.mean_ms - 50.5).abs() < 1e-9, "{}", l.mean_ms);
    }

    #[test]
    fn no_samples_is_all_zero() {
        assert_eq!(Latency::of(&[]), Latency::default());
    }
}
