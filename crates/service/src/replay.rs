//! A service binary's `replay` command (`choreo-<service> replay`, which
//! `choreo replay --service <service>` runs): re-read the service's topics
//! from an earlier position, through the service's own code, to bring it
//! back to the truth after an incident: first its own topic, where it can
//! re-derive its state from it (its published decisions and admin changes,
//! in the order it committed them), then its inputs.
//!
//! It runs with the service's own configuration (the same `CHOREO_CONFIG`
//! file and `CHOREO_*` environment the service reads), so it replays into
//! the service's database, on its broker and topics, charging through its
//! payment provider. It refuses while the service's consumer group has live
//! members: stop the service first. What a replay does to each event, and
//! why it is safe, is in `choreo_messaging::replay`.

use crate::{SagaService, ServiceSettings, run_dir::stop_service};
use anyhow::Context;
use choreo_events::{RegistryClient, Topic, choreography::Consumer};
use choreo_kit::CancellationToken;
use choreo_messaging::{
    Handler,
    replay::{self, Phase, Range, Replayed, Request, Start},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::{ffi::OsString, path::PathBuf};

/// What to replay: the same flags for `choreo replay --service S` and for
/// the service binary's own `replay`, which the first runs.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Only this topic: one of the service's inputs or its own topic, by
    /// name without the deployment's prefix (`order.events`, or `order`);
    /// repeatable. Default: its own topic (where it can re-derive its state
    /// from it), then every topic it consumes.
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Only this partition of each topic.
    #[arg(long)]
    partition: Option<i32>,
    /// Re-read from the first message at or after this time (RFC 3339,
    /// `2026-11-22T10:00:00Z`).
    #[arg(long, group = "start", value_parser = parse_time)]
    from_timestamp: Option<DateTime<Utc>>,
    /// Re-read from this offset on every partition replayed.
    #[arg(long, group = "start")]
    from_offset: Option<i64>,
    /// Re-read everything the broker still holds.
    #[arg(long, group = "start")]
    from_beginning: bool,
    /// Stop before the first message at or after this time (RFC 3339).
    /// Default: at the end of each partition as the replay starts.
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Print what would be re-read, per partition, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Replay even events older than the service's inbox remembers
    /// (`retention.inbox_days`), which a replay cannot tell apart from new
    /// ones; refused without it.
    #[arg(long)]
    force: bool,
    /// Print the plan and the summary as JSON.
    #[arg(long)]
    json: bool,
    /// The data folder of the `choreo up` that supervises the service, if
    /// one does: the service is held (stopped) for the replay and started
    /// again after it.
    #[arg(long, env = "CHOREO_DATA_DIR", default_value = ".choreo")]
    data_dir: PathBuf,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: expected a time such as 2026-11-22T10:00:00Z"))
}

/// Replays into the service `S` with its configuration `settings`.
///
/// # Errors
/// When the arguments do not fit the service, the service runs beside the
/// replay, the broker or the database fails, or the replay is interrupted.
pub async fn run<S: SagaService>(args: ReplayArgs, settings: S::Settings) -> anyhow::Result<()> {
    replay_into::<S>(&args, &settings).await
}

