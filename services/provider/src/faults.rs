//! The faults a suite has switched on, and the draws that apply them.
//!
//! A decline is decided by the charge's key and the seed alone, so a retry
//! of a declined charge is declined again and a suite run with the same
//! seed declines the same charges. Errors and timeouts are drawn per
//! request from a generator seeded when the fault is switched on: a retry
//! must be able to get through.

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use std::{sync::Mutex, time::Duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// The charge is refused (402, `CARD_DECLINED`) and recorded so.
    Decline,
    /// The request is answered 503 before anything is done.
    Error,
    /// The request is carried out, then answered only after `hold_ms`.
    Timeout,
}

/// One fault as a suite sets it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Setting {
    /// The share of requests it hits, from 0 to 1.
    pub(crate) share: f64,
    #[serde(default)]
    pub(crate) seed: u64,
    /// How long a timeout holds its answer (timeouts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hold_ms: Option<u64>,
}

impl Setting {
    /// What is wrong with the setting for `kind`, if anything.
    pub(crate) fn problem(&self, kind: Kind) -> Option<&'static str> {
        if !(0.0..=1.0).contains(&self.share) {
            return Some("share must be between 0 and 1");
        }
        match (kind, self.hold_ms) {
            (Kind::Timeout, Some(ms)) if ms > 0 => None,
            (Kind::Timeout, _) => Some("a timeout needs hold_ms > 0"),
            (_, Some(_)) => Some("only a timeout takes hold_ms"),
            (_, None) => None,
        }
    }
}

/// Every fault's setting, as `GET /admin/faults` shows them.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Settings {
    pub(crate) decline: Option<Setting>,
    pub(crate) error: Option<Setting>,
    pub(crate) timeout: Option<Setting>,
}

#[derive(Default)]
struct State {
    settings: Settings,
    error: Option<StdRng>,
    timeout: Option<StdRng>,
}

#[derive(Default)]
pub(crate) struct Faults(Mutex<State>);

impl Faults {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; go on.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn settings(&self) -> Settings {
        self.state().settings.clone()
    }

    /// Switches `kind` on with `setting`, or off with `None`.
    pub(crate) fn set(&self, kind: Kind, setting: Option<Setting>) {
        let mut state = self.state();
        let rng = setting.map(|s| StdRng::seed_from_u64(s.seed));
        match kind {
            Kind::Decline => state.settings.decline = setting,
            Kind::Error => {
                state.settings.error = setting;
                state.error = rng;
            }
            Kind::Timeout => {
                state.settings.timeout = setting;
                state.timeout = rng;
            }
        }
    }

    /// Whether the charge named `key` is to be declined.
    pub(crate) fn declines(&self, key: &str) -> bool {
        let Some(setting) = self.state().settings.decline else {
            return false;
        };
        // SHA-1 of seed and key (a v5 UUID): stable across runs and builds.
        let digest = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{}/{key}", setting.seed).as_bytes(),
        );
        let draw = (digest.as_u128() >> 64) as f64 / u64::MAX as f64;
        draw < setting.share
    }

    /// Whether this request is to fail with a 503.
    pub(crate) fn errs(&self) -> bool {
        let mut state = self.state();
        let share = state.settings.error.map_or(0.0, |s| s.share);
        state
            .error
            .as_mut()
            .is_some_and(|rng| rng.random::<f64>() < share)
    }

    /// How long to hold this request's answer, if it is to time out.
    pub(crate) fn hold(&self) -> Option<Duration> {
        let mut state = self.state();
        let setting = state.settings.timeout?;
        let hit = state
            .timeout
            .as_mut()
            .is_some_and(|rng| rng.random::<f64>() < setting.share);
        hit.then(|| Duration::from_millis(setting.hold_ms.unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declined_key_is_declined_again_and_the_share_holds() {
        let faults = Faults::default();
        faults.set(
            Kind::Decline,
            Some(Setting {
                share: 0.25,
                seed: 7,
                hold_ms: None,
            }),
        );
        let keys: Vec<String> = (0..4000).map(|i| format!("key-{i}")).collect();
        let declined: Vec<bool> = keys.iter().map(|k| faults.declines(k)).collect();
        let again: Vec<bool> = keys.iter().map(|k| faults.declines(k)).collect();
        assert_eq!(declined, again);
        let share = declined.iter().filter(|d| **d).count() as f64 / keys.len() as f64;
        assert!((0.2..0.3).contains(&share), "declined share {share}");
        faults.set(Kind::Decline, None);
        assert!(keys.iter().all(|k| !faults.declines(k)));
    }

    #[test]
    fn settings_out_of_range_are_named() {
        let bad = |share, hold_ms| Setting {
            share,
            seed: 0,
            hold_ms,
        };
        assert!(bad(1.5, None).problem(Kind::Error).is_some());
        assert!(bad(0.5, None).problem(Kind::Timeout).is_some());
        assert!(bad(0.5, Some(10)).problem(Kind::Decline).is_some());
        assert!(bad(0.5, Some(10)).problem(Kind::Timeout).is_none());
        assert!(bad(f64::NAN, None).problem(Kind::Error).is_some());
    }
}
