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
//! rate_per_second = 50          # optional: open loop at a fixed arrival rate
//! # Weights of the kinds of order: each kind has a known right outcome.
//! mix = { succeed = 8, out_of_stock = 1, payment_declined = 1, unshippable = 1, cancelled = 1 }
//!
//! [[faults]]
//! kind = "kill"                 # kill | kill-replica | scale | restart | pause | crash-at
//!                               # | broker-kill | broker-pause | duplicate | poison
//!                               # | db-cut | db-latency | broker-cut
//!                               # | provider-decline | provider-error | provider-timeout
//! service = "payment"           # or inventory, order, shipping, edge, provider
//! after_orders = 50             # or at_seconds = 2.5, or window = [1.0, 4.0]
//!
//! [[faults]]
//! kind = "crash-at"             # killed when it next passes a fail point:
//! service = "inventory"         #   handler.before-commit, consumer.after-commit
//! point = "consumer.after-commit" # or relay.after-publish
//! window = [1.0, 10.0]
//! times = 3                     # three moments drawn from the window
//!
//! [[faults]]
//! kind = "db-latency"           # every answer from payment's database 200 ms late
//! service = "payment"           # (db-cut: its connections closed, new ones refused)
//! latency_ms = 200
//! seconds = 5
//! at_seconds = 3.0
//!
//! [[faults]]
//! kind = "broker-cut"           # shipping's connections to the broker closed,
//! service = "shipping"          #   new ones refused, for 8 s; the others
//! seconds = 8                   #   keep theirs
//! window = [2.0, 20.0]
//!
//! [[faults]]
//! kind = "provider-timeout"     # a share of payment's provider requests carried
//! share = 0.3                   #   out, then answered too late (provider-error:
//! seconds = 10                  #   answered 503, nothing done; provider-decline:
//! at_seconds = 2.0              #   charges refused, CARD_DECLINED)
//!
//! [[faults]]
//! kind = "duplicate"            # publish the topic's last `count` messages again
//! topic = "inventory.events"    # (poison: `count` undecodable messages instead)
//! count = 50
//! after_orders = 30
//!
//! [[faults]]
//! kind = "kill-replica"         # one replica SIGKILLed: `replica = 1`, or one
//! service = "inventory"         #   drawn with the seed
//! window = [2.0, 20.0]
//! times = 5
//!
//! [[faults]]
//! kind = "scale"                # replicas started or stopped until 1 runs
//! service = "inventory"
//! replicas = 1
//! at_seconds = 10.0
//!
//! [expect]
//! settle_seconds = 90           # every order decided within this after the last heal
//! audit_clean = true
//! dlq_empty = true
//! dead_letters = 8              # optional: how many, exact or a range; or "poison":
//!                               # each poison message on a topic, once per consumer
//! CONFIRMED = "100..=200"       # optional counts by status (exact or a range)
//!
//! [platform]
//! saga_deadline_seconds = 60
//! partitions = 4
//! replicas = { inventory = 3, payment = 2 }  # one of each otherwise
//! ```

use choreo_platform::up::replicas::{MAX_REPLICAS, Replicas};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Suite {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub catalog: BTreeMap<String, Product>,
    pub wallets: BTreeMap<String, i64>,
    pub load: Load,
    #[serde(default)]
    pub faults: Vec<Fault>,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default)]
    pub platform: PlatformSettings,
}