impl ReplayArgs {
    /// The flags again, as the service binary's `replay` takes them: what
    /// `choreo replay` passes on.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            args.push(format!("--{name}").into());
            args.extend(value.map(OsString::from));
        };
        for topic in &self.topics {
            flag("topic", Some(topic.clone()));
        }
        if let Some(p) = self.partition {
            flag("partition", Some(p.to_string()));
        }
        if let Some(t) = self.from_timestamp {
            flag("from-timestamp", Some(t.to_rfc3339()));
        }
        if let Some(o) = self.from_offset {
            flag("from-offset", Some(o.to_string()));
        }
        if self.from_beginning {
            flag("from-beginning", None);
        }
        if let Some(t) = self.until {
            flag("until", Some(t.to_rfc3339()));
        }
        if self.dry_run {
            flag("dry-run", None);
        }
        if self.force {
            flag("force", None);
        }
        if self.json {
            flag("json", None);
        }
        args.push("--data-dir".into());
        args.push(self.data_dir.clone().into_os_string());
        args
    }

    fn start(&self) -> anyhow::Result<Start> {
        match (self.from_timestamp, self.from_offset, self.from_beginning) {
            (Some(time), _, _) => Ok(Start::Timestamp(time)),
            (_, Some(offset), _) if offset < 0 => {
                anyhow::bail!("--from-offset must not be negative")
            }
            (_, Some(offset), _) => Ok(Start::Offset(offset)),
            (_, _, true) => Ok(Start::Beginning),
            _ => anyhow::bail!(
                "say where to start: --from-timestamp TIME, --from-offset N or --from-beginning"
            ),
        }
    }

    /// The full names of the topics to replay, as (own topic, inputs): the
    /// service's own topic, when it can re-derive its state from it, and its
    /// inputs; or the ones asked for, which must be among them.
    fn topics(
        &self,
        service: &Consumer,
        settings: &ServiceSettings,
        own: Option<Topic>,
    ) -> anyhow::Result<(Option<String>, Vec<String>)> {
        let inputs = service.inputs;
        let names = settings.kafka.topics();
        if self.topics.is_empty() {
            return Ok((
                own.map(|t| names.name(t)),
                inputs.iter().map(|t| names.name(*t)).collect(),
            ));
        }
        let readable: Vec<Topic> = own.into_iter().chain(inputs.iter().copied()).collect();
        let mut asked_own = None;
        let mut asked_inputs = Vec::new();
        for asked in &self.topics {
            let topic = readable
                .iter()
                .find(|t| {
                    t.base_name() == asked
                        || names.name(**t) == *asked
                        || t.base_name().strip_suffix(".events") == Some(asked.as_str())
                })
                .with_context(|| {
                    format!(
                        "{} does not consume {asked:?}; it reads {}",
                        service.service,
                        readable
                            .iter()
                            .map(|t| t.base_name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            if Some(*topic) == own {
                asked_own = Some(names.name(*topic));
            } else {
                asked_inputs.push(names.name(*topic));
            }
        }
        Ok((asked_own, asked_inputs))
    }
}

/// Ranges that reach back further than the service's inbox remembers: an
/// event there may have been applied and its inbox row purged since, and a
/// replay would take it for a new one.
struct BeyondInbox {
    service: &'static str,
    inbox_days: f64,
    cutoff: DateTime<Utc>,
    /// Topic/partition and the time of its first event re-read.
    partitions: Vec<(String, DateTime<Utc>)>,
}

impl BeyondInbox {
    fn check(service: &'static str, planned: &[Planned], inbox_days: f64) -> Option<Self> {
        let cutoff =
            Utc::now() - chrono::Duration::milliseconds((inbox_days * 86_400_000.0).round() as i64);
        let partitions: Vec<(String, DateTime<Utc>)> = planned
            .iter()
            .filter_map(|p| {
                let first = p.range.first_at?;
                (first < cutoff)
                    .then(|| (format!("{}/{}", p.range.topic, p.range.partition), first))
            })
            .collect();
        (!partitions.is_empty()).then_some(Self {
            service,
            inbox_days,
            cutoff,
            partitions,
        })
    }
}

impl std::fmt::Display for BeyondInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            service,
            inbox_days,
            cutoff,
            partitions,
        } = self;
        let at = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let oldest = at(partitions.iter().map(|(_, t)| t).min().unwrap_or(cutoff));
        let cutoff = at(cutoff);
        writeln!(
            f,
            "the replay reaches back to {oldest} on {}, further than {service}'s inbox remembers \
             (retention.inbox_days = {inbox_days}: events applied before {cutoff} have had their \
             inbox rows purged).",
            partitions
                .iter()
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )?;
        writeln!(
            f,
            "What could be applied twice: any event from before {cutoff} that {service} had applied; \
             the replay can no longer tell it from a new one, so it goes to the handler again."
        )?;
        writeln!(
            f,
            "What still protects it: the business keys. Each saga service keeps one row per order \
             (inventory its reservation, payment the payment, shipping the shipment, order the \
             saga's state) and does nothing to an order already past the step an event asks for; \
             admin changes are kept by event id in change logs that are never purged. An event \
             whose order's row is gone, or was never written, is applied as if new."
        )?;
        write!(
            f,
            "Start later (--from-timestamp after {cutoff}), or pass --force to replay the window \
             anyway."
        )
    }
}

