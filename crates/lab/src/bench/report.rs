//! A bench run's results: what each phase sustained, the ceilings it is
//! judged against, the ratios and goals, and the machine and commit it ran
//! on; as a table, as JSON, and one run compared with another.

use super::{
    ceilings::{BrokerCeiling, CommitCeiling},
    cpu::{BENCH_PROCESS, ProcessCpu},
    load::{Load, PhaseRun},
    profile::Profile,
    search::{Search, half_rate},
    stats::Latency,
};
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

/// The JSON layout's version: `compare` refuses another.
pub(crate) const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BenchReport {
    pub format: u32,
    pub started_at: String,
    pub git_commit: String,
    /// `release` or `debug`: a debug build's figures are not the platform's.
    pub build: String,
    pub machine: Machine,
    pub platform: Platform,
    /// The platform with no orders, before the phases.
    #[serde(default)]
    pub idle: Option<Idle>,
    pub phases: Vec<PhaseReport>,
    /// The open loop at rising rates, between the closed and the open
    /// phase; absent when `--rate` fixed the open loop's rate.
    #[serde(default)]
    pub search: Option<Search>,
    pub ceilings: Ceilings,
    pub ratios: Ratios,
    pub goals: Vec<Goal>,
    /// Where a traced saga's time goes; only on the bench's own platform.
    #[serde(default)]
    pub profile: Option<Profile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu: String,
    pub os: String,
}

impl Machine {
    pub(crate) fn this() -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            cpu,
            os: std::env::consts::OS.to_owned(),
        }
    }
}