fn default_seed() -> u64 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Product {
    pub price_cents: i64,
    pub stock: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Load {
    pub orders: usize,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Open loop: orders arrive at this many per second (still at most
    /// `concurrency` in flight). Unset: closed loop, each client placing
    /// its next order as soon as the last was accepted.
    pub rate_per_second: Option<f64>,
    #[serde(default)]
    pub mix: Mix,
}

fn default_concurrency() -> usize {
    4
}

/// Relative weights of the kinds of order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Mix {
    pub succeed: u32,
    pub out_of_stock: u32,
    pub payment_declined: u32,
    pub unshippable: u32,
    pub cancelled: u32,
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
    /// SIGKILL a service (every replica of it); its supervisor restarts it.
    Kill,
    /// SIGKILL one replica of a saga service (`replica`, or one drawn with
    /// the seed); its supervisor restarts it.
    KillReplica,
    /// Start or stop replicas of a saga service until `replicas` run; the
    /// group rebalances each time.
    Scale,
    /// A rolling restart, as a deploy does it: each replica of a service
    /// in turn is stopped gracefully (SIGTERM) and the next only once the
    /// supervisor runs it again and it answers ready.
    Restart,
    /// SIGSTOP a service (every replica of it) for `seconds`, then SIGCONT.
    Pause,
    /// Arm a fail point of a saga service: it kills itself (SIGKILL) the
    /// next time it passes `point`; its supervisor restarts it.
    CrashAt,
    /// SIGKILL the broker; its supervisor restarts it on the same storage.
    BrokerKill,
    /// SIGSTOP the broker for `seconds`, then SIGCONT.
    BrokerPause,
    /// Publish the last `count` messages of `topic` again, as a producer
    /// retrying after a lost acknowledgement would: every consumer must
    /// skip the copies.
    Duplicate,
    /// Publish `count` messages to `topic` that no consumer can decode:
    /// each consumer of the topic must dead-letter each and go on.
    Poison,
    /// Cut a saga service off its database for `seconds`: every open
    /// connection closed, new ones refused (through a fault proxy).
    DbCut,
    /// Delay every answer of a saga service's database by `latency_ms`
    /// for `seconds`.
    DbLatency,
    /// Cut a saga service (every replica) off the broker for `seconds`:
    /// its open connections closed, new ones refused, while the other
    /// services keep theirs (through a fault proxy every client connects
    /// through).
    BrokerCut,
    /// For `seconds`, the payment provider declines a `share` of the
    /// charges asked of it (`CARD_DECLINED`): those orders are cancelled,
    /// PAYMENT_DECLINED, whatever they were meant to be.
    ProviderDecline,
    /// For `seconds`, the provider answers a `share` of requests 503
    /// without doing anything.
    ProviderError,
    /// For `seconds`, the provider carries out a `share` of requests and
    /// answers them only after payment has given up waiting.
    ProviderTimeout,
}

impl FaultKind {
    /// As the suite file spells it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::KillReplica => "kill-replica",
            FaultKind::Scale => "scale",
            FaultKind::Restart => "restart",
            FaultKind::Pause => "pause",
            FaultKind::CrashAt => "crash-at",
            FaultKind::BrokerKill => "broker-kill",
            FaultKind::BrokerPause => "broker-pause",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Poison => "poison",
            FaultKind::DbCut => "db-cut",
            FaultKind::DbLatency => "db-latency",
            FaultKind::BrokerCut => "broker-cut",
            FaultKind::ProviderDecline => "provider-decline",
            FaultKind::ProviderError => "provider-error",
            FaultKind::ProviderTimeout => "provider-timeout",
        }
    }

    /// Whether the fault names no service: the broker's and the
    /// provider's.
    pub(crate) fn names_no_service(self) -> bool {
        matches!(
            self,
            FaultKind::BrokerKill
                | FaultKind::BrokerPause
                | FaultKind::Duplicate
                | FaultKind::Poison
        ) || self.at_provider()
    }

    /// Whether the fault is switched on in the payment provider.
    pub(crate) fn at_provider(self) -> bool {
        matches!(
            self,
            FaultKind::ProviderDecline | FaultKind::ProviderError | FaultKind::ProviderTimeout
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fault {
    pub kind: FaultKind,
    /// order, inventory, payment, shipping or edge (not for broker faults).
    pub service: Option<String>,
    /// How long a pause, a cut, a database or a provider fault lasts.
    pub seconds: Option<f64>,
    /// The fail point a `crash-at` arms.
    pub point: Option<String>,
    /// The topic (`order.events`, …) a duplicate or poison fault writes to.
    pub topic: Option<String>,
    /// How many messages a duplicate or poison fault publishes.
    pub count: Option<usize>,
    /// The delay a db-latency adds to each answer of the database.
    pub latency_ms: Option<u64>,
    /// The share of requests (0 to 1) a provider fault hits.
    pub share: Option<f64>,
    /// The replica a kill-replica kills (0 is the first); drawn with the
    /// seed when not given.
    pub replica: Option<usize>,
    /// How many replicas a scale leaves running.
    pub replicas: Option<usize>,
    /// How many times to inject it, each at its own moment drawn from
    /// `window` (only with a window).
    #[serde(default = "one")]
    pub times: usize,
    /// When: this long after the load starts...
    pub at_seconds: Option<f64>,
    /// ...or once this many orders were placed...
    pub after_orders: Option<usize>,
    /// ...or at a moment drawn from this window (seconds), with the seed.
    pub window: Option<[f64; 2]>,
}

// Not `deny_unknown_fields` (serde cannot with `flatten`): an unknown key
// lands in `counts`, where `Suite::parse` refuses it by name.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Expect {
    #[serde(default = "default_settle")]
    pub settle_seconds: f64,
    #[serde(default = "yes")]
    pub audit_clean: bool,
    #[serde(default = "yes")]
    pub dlq_empty: bool,
    /// How many dead letters there must be, all services together (exact
    /// or a range), or `"poison"`; when given, `dlq_empty` is not checked.
    pub dead_letters: Option<DeadLetters>,
    /// Counts by status: `CONFIRMED = 10` or `CONFIRMED = "5..=20"`.
    #[serde(flatten)]
    pub counts: BTreeMap<String, Count>,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            settle_seconds: default_settle(),
            audit_clean: true,
            dlq_empty: true,
            dead_letters: None,
            counts: BTreeMap::new(),
        }
    }
}