/// A range with the phase that reads it, as `--dry-run --json` prints it.
#[derive(Debug, Serialize)]
struct Planned {
    phase: Phase,
    #[serde(flatten)]
    range: Range,
}

async fn replay_into<S: SagaService>(args: &ReplayArgs, full: &S::Settings) -> anyhow::Result<()> {
    let service = S::CHOREOGRAPHY;
    let settings = S::service(full);
    // Its own topic only where it can re-derive its state from it.
    let own = S::recovery().map(|_| service.publishes);
    let start = args.start()?;
    if let (Start::Timestamp(from), Some(until)) = (start, args.until) {
        anyhow::ensure!(
            from < until,
            "--until {until} is not after the start {from}"
        );
    }
    let kafka = &settings.kafka;
    let name = service.service;
    let group = format!("{}{name}", kafka.topic_prefix);
    let (own_topic, inputs) = args.topics(service, settings, own)?;
    let request = |topics: Vec<String>| Request {
        group: group.clone(),
        topics,
        partition: args.partition,
        start,
        until: args.until,
    };
    let plan = || async {
        let mut planned = Vec::new();
        for (phase, topics) in [
            (
                Phase::Own,
                own_topic.clone().into_iter().collect::<Vec<_>>(),
            ),
            (Phase::Inputs, inputs.clone()),
        ] {
            if topics.is_empty() {
                continue;
            }
            let ranges = replay::plan(kafka, &request(topics.clone()))
                .await
                .with_context(|| format!("planning the replay of {}", topics.join(", ")))?;
            planned.extend(ranges.into_iter().map(|range| Planned { phase, range }));
        }
        anyhow::Ok(planned)
    };
    // Checked before the service is stopped, so that a refused replay
    // changes nothing at all; planned again once it is stopped, so that
    // the committed offsets are the ones it left.
    let first = plan().await?;
    tracing::debug!("replay planned");
    let beyond = BeyondInbox::check(name, &first, settings.retention.inbox_days);
    if let Some(beyond) = &beyond {
        anyhow::ensure!(args.force || args.dry_run, "{beyond}");
    }
    let (planned, _hold) = if args.dry_run {
        (first, None)
    } else {
        let hold = stop_service(&args.data_dir, name, settings, &group).await?;
        (plan().await?, hold)
    };
    if args.json && args.dry_run {
        println!("{}", serde_json::to_string_pretty(&planned)?);
        return Ok(());
    }
    if !args.json {
        print_plan(name, &planned, args.dry_run);
    }
    if let Some(beyond) = &beyond {
        let verdict = match (args.force, args.dry_run) {
            (true, false) => "replaying anyway (--force)",
            (true, true) => "with --force, a replay of this window would go ahead",
            (false, _) => "a replay of this window is refused without --force",
        };
        eprintln!("warning: {beyond}\n{verdict}");
    }
    if args.dry_run {
        return Ok(());
    }
    // Built only for a replay that applies: a dry run needs no key.
    tracing::debug!("replay planned again, the service stopped");
    let signer = choreo_kit::operator::for_service_tool(&settings.internal_auth, &args.data_dir)?;
    let handler = S::replay_handler(full, signer.clone())?;
    // The replay's tables grow from nothing (an empty or old database) to
    // their full size while it runs. The generic plan PostgreSQL settles on
    // for a prepared statement after five runs is costed on the sizes of
    // then: a sequential scan of a nearly empty `reservations` stayed the
    // plan at 50,000 rows, until autovacuum's ANALYZE happened to replace
    // it, and applying slowed from 4,100 to 1,300 events/s within a minute.
    // Planned for its values each time, a statement finds the index as the
    // table grows, for a few microseconds of planning.
    let pool = crate::connect_with(settings, S::migrations(), |options| {
        options.options([("plan_cache_mode", "force_custom_plan")])
    })
    .await
    .with_context(|| format!("connecting to {name}'s database"))?;
    tracing::debug!("replay connected to the database");
    let registry = RegistryClient::new(&settings.registry_url, signer);
    let stop = stop_on_ctrl_c();
    let total: i64 = planned.iter().map(|p| p.range.len()).sum();
    let mut display = Display::new(name, total);
    let ranges_of = |phase: Phase| -> Vec<Range> {
        planned
            .iter()
            .filter(|p| p.phase == phase)
            .map(|p| p.range.clone())
            .collect()
    };
    // The service's own facts first, so that no input is decided anew
    // before the decisions it had published are back.
    let phases = Phases {
        kafka,
        group: &group,
        service: name,
        pool,
        registry,
        until: args.until,
        stop: &stop,
    };
    let mut done: Vec<Replayed> = Vec::new();
    let mut interrupted = false;
    if let Some(recovery) = S::recovery() {
        interrupted = phases
            .run(
                Phase::Own,
                ranges_of(Phase::Own),
                recovery,
                &mut display,
                &mut done,
            )
            .await
            .context("replaying the service's own topic")?;
    }
    if !interrupted {
        interrupted = phases
            .run(
                Phase::Inputs,
                ranges_of(Phase::Inputs),
                handler,
                &mut display,
                &mut done,
            )
            .await
            .context("replaying the inputs")?;
    }
    display.finish();
    let summary = replay::Summary {
        partitions: done,
        interrupted,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(name, &summary.partitions);
    }
    anyhow::ensure!(
        !summary.interrupted,
        "interrupted: what was re-read is applied and its offsets committed; run the same replay again to finish"
    );
    Ok(())
}