/// The checkout's commit, `-dirty` when it has uncommitted changes; or
/// `unknown` outside a git checkout.
pub(crate) fn git_commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match run(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        None => "unknown".into(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Platform {
    /// The edge driven; `own` when the bench started the platform itself.
    pub edge: String,
    pub own: bool,
    pub partitions: Option<i32>,
    /// The `--set` settings its processes ran with.
    #[serde(default)]
    pub settings: Vec<String>,
    /// The broker binary the own platform ran.
    #[serde(default)]
    pub broker_bin: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PhaseReport {
    /// `closed` or `open`.
    pub mode: String,
    pub clients: Option<usize>,
    pub rate_per_second: Option<f64>,
    pub seconds: f64,
    /// Orders the edge accepted.
    pub placed: usize,
    /// Orders it did not, with the first few answers.
    pub refused: usize,
    pub refusals: Vec<String>,
    pub confirmed: usize,
    pub cancelled: usize,
    /// Accepted but not ended within the drain time.
    pub unfinished: usize,
    pub unfinished_share: f64,
    /// Ended sagas over the time from the phase's start to the last end.
    pub sagas_per_second: f64,
    pub post: Latency,
    /// POST to the answer that showed the order ended.
    pub completion: Latency,
    /// POST to the terminal event's commit (the services' clocks).
    pub saga: Latency,
    pub steps: Vec<Step>,
    /// Write transactions the server began during the phase, per ended saga.
    pub transactions_per_saga: f64,
    /// Of those, the payment provider stand-in's (its charges), on the
    /// bench's own platform.
    #[serde(default)]
    pub provider_transactions_per_saga: Option<f64>,
    /// Messages written to the topics during the phase, per ended saga.
    pub messages_per_saga: f64,
    /// Their mean size, key and value.
    pub message_bytes: Option<usize>,
    /// Each process's processor time during the phase, busiest first.
    #[serde(default)]
    pub cpu: Vec<ProcessCpu>,
}

/// The pid-file names of Choreo's own processes on the saga's path.
const CHOREO_PROCESSES: [&str; 5] = ["order", "inventory", "payment", "shipping", "edge"];

/// Each process's processor time with no orders at all.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Idle {
    pub seconds: f64,
    pub cpu: Vec<ProcessCpu>,
}

impl Idle {
    /// The platform's processes and PostgreSQL, the bench left out.
    pub(crate) fn platform_cores(&self) -> f64 {
        self.cpu
            .iter()
            .filter(|p| p.process != BENCH_PROCESS)
            .map(|p| p.cores)
            .sum()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Step {
    pub name: String,
    pub latency: Latency,
}

/// What the database and the broker counted during a phase.
pub(crate) struct Counted {
    pub transactions: i64,
    pub provider_transactions: Option<i64>,
    pub messages: i64,
    pub message_bytes: Option<usize>,
    pub cpu: Vec<ProcessCpu>,
}

impl PhaseReport {
    pub(crate) fn new(run: &PhaseRun, counted: &Counted) -> Self {
        let ended: Vec<_> = run.ended().collect();
        let last_end = ended
            .iter()
            .filter_map(|o| o.ended_at)
            .max()
            .map(|at| at.duration_since(run.started).as_secs_f64());
        let placed = run.observed.len();
        let unfinished = placed - ended.len();
        let durations = |f: &dyn Fn(&super::load::Observed) -> Option<Duration>| -> Vec<Duration> {
            run.observed.iter().filter_map(f).collect()
        };
        // Steps in the order sagas go through them, by where they first
        // show up in a timeline.
        let mut steps: Vec<(String, Vec<Duration>)> = Vec::new();
        for o in &ended {
            for (name, d) in &o.steps {
                match steps.iter_mut().find(|(n, _)| n == name) {
                    Some((_, samples)) => samples.push(*d),
                    None => steps.push((name.clone(), vec![*d])),
                }
            }
        }
        let per_saga = |n: i64| {
            if ended.is_empty() {
                0.0
            } else {
                n as f64 / ended.len() as f64
            }
        };
        let (mode, clients, rate) = match run.load {
            Load::Closed { clients } => ("closed", Some(clients), None),
            Load::Open { rate } => ("open", None, Some(rate)),
        };
        Self {
            mode: mode.into(),
            clients,
            rate_per_second: rate,
            seconds: run.seconds,
            placed,
            refused: run.refused.len(),
            refusals: run.refused.iter().take(5).cloned().collect(),
            confirmed: ended.iter().filter(|o| o.status == "CONFIRMED").count(),
            cancelled: ended.iter().filter(|o| o.status == "CANCELLED").count(),
            unfinished,
            unfinished_share: if placed == 0 {
                0.0
            } else {
                unfinished as f64 / placed as f64
            },
            sagas_per_second: last_end.map_or(0.0, |s| ended.len() as f64 / s.max(1e-9)),
            post: Latency::of(&durations(&|o| Some(o.post))),
            completion: Latency::of(&durations(&|o| o.completion)),
            saga: Latency::of(&durations(&|o| o.saga)),
            steps: steps
                .into_iter()
                .map(|(name, samples)| Step {
                    name,
                    latency: Latency::of(&samples),
                })
                .collect(),
            transactions_per_saga: per_saga(counted.transactions),
            provider_transactions_per_saga: counted.provider_transactions.map(per_saga),
            messages_per_saga: per_saga(counted.messages),
            message_bytes: counted.message_bytes,
            cpu: counted.cpu.clone(),
        }
    }

    /// The processor time of the four saga services and the edge together,
    /// per saga: Choreo's own cost, without the broker, the registry, the
    /// provider stand-in and PostgreSQL.
    pub(crate) fn choreo_ms_per_saga(&self) -> f64 {
        self.cpu
            .iter()
            .filter(|p| CHOREO_PROCESSES.contains(&p.process.as_str()))
            .map(|p| p.ms_per_saga)
            .sum()
    }

    /// An open phase with nothing in it, for tests to fill in.
    #[cfg(test)]
    pub(crate) fn empty_open(rate: f64) -> Self {
        Self {
            mode: "open".into(),
            clients: None,
            rate_per_second: Some(rate),
            seconds: 1.0,
            placed: 0,
            refused: 0,
            refusals: Vec::new(),
            confirmed: 0,
            cancelled: 0,
            unfinished: 0,
            unfinished_share: 0.0,
            sagas_per_second: 0.0,
            post: Latency::default(),
            completion: Latency::default(),
            saga: Latency::default(),
            steps: Vec::new(),
            transactions_per_saga: 0.0,
            provider_transactions_per_saga: None,
            messages_per_saga: 0.0,
            message_bytes: None,
            cpu: Vec::new(),
        }
    }

    /// The write transactions per saga of the platform itself: the
    /// server's, less the payment provider stand-in's where they were
    /// counted (a real provider does not write to the platform's server).
    pub(crate) fn choreo_transactions_per_saga(&self) -> f64 {
        self.transactions_per_saga - self.provider_transactions_per_saga.unwrap_or(0.0)
    }

    /// One process's processor time per saga; 0 when it was not measured.
    pub(crate) fn process_ms_per_saga(&self, process: &str) -> f64 {
        self.cpu
            .iter()
            .find(|p| p.process == process)
            .map_or(0.0, |p| p.ms_per_saga)
    }

    /// The highest p50 of the steps between two events of the saga (the
    /// POST's step left out): each is one hop through the broker and the
    /// next service's handling.
    pub(crate) fn widest_step_p50_ms(&self) -> f64 {
        self.steps
            .iter()
            .filter(|s| !s.name.starts_with("POST"))
            .map(|s| s.latency.p50_ms)
            .fold(0.0, f64::max)
    }

    fn title(&self) -> String {
        match (self.clients, self.rate_per_second) {
            (Some(c), _) => format!("closed loop, {c} clients, {:.0} s", self.seconds),
            (_, Some(r)) => format!("open loop, {r:.0} orders/s, {:.0} s", self.seconds),
            _ => self.mode.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ceilings {
    pub commit: CommitCeiling,
    pub broker: BrokerCeiling,
}

/// The closed loop (the most the platform sustained) against the
/// ceilings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ratios {
    /// sagas/s × transactions per saga ÷ the commit rate.
    pub commits: f64,
    /// sagas/s × messages per saga ÷ the broker rate.
    pub broker: f64,
    /// The saga rate the commit rate allows: commits/s ÷ transactions per
    /// saga.
    pub sagas_per_second_the_commits_allow: f64,
}

impl Ratios {
    pub(crate) fn new(closed: &PhaseReport, ceilings: &Ceilings) -> Self {
        let share = |used: f64, ceiling: f64| if ceiling > 0.0 { used / ceiling } else { 0.0 };
        Self {
            commits: share(
                closed.sagas_per_second * closed.transactions_per_saga,
                ceilings.commit.per_second,
            ),
            broker: share(
                closed.sagas_per_second * closed.messages_per_saga,
                ceilings.broker.per_second,
            ),
            sagas_per_second_the_commits_allow: share(
                ceilings.commit.per_second,
                closed.transactions_per_saga,
            ),
        }
    }
}

/// One of the goals, and what this run reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Goal {
    pub goal: String,
    pub reached: String,
    pub met: bool,
}

/// What a run is judged against. The first three are the first bench
/// issue's; the rest issue 26's targets for a release build on one
/// machine: the search's highest sustained rate, the open loop at half of
/// it, and the costs per saga of the closed loop (the platform at its
/// busiest, so that idle time is not spread over the sagas).
pub(crate) fn goals(
    closed: &PhaseReport,
    open: Option<&PhaseReport>,
    ratios: &Ratios,
    search: Option<&Search>,
    idle: Option<&Idle>,
) -> Vec<Goal> {
    let mut goals = vec![Goal {
        goal: "at least 1000 completed sagas/s".into(),
        reached: format!("{:.0} sagas/s", closed.sagas_per_second),
        met: closed.sagas_per_second >= 1000.0,
    }];
    // Half of the highest rate the search sustained, or without a search
    // half of what the closed loop did.
    let sustained = search
        .and_then(|s| s.highest_sustained)
        .unwrap_or(closed.sagas_per_second);
    let at_half = open.filter(|open| {
        open.rate_per_second
            .is_some_and(|r| (r - half_rate(sustained)).abs() <= 1.0)
    });
    let note = if at_half.is_some() {
        ""
    } else {
        " (not at half the sustained rate)"
    };
    if let Some(open) = open {
        goals.push(Goal {
            goal: "completion p99 under 100 ms at half the sustained rate".into(),
            reached: format!(
                "p99 {:.1} ms at {:.0} orders/s{note}",
                open.completion.p99_ms,
                open.rate_per_second.unwrap_or(0.0),
            ),
            met: at_half.is_some() && open.completion.p99_ms < 100.0 && open.unfinished == 0,
        });
    }
    goals.push(Goal {
        goal: "a saga rate at least half of what the commit rate allows".into(),
        reached: format!(
            "{:.0} of {:.0} sagas/s ({:.0} %)",
            closed.sagas_per_second,
            ratios.sagas_per_second_the_commits_allow,
            ratios.commits * 100.0
        ),
        met: ratios.commits >= 0.5,
    });
    let highest = search.and_then(|s| s.highest_sustained);
    goals.push(Goal {
        goal: "a highest sustained rate of at least 250 sagas/s".into(),
        reached: match (search, highest) {
            (None, _) => "not searched (--rate or --search-seconds 0)".into(),
            (Some(_), None) => "no rate was sustained".into(),
            (Some(_), Some(r)) => format!("{r:.1} sagas/s"),
        },
        met: highest.is_some_and(|r| r >= 250.0),
    });
    if let Some(open) = open {
        let hop = open.widest_step_p50_ms();
        goals.push(Goal {
            goal: "at half of it, saga p99 at most 100 ms and each step's p50 at most 10 ms".into(),
            reached: format!(
                "saga p99 {:.1} ms, slowest step p50 {hop:.1} ms at {:.0} orders/s{note}",
                open.saga.p99_ms,
                open.rate_per_second.unwrap_or(0.0),
            ),
            met: at_half.is_some()
                && open.unfinished == 0
                && open.saga.p99_ms <= 100.0
                && hop <= 10.0,
        });
    }
    goals.push(Goal {
        goal: "at most 8 write transactions per saga (the platform's, without the payment provider stand-in's)".into(),
        reached: match closed.provider_transactions_per_saga {
            Some(provider) => format!(
                "{:.1} ({:.1} on the server, {provider:.1} of them the provider stand-in's)",
                closed.choreo_transactions_per_saga(),
                closed.transactions_per_saga
            ),
            None => format!(
                "{:.1} on the server (the provider stand-in's not counted apart)",
                closed.transactions_per_saga
            ),
        },
        met: closed.choreo_transactions_per_saga() <= 8.0,
    });
    if !closed.cpu.is_empty() {
        let broker = closed.process_ms_per_saga("broker");
        goals.push(Goal {
            goal: "processor per saga: Choreo's services and edge at most 3 ms, the broker at most 2 ms"
                .into(),
            reached: format!(
                "{:.1} ms and {broker:.1} ms",
                closed.choreo_ms_per_saga()
            ),
            met: closed.choreo_ms_per_saga() <= 3.0 && broker <= 2.0,
        });
    }
    if let Some(idle) = idle {
        goals.push(Goal {
            goal: "an idle platform at most 0.05 cores".into(),
            reached: format!("{:.3} cores", idle.platform_cores()),
            met: idle.platform_cores() <= 0.05,
        });
    }
    goals
}

impl BenchReport {
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "choreo bench at {} ({} build), {} cores, {:.1} GiB, {}",
            self.git_commit, self.build, m.cores, m.memory_gib, m.cpu
        );
        if !self.platform.settings.is_empty() {
            let _ = writeln!(out, "settings: {}", self.platform.settings.join(" "));
        }
        if let Some(idle) = &self.idle {
            let _ = writeln!(
                out,
                "\nidle platform, {:.0} s without orders: {:.3} cores in all",
                idle.seconds,
                idle.platform_cores()
            );
            for p in idle.cpu.iter().filter(|p| p.process != BENCH_PROCESS) {
                let _ = writeln!(out, "    {:<36} {:>6.3} cores", p.process, p.cores);
            }
        }
        for phase in &self.phases {
            let _ = writeln!(out, "\n{}", phase.title());
            let _ = writeln!(
                out,
                "  sagas/s {:>9.1}   placed {}  confirmed {}  cancelled {}  unfinished {} ({:.2} %)  refused {}",
                phase.sagas_per_second,
                phase.placed,
                phase.confirmed,
                phase.cancelled,
                phase.unfinished,
                phase.unfinished_share * 100.0,
                phase.refused
            );
            for why in &phase.refusals {
                let _ = writeln!(out, "    refused: {why}");
            }
            let _ = writeln!(
                out,
                "  {:<38} {:>8} {:>8} {:>8} {:>8}",
                "ms", "p50", "p95", "p99", "max"
            );
            let mut row = |name: &str, l: &Latency| {
                let _ = writeln!(
                    out,
                    "  {:<38} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                    name, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
                );
            };
            row("POST /v1/orders", &phase.post);
            row("completion (POST to the end seen)", &phase.completion);
            row("saga (POST to the terminal event)", &phase.saga);
            for step in &phase.steps {
                row(&format!("  {}", step.name), &step.latency);
            }
            let provider = phase
                .provider_transactions_per_saga
                .map_or_else(String::new, |p| {
                    format!(" ({p:.1} of them the payment provider stand-in's)")
                });
            let _ = writeln!(
                out,
                "  per saga: {:.1} write transactions{provider}, {:.1} messages of {} bytes",
                phase.transactions_per_saga,
                phase.messages_per_saga,
                phase
                    .message_bytes
                    .map_or_else(|| "?".to_owned(), |b| b.to_string())
            );
            if !phase.cpu.is_empty() {
                let total: f64 = phase.cpu.iter().map(|p| p.cores).sum();
                let _ = writeln!(
                    out,
                    "  processor time, {total:.2} of {} cores in all:",
                    self.machine.cores
                );
                for p in &phase.cpu {
                    let _ = writeln!(
                        out,
                        "    {:<36} {:>5.2} cores {:>8.1} ms/saga",
                        p.process, p.cores, p.ms_per_saga
                    );
                }
                let _ = writeln!(
                    out,
                    "    {:<36} {:>20.1} ms/saga",
                    "Choreo's services and edge",
                    phase.choreo_ms_per_saga()
                );
            }
            if phase.mode == "closed" {
                if let Some(search) = &self.search {
                    search.write(&mut out);
                }
            }
        }
        if let Some(profile) = &self.profile {
            let _ = writeln!(
                out,
                "\nwhere a saga's time goes: {} traced sagas, {} spans",
                profile.sagas, profile.spans
            );
            let _ = writeln!(out, "  {:<52} {:>9} {:>7}", "cost", "ms/saga", "share");
            for (i, cost) in profile.costs.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "  {}{:<50} {:>9.1} {:>6.1} %",
                    if i < 3 { "* " } else { "  " },
                    cost.kind,
                    cost.per_saga_ms,
                    cost.share * 100.0
                );
            }
            let _ = writeln!(
                out,
                "  {:<52} {:>9} {:>7} {:>8} {:>8}",
                "stage", "ms/saga", "share", "p50", "p99"
            );
            for stage in &profile.stages {
                let _ = writeln!(
                    out,
                    "    {:<50} {:>9.1} {:>6.1} % {:>8.1} {:>8.1}",
                    stage.name,
                    stage.per_saga_ms,
                    stage.share * 100.0,
                    stage.latency.p50_ms,
                    stage.latency.p99_ms
                );
            }
        }
        let c = &self.ceilings;
        let _ = writeln!(
            out,
            "\nceilings: PostgreSQL {:.0} commits/s ({} connections, synchronous_commit={}); \
             broker {:.0} messages/s of {} bytes",
            c.commit.per_second,
            c.commit.concurrency,
            c.commit.synchronous_commit,
            c.broker.per_second,
            c.broker.message_bytes
        );
        let r = &self.ratios;
        let _ = writeln!(
            out,
            "ratios: sagas/s × transactions/saga ÷ commits/s = {:.2}; \
             sagas/s × messages/saga ÷ broker messages/s = {:.2}",
            r.commits, r.broker
        );
        let _ = writeln!(out, "goals:");
        for goal in &self.goals {
            let _ = writeln!(
                out,
                "  [{}] {}: {}",
                if goal.met { "met" } else { "not met" },
                goal.goal,
                goal.reached
            );
        }
        out
    }
}

/// The figures `compare` sets side by side, by name.
fn figures(report: &BenchReport) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for phase in &report.phases {
        let p = &phase.mode;
        out.insert(format!("{p}: sagas/s"), phase.sagas_per_second);
        out.insert(format!("{p}: unfinished share"), phase.unfinished_share);
        out.insert(format!("{p}: POST p50 ms"), phase.post.p50_ms);
        out.insert(format!("{p}: POST p99 ms"), phase.post.p99_ms);
        out.insert(format!("{p}: completion p50 ms"), phase.completion.p50_ms);
        out.insert(format!("{p}: completion p95 ms"), phase.completion.p95_ms);
        out.insert(format!("{p}: completion p99 ms"), phase.completion.p99_ms);
        out.insert(format!("{p}: completion max ms"), phase.completion.max_ms);
        out.insert(format!("{p}: saga p50 ms"), phase.saga.p50_ms);
        out.insert(format!("{p}: saga p99 ms"), phase.saga.p99_ms);
        out.insert(
            format!("{p}: slowest step p50 ms"),
            phase.widest_step_p50_ms(),
        );
        out.insert(
            format!("{p}: transactions/saga"),
            phase.transactions_per_saga,
        );
        out.insert(format!("{p}: messages/saga"), phase.messages_per_saga);
        if phase.provider_transactions_per_saga.is_some() {
            out.insert(
                format!("{p}: transactions/saga, without the provider's"),
                phase.choreo_transactions_per_saga(),
            );
        }
        for process in &phase.cpu {
            out.insert(
                format!("{p}: cpu ms/saga, {}", process.process),
                process.ms_per_saga,
            );
        }
        out.insert(
            format!("{p}: cpu ms/saga, Choreo's services and edge"),
            phase.choreo_ms_per_saga(),
        );
    }
    if let Some(highest) = report.search.as_ref().and_then(|s| s.highest_sustained) {
        out.insert("search: highest sustained sagas/s".into(), highest);
    }
    if let Some(idle) = &report.idle {
        out.insert("idle: cores, platform".into(), idle.platform_cores());
        for process in &idle.cpu {
            out.insert(format!("idle: cores, {}", process.process), process.cores);
        }
    }
    for cost in report.profile.iter().flat_map(|p| &p.costs) {
        out.insert(format!("profile: ms/saga, {}", cost.kind), cost.per_saga_ms);
    }
    out.insert(
        "ceiling: commits/s".into(),
        report.ceilings.commit.per_second,
    );
    out.insert(
        "ceiling: broker messages/s".into(),
        report.ceilings.broker.per_second,
    );
    out.insert("ratio: commits".into(), report.ratios.commits);
    out.insert("ratio: broker".into(), report.ratios.broker);
    out
}

/// `a` against `b`, figure by figure, with the change in per cent.
pub(crate) fn compare(a: &BenchReport, b: &BenchReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<30} {:>14} {:>14} {:>9}",
        "", a.git_commit, b.git_commit, "change"
    );
    for (label, (x, y)) in [
        ("build", (&a.build, &b.build)),
        ("cpu", (&a.machine.cpu, &b.machine.cpu)),
    ] {
        if x != y {
            let _ = writeln!(out, "{label} differs: {x} against {y}");
        }
    }
    if a.machine.cores != b.machine.cores {
        let _ = writeln!(
            out,
            "cores differ: {} against {}",
            a.machine.cores, b.machine.cores
        );
    }
    let (fa, fb) = (figures(a), figures(b));
    for (name, x) in &fa {
        let Some(y) = fb.get(name) else { continue };
        let change = if *x == 0.0 {
            "".to_owned()
        } else {
            format!("{:+.1} %", (y - x) / x * 100.0)
        };
        let _ = writeln!(out, "{name:<30} {x:>14.2} {y:>14.2} {change:>9}");
    }
    out
}