fn one() -> usize {
    1
}

fn default_settle() -> f64 {
    120.0
}

fn yes() -> bool {
    true
}

/// `expect.dead_letters`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum DeadLetters {
    /// `"poison"`: every poison message on a topic dead-lettered exactly
    /// once by each service that consumes the topic, and nothing else. The
    /// count a suite could write down beforehand does not hold when the
    /// broker is killed while poison is published: a send whose answer was
    /// lost is sent again, and both copies land (118 for 50 sends in the
    /// goal suite).
    Poison(PoisonWord),
    Count(Count),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PoisonWord {
    Poison,
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
    pub saga_deadline_seconds: f64,
    pub partitions: i32,
    /// Replicas of saga services: `{ inventory = 3, payment = 2 }`; one
    /// of each otherwise.
    pub replicas: BTreeMap<String, usize>,
}

impl Default for PlatformSettings {
    fn default() -> Self {
        Self {
            saga_deadline_seconds: 60.0,
            partitions: 4,
            replicas: BTreeMap::new(),
        }
    }
}

impl PlatformSettings {
    /// The replicas to start (checked by [`Suite::parse`]).
    pub(crate) fn replicas(&self) -> Replicas {
        Replicas::from_pairs(
            self.replicas
                .iter()
                .filter_map(|(s, n)| Some((Replicas::service(s).ok()?, *n))),
        )
    }
}