/// Cancelled on Ctrl-C: a replay or a rebuild stops between events.
pub fn stop_on_ctrl_c() -> CancellationToken {
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    stop
}

/// What both phases of a replay share.
struct Phases<'a> {
    kafka: &'a choreo_messaging::KafkaSettings,
    group: &'a str,
    service: &'a str,
    pool: sqlx::PgPool,
    registry: RegistryClient,
    until: Option<DateTime<Utc>>,
    stop: &'a CancellationToken,
}

impl Phases<'_> {
    /// Replays `ranges` through `handler`, adding their outcome to `done`
    /// (earlier phases, which the display counts in its totals). Returns
    /// whether it was interrupted.
    async fn run<H: Handler>(
        &self,
        phase: Phase,
        ranges: Vec<Range>,
        handler: H,
        display: &mut Display,
        done: &mut Vec<Replayed>,
    ) -> anyhow::Result<bool> {
        if ranges.is_empty() {
            return Ok(false);
        }
        let service = replay::Service {
            name: self.service.to_owned(),
            pool: self.pool.clone(),
            registry: self.registry.clone(),
            handler,
        };
        let earlier: &[Replayed] = done;
        let summary = replay::run(
            self.kafka,
            self.group,
            service,
            phase,
            ranges,
            self.until,
            |partitions| display.update(earlier, partitions),
            self.stop,
        )
        .await?;
        done.extend(summary.partitions);
        Ok(summary.interrupted)
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Own => "own",
        Phase::Inputs => "inputs",
    }
}

fn print_plan(service: &str, planned: &[Planned], dry_run: bool) {
    let verb = if dry_run { "would re-read" } else { "re-reads" };
    let total: i64 = planned.iter().map(|p| p.range.len()).sum();
    println!(
        "replay into {service}: {verb} {total} events, its own topic first (its published decisions and admin changes), then its inputs"
    );
    println!(
        "{:<7} {:<24} {:>9} {:>10} {:>10} {:>8} {:>10}",
        "PHASE", "TOPIC", "PARTITION", "FROM", "TO", "EVENTS", "COMMITTED"
    );
    for Planned { phase, range: r } in planned {
        println!(
            "{:<7} {:<24} {:>9} {:>10} {:>10} {:>8} {:>10}",
            phase_name(*phase),
            r.topic,
            r.partition,
            r.from,
            r.to,
            r.len(),
            r.committed.map_or("-".to_owned(), |c| c.to_string())
        );
        if let Some(note) = &r.note {
            println!("  note: {}/{}: {note}", r.topic, r.partition);
        }
    }
    if dry_run {
        println!("dry run: nothing was applied and no offset moved");
    }
}

