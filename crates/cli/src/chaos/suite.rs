//! The suite file format (TOML). A suite names what to seed, the load to
//! drive, the faults to inject while it runs, and what must hold after.
//!
//! ```toml
//! name = "payment-crash"
//! seed = 7                      # the same seed, the same schedule
//!
//! [catalog]                     # seeded before the load
//! TEA-01 = { price_cents = 500, stock = 100000 }
//!
//! [wallets]
//! alice = 100000000
//!
//! [load]
//! orders = 200
//! concurrency = 8
//! # Weights of the kinds of order: each kind has a known right outcome.
//! mix = { succeed = 8, out_of_stock = 1, payment_declined = 1, unshippable = 1, cancelled = 1 }
//!
//! [[faults]]
//! kind = "kill"                 # kill | pause | broker-kill | broker-pause
//! service = "payment"
//! after_orders = 50             # or at_seconds = 2.5, or window = [1.0, 4.0]
//!
//! [expect]
//! settle_seconds = 90           # every order decided within this after the last heal
//! audit_clean = true
//! dlq_empty = true
//! CONFIRMED = "100..=200"       # optional counts by status (exact or a range)
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Suite {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default = "default_seed")]
    pub(crate) seed: u64,
    pub(crate) catalog: BTreeMap<String, Product>,
    pub(crate) wallets: BTreeMap<String, i64>,
    pub(crate) load: Load,
    #[serde(default)]
    pub(crate) faults: Vec<Fault>,
    #[serde(default)]
    pub(crate) expect: Expect,
    #[serde(default)]
    pub(crate) platform: PlatformSettings,
}

fn default_seed() -> u64 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Product {
    pub(crate) price_cents: i64,
    pub(crate) stock: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Load {
    pub(crate) orders: usize,
    #[serde(default = "default_concurrency")]
    pub(crate) concurrency: usize,
    #[serde(default)]
    pub(crate) mix: Mix,
}

fn default_concurrency() -> usize {
    4
}

/// Relative weights of the kinds of order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Mix {
    pub(crate) succeed: u32,
    pub(crate) out_of_stock: u32,
    pub(crate) payment_declined: u32,
    pub(crate) unshippable: u32,
    pub(crate) cancelled: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            succeed: 1,
            out_of_stock: 0,
            payment_declined: 0,
            unshippable: 0,
            cancelled: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum FaultKind {
    /// SIGKILL a service; its supervisor restarts it.
    Kill,
    /// SIGSTOP a service for `seconds`, then SIGCONT.
    Pause,
    /// SIGKILL the broker; its supervisor restarts it on the same storage.
    BrokerKill,
    /// SIGSTOP the broker for `seconds`, then SIGCONT.
    BrokerPause,
}

impl FaultKind {
    /// As the suite file spells it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::BrokerKill => "broker-kill",
            FaultKind::BrokerPause => "broker-pause",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fault {
    pub(crate) kind: FaultKind,
    /// order, inventory, payment, shipping or edge (not for broker faults).
    pub(crate) service: Option<String>,
    /// How long a pause lasts.
    pub(crate) seconds: Option<f64>,
    /// When: this long after the load starts...
    pub(crate) at_seconds: Option<f64>,
    /// ...or once this many orders were placed...
    pub(crate) after_orders: Option<usize>,
    /// ...or at a moment drawn from this window (seconds), with the seed.
    pub(crate) window: Option<[f64; 2]>,
}

// Not `deny_unknown_fields` (serde cannot with `flatten`): an unknown key
// lands in `counts`, where `Suite::parse` refuses it by name.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Expect {
    #[serde(default = "default_settle")]
    pub(crate) settle_seconds: f64,
    #[serde(default = "yes")]
    pub(crate) audit_clean: bool,
    #[serde(default = "yes")]
    pub(crate) dlq_empty: bool,
    /// Counts by status: `CONFIRMED = 10` or `CONFIRMED = "5..=20"`.
    #[serde(flatten)]
    pub(crate) counts: BTreeMap<String, Count>,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            settle_seconds: default_settle(),
            audit_clean: true,
            dlq_empty: true,
            counts: BTreeMap::new(),
        }
    }
}