const SERVICES: [&str; 6] = [
    "order",
    "inventory",
    "payment",
    "shipping",
    "edge",
    "provider",
];
/// The fail points a `crash-at` may arm (the mutant switch is not a crash).
pub(crate) const CRASH_POINTS: [&str; 3] = [
    choreo_messaging::fail_points::HANDLER_BEFORE_COMMIT,
    choreo_messaging::fail_points::CONSUMER_AFTER_COMMIT,
    choreo_messaging::fail_points::RELAY_AFTER_PUBLISH,
];

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
        if suite
            .load
            .rate_per_second
            .is_some_and(|r| r.is_nan() || r <= 0.0)
        {
            problems.push("load.rate_per_second must be more than 0".to_owned());
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
            let messages = matches!(fault.kind, FaultKind::Duplicate | FaultKind::Poison);
            match (&fault.topic, messages) {
                (Some(t), true) if choreo_events::Topics::default().parse(t).is_some() => {}
                (None, false) => {}
                (_, true) => problems.push(format!(
                    "{at}: a {} names its topic, one of {}",
                    fault.kind.name(),
                    choreo_events::Topic::ALL
                        .map(choreo_events::Topic::base_name)
                        .join(", ")
                )),
                (Some(_), false) => problems.push(format!(
                    "{at}: only duplicate and poison faults take a topic"
                )),
            }
            match (fault.count, messages) {
                (Some(n), true) if n > 0 => {}
                (None, false) => {}
                (_, true) => problems.push(format!("{at}: count must be at least 1")),
                (Some(_), false) => problems.push(format!(
                    "{at}: only duplicate and poison faults take a count"
                )),
            }
            if fault.kind == FaultKind::Poison
                && suite.expect.dlq_empty
                && suite.expect.dead_letters.is_none()
            {
                problems.push(format!(
                    "{at}: poison is dead-lettered; set expect.dead_letters (or dlq_empty = false)"
                ));
            }
            let no_service = fault.kind.names_no_service();
            match (&fault.service, no_service) {
                (Some(s), false) if SERVICES.contains(&s.as_str()) => {}
                (None, true) => {}
                (_, true) => problems.push(format!(
                    "{at}: a {} fault names no service",
                    fault.kind.name()
                )),
                _ => problems.push(format!(
                    "{at}: service must be one of {}",
                    SERVICES.join(", ")
                )),
            }
            if fault.times == 0 {
                problems.push(format!("{at}: times must be at least 1"));
            }
            if fault.times > 1 && fault.window.is_none() {
                problems.push(format!(
                    "{at}: times > 1 needs a window to draw the moments from"
                ));
            }
            match (&fault.point, fault.kind) {
                (Some(p), FaultKind::CrashAt) if CRASH_POINTS.contains(&p.as_str()) => {}
                (None, kind) if kind != FaultKind::CrashAt => {}
                (Some(_), FaultKind::CrashAt) | (None, _) => problems.push(format!(
                    "{at}: a crash-at names its point, one of {}",
                    CRASH_POINTS.join(", ")
                )),
                (Some(_), _) => problems.push(format!("{at}: only a crash-at takes a point")),
            }
            let saga_service = fault
                .service
                .as_deref()
                .is_some_and(|s| choreo_events::SAGA_SERVICES.contains(&s));
            if fault.kind == FaultKind::CrashAt && !saga_service {
                problems.push(format!(
                    "{at}: only the saga services have fail points (the edge and the provider neither consume nor publish)"
                ));
            }
            if fault.kind == FaultKind::BrokerCut && !saga_service {
                problems.push(format!(
                    "{at}: only the saga services talk to the broker (a broker-cut names one)"
                ));
            }
            let replicated = matches!(fault.kind, FaultKind::KillReplica | FaultKind::Scale);
            if replicated && !saga_service {
                problems.push(format!(
                    "{at}: only the saga services run replicas (a {} names one)",
                    fault.kind.name()
                ));
            }
            match (fault.replica, fault.kind) {
                (None, _) => {}
                (Some(i), FaultKind::KillReplica) => {
                    let running = fault
                        .service
                        .as_deref()
                        .map_or(1, |s| suite.platform.replicas().of(s));
                    if i >= running {
                        problems.push(format!(
                            "{at}: replica {i} does not exist; the suite starts {running} (0 to {})",
                            running - 1
                        ));
                    }
                }
                (Some(_), _) => problems.push(format!("{at}: only a kill-replica takes a replica")),
            }
            match (fault.replicas, fault.kind == FaultKind::Scale) {
                (Some(n), true) if (1..=MAX_REPLICAS).contains(&n) => {}
                (None, false) => {}
                (_, true) => {
                    problems.push(format!("{at}: a scale needs replicas, 1 to {MAX_REPLICAS}"))
                }
                (Some(_), false) => problems.push(format!("{at}: only a scale takes replicas")),
            }
            let database = matches!(fault.kind, FaultKind::DbCut | FaultKind::DbLatency);
            if database && !saga_service {
                problems.push(format!(
                    "{at}: database faults are for the saga services' databases"
                ));
            }
            match (fault.share, fault.kind.at_provider()) {
                (Some(share), true) if share > 0.0 && share <= 1.0 => {}
                (None, false) => {}
                (_, true) => problems.push(format!(
                    "{at}: a {} needs a share, more than 0 and at most 1",
                    fault.kind.name()
                )),
                (Some(_), false) => {
                    problems.push(format!("{at}: only provider faults take a share"))
                }
            }
            match (fault.latency_ms, fault.kind == FaultKind::DbLatency) {
                (Some(ms), true) if ms > 0 => {}
                (None, false) => {}
                (_, true) => problems.push(format!("{at}: a db-latency needs latency_ms > 0")),
                (Some(_), false) => {
                    problems.push(format!("{at}: only a db-latency takes latency_ms"))
                }
            }
            let lasting = matches!(
                fault.kind,
                FaultKind::Pause
                    | FaultKind::BrokerPause
                    | FaultKind::BrokerCut
                    | FaultKind::DbCut
                    | FaultKind::DbLatency
            ) || fault.kind.at_provider();
            match (fault.seconds, lasting) {
                (Some(s), true) if s > 0.0 => {}
                (None, false) => {}
                (_, true) => {
                    problems.push(format!("{at}: a {} needs seconds > 0", fault.kind.name()))
                }
                (Some(_), false) => problems.push(format!(
                    "{at}: only pauses, cuts, database and provider faults take seconds"
                )),
            }
        }
        for (service, count) in &suite.platform.replicas {
            if let Err(e) = Replicas::service(service) {
                problems.push(format!("platform.replicas: {e}"));
            }
            if !(1..=MAX_REPLICAS).contains(count) {
                problems.push(format!(
                    "platform.replicas.{service}: the number of replicas must be 1 to {MAX_REPLICAS}"
                ));
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
        if let Some(DeadLetters::Count(count)) = &suite.expect.dead_letters {
            if let Err(e) = count.bounds() {
                problems.push(format!("expect.dead_letters: {e}"));
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
    fn faults_of_every_kind_parse_with_what_they_take() {
        let text = format!(
            "{MINIMAL}\n[[faults]]\nkind = \"crash-at\"\nservice = \"payment\"\npoint = \"relay.after-publish\"\nwindow = [1.0, 2.0]\ntimes = 3\n\n\
             [[faults]]\nkind = \"poison\"\ntopic = \"order.events\"\ncount = 2\nat_seconds = 1\n\n\
             [[faults]]\nkind = \"db-latency\"\nservice = \"inventory\"\nlatency_ms = 50\nseconds = 2\nafter_orders = 3\n\n\
             [[faults]]\nkind = \"provider-timeout\"\nshare = 0.3\nseconds = 2\nat_seconds = 1\n\n\
             [[faults]]\nkind = \"kill\"\nservice = \"provider\"\nat_seconds = 1\n\n\
             [expect]\ndead_letters = \"2..=6\"\n"
        );
        let suite = Suite::parse(&text).expect("valid");
        assert_eq!(suite.faults.len(), 5);
        assert_eq!(suite.faults[3].share, Some(0.3));
        assert_eq!(suite.faults[0].times, 3);
        assert!(
            matches!(&suite.expect.dead_letters, Some(DeadLetters::Count(c)) if c.bounds() == Ok((2, 6))),
            "{:?}",
            suite.expect.dead_letters
        );
        let poison = Suite::parse(&text.replace("\"2..=6\"", "\"poison\"")).expect("valid");
        assert!(matches!(
            poison.expect.dead_letters,
            Some(DeadLetters::Poison(PoisonWord::Poison))
        ));
        let wrong =
            Suite::parse(&text.replace("\"2..=6\"", "\"poisoned\"")).expect_err("not a count");
        assert!(wrong.contains("expect.dead_letters"), "{wrong}");
    }

    #[test]
    fn replica_faults_name_what_they_need() {
        let text = format!(
            "{MINIMAL}\n[[faults]]\nkind = \"kill-replica\"\nservice = \"inventory\"\nwindow = [1.0, 5.0]\ntimes = 3\n\n\
             [[faults]]\nkind = \"scale\"\nservice = \"payment\"\nreplicas = 1\nat_seconds = 2\n\n\
             [platform]\nreplicas = {{ inventory = 3, payment = 2 }}\n"
        );
        let suite = Suite::parse(&text).expect("valid");
        assert_eq!(suite.platform.replicas().of("inventory"), 3);
        let bad = format!(
            "{MINIMAL}\n[[faults]]\nkind = \"kill-replica\"\nservice = \"edge\"\nat_seconds = 1\n\n\
             [[faults]]\nkind = \"kill-replica\"\nservice = \"order\"\nreplica = 2\nat_seconds = 1\n\n\
             [[faults]]\nkind = \"scale\"\nservice = \"order\"\nat_seconds = 1\n\n\
             [[faults]]\nkind = \"kill\"\nservice = \"order\"\nreplicas = 2\nat_seconds = 1\n\n\
             [platform]\nreplicas = {{ edge = 2, inventory = 0 }}\n"
        );
        let error = Suite::parse(&bad).expect_err("invalid");
        for needle in [
            "faults[0]: only the saga services run replicas",
            "faults[1]: replica 2 does not exist; the suite starts 1",
            "faults[2]: a scale needs replicas",
            "faults[3]: only a scale takes replicas",
            "platform.replicas: \"edge\" is not a saga service",
            "platform.replicas.inventory: the number of replicas must be 1",
        ] {
            assert!(error.contains(needle), "{needle} missing from {error}");
        }
    }

    #[test]
    fn every_shipped_suite_parses() {
        let folder =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../saga-tests/suites");
        let mut read = 0;
        for entry in std::fs::read_dir(&folder).expect("the suites folder") {
            let path = entry.expect("an entry").path();
            if path.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&path).expect("readable");
                if let Err(e) = Suite::parse(&text) {
                    panic!("{}: {e}", path.display());
                }
                read += 1;
            }
        }
        assert!(read >= 18, "only {read} suites in {}", folder.display());
    }

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
            "{MINIMAL}\n[[faults]]\nkind = \"pause\"\nservice = \"nope\"\n\n\
             [[faults]]\nkind = \"crash-at\"\nservice = \"edge\"\npoint = \"main\"\nat_seconds = 1\ntimes = 2\n\n\
             [expect]\nSHIPPED = 3\nCONFIRMED = \"a..b\"\n"
        );
        let error = Suite::parse(&text).expect_err("invalid");
        for needle in [
            "faults[0]: give exactly one of",
            "faults[0]: service must be one of",
            "faults[0]: a pause needs seconds",
            "expect.SHIPPED",
            "expect.CONFIRMED",
            "faults[1]: a crash-at names its point",
            "faults[1]: only the saga services have fail points",
            "faults[1]: times > 1 needs a window",
        ] {
            assert!(error.contains(needle), "{needle} missing from {error}");
        }
        let faults = format!(
            "{MINIMAL}\n[[faults]]\nkind = \"poison\"\ntopic = \"order.events\"\ncount = 2\nat_seconds = 1\n\n\
             [[faults]]\nkind = \"db-latency\"\nservice = \"payment\"\nseconds = 2\nat_seconds = 1\n\n\
             [[faults]]\nkind = \"duplicate\"\ntopic = \"audit.events\"\ncount = 0\nat_seconds = 1\n\n\
             [[faults]]\nkind = \"db-cut\"\nservice = \"edge\"\nseconds = 2\nat_seconds = 1\n\n\
             [[faults]]\nkind = \"provider-error\"\nservice = \"payment\"\nshare = 1.5\nat_seconds = 1\n\n\
             [[faults]]\nkind = \"kill\"\nservice = \"payment\"\nshare = 0.5\nat_seconds = 1\n"
        );
        let error = Suite::parse(&faults).expect_err("invalid faults");
        for needle in [
            "faults[0]: poison is dead-lettered; set expect.dead_letters",
            "faults[1]: a db-latency needs latency_ms > 0",
            "faults[2]: a duplicate names its topic",
            "faults[2]: count must be at least 1",
            "faults[3]: database faults are for the saga services",
            "faults[4]: a provider-error fault names no service",
            "faults[4]: a provider-error needs a share",
            "faults[4]: a provider-error needs seconds > 0",
            "faults[5]: only provider faults take a share",
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