fn print_summary(service: &str, partitions: &[Replayed]) {
    println!(
        "{:<7} {:<24} {:>9} {:>8} {:>8} {:>8} {:>8} {:>13}",
        "PHASE", "TOPIC", "PARTITION", "RE-READ", "APPLIED", "SKIPPED", "IGNORED", "DEAD-LETTERED"
    );
    for p in partitions {
        let t = &p.tally;
        println!(
            "{:<7} {:<24} {:>9} {:>8} {:>8} {:>8} {:>8} {:>13}",
            phase_name(p.phase),
            p.range.topic,
            p.range.partition,
            t.reread,
            t.applied,
            t.duplicates,
            t.ignored,
            t.dead_lettered
        );
    }
    let sum = |phase: Phase, f: fn(&replay::Tally) -> u64| {
        partitions
            .iter()
            .filter(|p| p.phase == phase)
            .map(|p| f(&p.tally))
            .sum::<u64>()
    };
    if partitions.iter().any(|p| p.phase == Phase::Own) {
        println!(
            "own topic: {} events re-read, {} re-applied (missing from the database), {} already held",
            sum(Phase::Own, |t| t.reread),
            sum(Phase::Own, |t| t.applied),
            sum(Phase::Own, |t| t.ignored + t.duplicates),
        );
    }
    println!(
        "replayed into {service}: {} events re-read, {} applied, {} skipped as already applied, \
         {} not for {service}, {} dead-lettered",
        sum(Phase::Inputs, |t| t.reread),
        sum(Phase::Inputs, |t| t.applied),
        sum(Phase::Inputs, |t| t.duplicates),
        sum(Phase::Inputs, |t| t.ignored),
        sum(Phase::Inputs, |t| t.dead_lettered),
    );
}

/// Progress, on stderr. On a terminal: a bar per partition, with its rate
/// and the time left. Otherwise (a log, a pipe): a line every
/// [`PLAIN_EVERY`] with the totals, the rate and the time left. Both say
/// when a partition is done.
struct Display {
    bars: indicatif::MultiProgress,
    /// Per partition, created as its phase starts; finished once the
    /// partition is done and said so.
    partitions: std::collections::HashMap<(String, i32), indicatif::ProgressBar>,
    service: &'static str,
    total: u64,
    started: std::time::Instant,
    /// When the last plain line was printed.
    last_line: std::time::Instant,
}