fn default_settle() -> f64 {
    120.0
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Count {
    Exactly(usize),
    Range(String),
}

impl Count {
    /// The inclusive range this count allows.
    pub(crate) fn bounds(&self) -> Result<(usize, usize), String> {
        match self {
            Count::Exactly(n) => Ok((*n, *n)),
            Count::Range(text) => {
                let (low, high) = text
                    .split_once("..=")
                    .ok_or_else(|| format!("{text:?} is not a range like \"5..=20\""))?;
                let parse = |s: &str| {
                    s.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("{text:?} is not a range like \"5..=20\""))
                };
                Ok((parse(low)?, parse(high)?))
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PlatformSettings {
    pub(crate) saga_deadline_seconds: f64,
    pub(crate) partitions: i32,
}

impl Default for PlatformSettings {
    fn default() -> Self {
        Self {
            saga_deadline_seconds: 60.0,
            partitions: 4,
        }
    }
}

const SERVICES: [&str; 5] = ["order", "inventory", "payment", "shipping", "edge"];

impl Suite {
    /// Reads and checks a suite file: every mistake is named, with its
    /// place, before anything starts.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let suite: Suite = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        if suite.load.orders == 0 {
            problems.push("load.orders must be at least 1".to_owned());
        }
        if suite.load.concurrency == 0 {
            problems.push("load.concurrency must be at least 1".to_owned());
        }
        let m = &suite.load.mix;
        if m.succeed + m.out_of_stock + m.payment_declined + m.unshippable + m.cancelled == 0 {
            problems.push("load.mix must give some kind of order a weight".to_owned());
        }
        if suite.catalog.values().all(|p| p.stock <= 0) {
            problems.push("catalog needs a product with stock".to_owned());
        }
        if suite.wallets.values().all(|b| *b <= 0) {
            problems.push("wallets needs a customer with money".to_owned());
        }
        for (i, fault) in suite.faults.iter().enumerate() {
            let at = format!("faults[{i}]");
            let whens = [
                fault.at_seconds.is_some(),
                fault.after_orders.is_some(),
                fault.window.is_some(),
            ];
            if whens.iter().filter(|w| **w).count() != 1 {
                problems.push(format!(
                    "{at}: give exactly one of at_seconds, after_orders, window"
                ));
            }
            if fault.after_orders.is_some_and(|n| n > suite.load.orders) {
                problems.push(format!(
                    "{at}: after_orders is more than the load's {} orders",
                    suite.load.orders
                ));
            }
            if let Some([from, to]) = fault.window {
                if !(0.0 <= from && from <= to) {
                    problems.push(format!(
                        "{at}: window must be [from, to] with 0 <= from <= to"
                    ));
                }
            }
            let broker = matches!(fault.kind, FaultKind::BrokerKill | FaultKind::BrokerPause);
            match (&fault.service, broker) {
                (Some(s), false) if SERVICES.contains(&s.as_str()) => {}
                (None, true) => {}
                (_, true) => problems.push(format!("{at}: a broker fault names no service")),
                _ => problems.push(format!(
                    "{at}: service must be one of {}",
                    SERVICES.join(", ")
                )),
            }
            let pause = matches!(fault.kind, FaultKind::Pause | FaultKind::BrokerPause);
            match (fault.seconds, pause) {
                (Some(s), true) if s > 0.0 => {}
                (None, false) => {}
                (_, true) => problems.push(format!("{at}: a pause needs seconds > 0")),
                (Some(_), false) => problems.push(format!("{at}: only a pause takes seconds")),
            }
        }
        for (status, count) in &suite.expect.counts {
            if !["CONFIRMED", "CANCELLED"].contains(&status.as_str()) {
                problems.push(format!(
                    "expect.{status}: only CONFIRMED and CANCELLED can be counted"
                ));
            }
            if let Err(e) = count.bounds() {
                problems.push(format!("expect.{status}: {e}"));
            }
        }
        if problems.is_empty() {
            Ok(suite)
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "t"
        catalog = { TEA-01 = { price_cents = 500, stock = 10 } }
        wallets = { alice = 1000 }
        load = { orders = 5 }
    "#;

    #[test]
    fn a_minimal_suite_has_sensible_defaults() {
        let suite = Suite::parse(MINIMAL).expect("valid");
        assert_eq!(suite.load.concurrency, 4);
        assert_eq!(suite.load.mix.succeed, 1);
        assert!(suite.expect.audit_clean && suite.expect.dlq_empty);
        assert!(suite.faults.is_empty());
    }

    #[test]
    fn every_mistake_is_named() {
        let text = format!(
            "{MINIMAL}\n[[faults]]\nkind = \"pause\"\nservice = \"nope\"\n\n[expect]\nSHIPPED = 3\nCONFIRMED = \"a..b\"\n"
        );
        let error = Suite::parse(&text).expect_err("invalid");
        for needle in [
            "faults[0]: give exactly one of",
            "faults[0]: service must be one of",
            "faults[0]: a pause needs seconds",
            "expect.SHIPPED",
            "expect.CONFIRMED",
        ] {
            assert!(error.contains(needle), "{needle} missing from {error}");
        }
        let unknown = format!("{MINIMAL}\ncolour = \"red\"\n");
        assert!(
            Suite::parse(&unknown)
                .expect_err("unknown key")
                .contains("colour")
        );
    }
}