/// How often a replay without a terminal says how far it is.
const PLAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Display {
    fn new(service: &'static str, total: i64) -> Self {
        let now = std::time::Instant::now();
        Self {
            bars: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr(),
            ),
            partitions: Default::default(),
            service,
            total: total.max(0) as u64,
            started: now,
            last_line: now,
        }
    }

    fn bar(&mut self, replayed: &Replayed) -> &indicatif::ProgressBar {
        let key = (replayed.range.topic.clone(), replayed.range.partition);
        self.partitions.entry(key).or_insert_with(|| {
            let bar = self.bars.add(indicatif::ProgressBar::new(
                replayed.range.len().max(0) as u64,
            ));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "  {prefix:<30} [{bar:24}] {pos:>7}/{len:<7} {per_sec:>10}  {eta:>4} left  {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!(
                "{} {}/{}",
                phase_name(replayed.phase),
                replayed.range.topic,
                replayed.range.partition
            ));
            bar
        })
    }

    /// `before`: the partitions of an earlier phase, counted in the totals.
    fn update(&mut self, before: &[Replayed], partitions: &[Replayed]) {
        for p in partitions {
            let t = &p.tally;
            let bar = self.bar(p).clone();
            if bar.is_finished() {
                continue;
            }
            bar.set_position(t.reread);
            bar.set_message(format!(
                "{} applied, {} skipped",
                t.applied,
                t.duplicates + t.ignored
            ));
            if t.done && !p.range.is_empty() {
                bar.finish();
                let line = format!(
                    "  {}/{} done: {} re-read, {} applied, {} skipped as already applied, {} ignored, {} dead-lettered",
                    p.range.topic,
                    p.range.partition,
                    t.reread,
                    t.applied,
                    t.duplicates,
                    t.ignored,
                    t.dead_lettered
                );
                // Progress goes to stderr, so that `--json` output stays
                // clean.
                if self.bars.is_hidden() {
                    eprintln!("{line}");
                } else {
                    let _ = self.bars.println(line);
                }
            }
        }
        if self.bars.is_hidden() && self.last_line.elapsed() >= PLAIN_EVERY {
            self.last_line = std::time::Instant::now();
            eprintln!("{}", self.plain_line(before, partitions));
        }
    }

    /// The totals so far, with the rate and the time left at that rate.
    fn plain_line(&self, before: &[Replayed], partitions: &[Replayed]) -> String {
        let (mut read, mut applied, mut skipped) = (0u64, 0u64, 0u64);
        for p in before.iter().chain(partitions) {
            read += p.tally.reread;
            applied += p.tally.applied;
            skipped += p.tally.duplicates + p.tally.ignored;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            read as f64 / seconds
        } else {
            0.0
        };
        let left = self.total.saturating_sub(read);
        let eta = if rate > 0.0 {
            format!("about {:.0} s left", left as f64 / rate)
        } else {
            "time left unknown".to_owned()
        };
        let percent = if self.total > 0 {
            100.0 * read as f64 / self.total as f64
        } else {
            100.0
        };
        format!(
            "  replaying into {}: {read}/{} events ({percent:.0} %), {rate:.0}/s, {eta}; {applied} applied, {skipped} skipped",
            self.service, self.total
        )
    }

    fn finish(&self) {
        let _ = self.bars.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn range(partition: i32, first_at: Option<DateTime<Utc>>) -> Range {
        Range {
            topic: "order.events".into(),
            partition,
            from: 0,
            to: if first_at.is_some() { 10 } else { 0 },
            committed: None,
            note: None,
            first_at,
        }
    }

    #[test]
    fn only_ranges_older_than_the_inbox_are_refused_and_the_refusal_names_them() {
        let now = Utc::now();
        let plan: Vec<Planned> = [
            range(0, Some(now - chrono::Duration::days(20))),
            range(1, Some(now - chrono::Duration::days(1))),
            range(2, None),
        ]
        .into_iter()
        .map(|range| Planned {
            phase: Phase::Inputs,
            range,
        })
        .collect();
        let beyond = BeyondInbox::check("inventory", &plan, 14.0).expect("refused");
        let said = beyond.to_string();
        assert!(said.contains("on order.events/0,"), "{said}");
        assert!(!said.contains("order.events/1"), "{said}");
        assert!(said.contains("retention.inbox_days = 14"), "{said}");
        assert!(said.contains("What could be applied twice"), "{said}");
        assert!(said.contains("--force"), "{said}");
        assert!(BeyondInbox::check("inventory", &plan[1..], 14.0).is_none());
        assert!(BeyondInbox::check("inventory", &plan, 30.0).is_none());
    }

    #[test]
    fn the_plain_line_says_how_far_how_fast_and_how_long() {
        let mut display = Display::new("inventory", 1000);
        display.started = Instant::now() - Duration::from_secs(10);
        let partition = Replayed {
            phase: Phase::Inputs,
            range: range(0, Some(Utc::now())),
            tally: replay::Tally {
                reread: 400,
                applied: 300,
                duplicates: 100,
                ..Default::default()
            },
        };
        let line = display.plain_line(&[], &[partition]);
        assert!(
            line.contains("replaying into inventory: 400/1000 events (40 %)"),
            "{line}"
        );
        assert!(line.contains(", 40/s, about 15 s left;"), "{line}");
        assert!(line.contains("300 applied, 100 skipped"), "{line}");
    }
}
