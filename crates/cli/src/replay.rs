//! `choreo replay`: re-read a service's topics from an earlier position,
//! through the service's own code, to bring it back to the truth after an
//! incident: first its own topic, where it can re-derive its state from it
//! (its published decisions and admin changes, in the order it committed
//! them), then its inputs.
//!
//! It runs with the service's own configuration (the same `CHOREO_CONFIG`
//! file and `CHOREO_*` environment the service reads), so it replays into
//! the service's database, on its broker and topics, charging through its
//! payment provider. It refuses while the service's consumer group has live
//! members: stop the service first. What a replay does to each event, and
//! why it is safe, is in `choreo_messaging::replay`.

use anyhow::Context;
use choreo_events::{RegistryClient, SUBSCRIPTIONS, Topic};
use choreo_kit::CancellationToken;
use choreo_messaging::{
    Handler,
    replay::{self, Phase, Range, Replayed, Request, Start},
};
use choreo_service::ServiceSettings;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::migrate::Migrator;

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// The service to replay into: order, inventory, payment or shipping.
    #[arg(long)]
    service: String,
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
    /// Print the plan and the summary as JSON.
    #[arg(long)]
    json: bool,
    /// The data folder of the `choreo up` that supervises the service, if
    /// one does: the service is held (stopped) for the replay and started
    /// again after it.
    #[arg(long, env = "CHOREO_DATA_DIR", default_value = ".choreo")]
    data_dir: std::path::PathBuf,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: expected a time such as 2026-11-22T10:00:00Z"))
}

pub(crate) async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    match args.service.as_str() {
        "order" => {
            let settings: choreo_order::Settings = load()?;
            let handler = choreo_order::handler();
            let own = (choreo_order::OWN_TOPIC, choreo_order::recovery_handler());
            replay_into(
                &args,
                &settings.service,
                choreo_order::migrations(),
                handler,
                Some(own),
            )
            .await
        }
        "inventory" => {
            let settings: choreo_inventory::Settings = load()?;
            let handler = choreo_inventory::handler();
            let own = (
                choreo_inventory::OWN_TOPIC,
                choreo_inventory::recovery_handler(),
            );
            replay_into(
                &args,
                &settings.service,
                choreo_inventory::migrations(),
                handler,
                Some(own),
            )
            .await
        }
        "payment" => {
            let settings: choreo_payment::Settings = load()?;
            if settings.provider.url.is_none() {
                eprintln!(
                    "warning: payment has no provider configured (CHOREO_PROVIDER__URL): \
                     replayed charges are decided by the wallet alone, as by a payment service without one"
                );
            }
            let signer =
                crate::keys::for_service_tool(&settings.service.internal_auth, &args.data_dir)?;
            let handler = choreo_payment::handler_with_provider(&settings.provider, signer)
                .context("building the payment provider's client")?;
            let own = (
                choreo_payment::OWN_TOPIC,
                choreo_payment::recovery_handler(),
            );
            replay_into(
                &args,
                &settings.service,
                choreo_payment::migrations(),
                handler,
                Some(own),
            )
            .await
        }
        "shipping" => {
            let settings: choreo_shipping::Settings = load()?;
            let handler = choreo_shipping::handler(&settings);
            replay_into(
                &args,
                &settings.service,
                choreo_shipping::migrations(),
                handler,
                None::<(Topic, NoRecovery)>,
            )
            .await
        }
        other => anyhow::bail!(
            "no service {other:?}; the services are {}",
            SUBSCRIPTIONS.map(|(name, _)| name).join(", ")
        ),
    }
}

fn load<T>() -> anyhow::Result<T>
where
    T: Serialize + serde::de::DeserializeOwned + Default,
{
    choreo_kit::load_config().context("loading the service's configuration")
}

impl ReplayArgs {
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
        settings: &ServiceSettings,
        own: Option<Topic>,
    ) -> anyhow::Result<(Option<String>, Vec<String>)> {
        let inputs = SUBSCRIPTIONS
            .iter()
            .find(|(name, _)| *name == self.service)
            .map(|(_, inputs)| *inputs)
            .unwrap_or_default();
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
                        self.service,
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

/// The recovery handler of a service that needs none: shipping decides
/// from its inputs alone (the address, the payment), the same way every
/// time, so its replay reads its inputs only.
struct NoRecovery;

impl Handler for NoRecovery {
    type Input = choreo_events::ShippingEvent;

    fn reacts_to(&self, _: choreo_events::Record) -> bool {
        false
    }

    async fn handle(
        &self,
        _: &mut sqlx::PgConnection,
        _: &choreo_messaging::Delivery,
        _: choreo_events::ShippingEvent,
    ) -> Result<choreo_messaging::Outcome, choreo_messaging::HandlerError> {
        Ok(choreo_messaging::Outcome::Ignored)
    }
}

/// A range with the phase that reads it, as `--dry-run --json` prints it.
#[derive(Debug, Serialize)]
struct Planned {
    phase: Phase,
    #[serde(flatten)]
    range: Range,
}

async fn replay_into<H: Handler, R: Handler>(
    args: &ReplayArgs,
    settings: &ServiceSettings,
    migrations: Migrator,
    handler: H,
    own: Option<(Topic, R)>,
) -> anyhow::Result<()> {
    let start = args.start()?;
    if let (Start::Timestamp(from), Some(until)) = (start, args.until) {
        anyhow::ensure!(
            from < until,
            "--until {until} is not after the start {from}"
        );
    }
    let kafka = &settings.kafka;
    let group = format!("{}{}", kafka.topic_prefix, args.service);
    let (own_topic, inputs) = args.topics(settings, own.as_ref().map(|(t, _)| *t))?;
    let request = |topics: Vec<String>| Request {
        group: group.clone(),
        topics,
        partition: args.partition,
        start,
        until: args.until,
    };
    let _hold = if args.dry_run {
        None
    } else {
        stop_service(&args.data_dir, &args.service, settings, &group).await?
    };
    let mut planned = Vec::new();
    for (phase, topics) in [
        (Phase::Own, own_topic.into_iter().collect::<Vec<_>>()),
        (Phase::Inputs, inputs),
    ] {
        if topics.is_empty() {
            continue;
        }
        let ranges = replay::plan(kafka, &request(topics.clone()))
            .await
            .with_context(|| format!("planning the replay of {}", topics.join(", ")))?;
        planned.extend(ranges.into_iter().map(|range| Planned { phase, range }));
    }
    if args.json && args.dry_run {
        println!("{}", serde_json::to_string_pretty(&planned)?);
        return Ok(());
    }
    if !args.json {
        print_plan(&args.service, &planned, args.dry_run);
    }
    if args.dry_run {
        return Ok(());
    }
    let pool = choreo_service::connect(settings, migrations)
        .await
        .with_context(|| format!("connecting to {}'s database", args.service))?;
    let registry = RegistryClient::new(
        &settings.registry_url,
        crate::keys::for_service_tool(&settings.internal_auth, &args.data_dir)?,
    );
    let stop = stop_on_ctrl_c();
    let total: i64 = planned.iter().map(|p| p.range.len()).sum();
    let mut display = Display::new(total);
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
        service: &args.service,
        pool,
        registry,
        until: args.until,
        stop: &stop,
    };
    let mut done: Vec<Replayed> = Vec::new();
    let mut interrupted = false;
    if let Some((_, recovery)) = own {
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
        print_summary(&args.service, &summary.partitions);
    }
    anyhow::ensure!(
        !summary.interrupted,
        "interrupted: what was re-read is applied and its offsets committed; run the same replay again to finish"
    );
    Ok(())
}

/// Cancelled on Ctrl-C: a replay or a rebuild stops between events.
pub(crate) fn stop_on_ctrl_c() -> CancellationToken {
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

/// Holds a service `choreo up` supervises, for as long as it lives: the
/// supervisor stops the service and starts it again once the hold is gone.
pub(crate) struct Hold {
    file: std::path::PathBuf,
    service: String,
}

impl Hold {
    /// `None` when no `choreo up` in `data_dir` runs the service.
    pub(crate) async fn place(
        data_dir: &std::path::Path,
        service: &str,
    ) -> anyhow::Result<Option<Self>> {
        let run_dir = data_dir.join("run");
        let running = || crate::up::supervisor::replica_pid_files(&run_dir, service);
        if running().is_empty() {
            return Ok(None);
        }
        let file = crate::up::supervisor::hold_file(&run_dir, service);
        std::fs::write(&file, "held by choreo replay or rebuild\n")
            .with_context(|| format!("placing the hold {}", file.display()))?;
        let hold = Self {
            file,
            service: service.to_owned(),
        };
        eprintln!(
            "stopping {service} (supervised by choreo up in {}) meanwhile",
            data_dir.display()
        );
        // The supervisor gives every replica its grace period, then kills it.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while !running().is_empty() {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{service} did not stop within 60 s; is the choreo up in {} still running?",
                data_dir.display()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(Some(hold))
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.file) {
            Ok(()) => eprintln!("{} is started again", self.service),
            Err(e) => eprintln!(
                "cannot remove the hold {} ({e}); remove it to start {} again",
                self.file.display(),
                self.service
            ),
        }
    }
}

/// Stops `service` for a replay or rebuild: holds it where the `choreo up`
/// in `data_dir` runs it; otherwise makes sure it is not running. A
/// service that is already held there, with no replica running, is known
/// stopped: its static members may still be listed in the group until
/// their sessions time out, and are not taken for running replicas.
pub(crate) async fn stop_service(
    data_dir: &std::path::Path,
    service: &str,
    settings: &ServiceSettings,
    group: &str,
) -> anyhow::Result<Option<Hold>> {
    let hold = Hold::place(data_dir, service).await?;
    let run_dir = data_dir.join("run");
    let held = crate::up::supervisor::hold_file(&run_dir, service).exists()
        && crate::up::supervisor::replica_pid_files(&run_dir, service).is_empty();
    if !held {
        ensure_stopped(service, settings, group).await?;
    }
    Ok(hold)
}

/// Refuses while the service runs. The group's live members tell,
/// where the broker can describe groups (a static member stays listed
/// until its session times out, so a service stopped just now may still
/// be refused); otherwise the service's own health endpoint, at the
/// address its configuration names, is asked instead.
async fn ensure_stopped(
    service: &str,
    settings: &ServiceSettings,
    group: &str,
) -> anyhow::Result<()> {
    let members = match replay::live_members(&settings.kafka, group).await {
        Ok(members) => members,
        Err(e) => {
            eprintln!(
                "note: the broker cannot describe the group {group} ({}); asking {service}'s health endpoint at {} instead",
                choreo_telemetry::error_chain(&e),
                settings.http_addr
            );
            let url = format!("http://{}/health/live", settings.http_addr);
            let answered = reqwest::Client::new()
                .get(&url)
                .timeout(std::time::Duration::from_secs(2))
                .send()
                .await
                .is_ok();
            if answered {
                vec![format!("the service answering at {}", settings.http_addr)]
            } else {
                Vec::new()
            }
        }
    };
    anyhow::ensure!(
        members.is_empty(),
        "{service} is running: {list}. Stop it first (a replay beside it would race it on the same \
         events; a replica that stopped just now stays in its group until its session times out), \
         or pass the --data-dir of the choreo up that supervises it; --dry-run is safe meanwhile",
        list = members.join(", ")
    );
    Ok(())
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

/// Progress, on stderr: a bar on a terminal, and a line per partition as it
/// finishes (which is all a log or a pipe gets).
struct Display {
    bar: indicatif::ProgressBar,
    reported: std::collections::HashSet<(String, i32)>,
}

impl Display {
    fn new(total: i64) -> Self {
        let bar = indicatif::ProgressBar::new(total.max(0) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "  replaying [{bar:30}] {pos}/{len} events  {elapsed}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Self {
            bar,
            reported: Default::default(),
        }
    }

    /// `before`: the partitions of an earlier phase, counted in the totals.
    fn update(&mut self, before: &[Replayed], partitions: &[Replayed]) {
        let (mut read, mut applied, mut skipped) = (0, 0, 0);
        for p in before {
            read += p.tally.reread;
            applied += p.tally.applied;
            skipped += p.tally.duplicates + p.tally.ignored;
        }
        for p in partitions {
            read += p.tally.reread;
            applied += p.tally.applied;
            skipped += p.tally.duplicates;
            let key = (p.range.topic.clone(), p.range.partition);
            if p.tally.done && !p.range.is_empty() && self.reported.insert(key) {
                let t = &p.tally;
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
                // clean; without a terminal the bar is hidden and these
                // lines are all there is.
                if self.bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    self.bar.println(line);
                }
            }
        }
        self.bar.set_position(read);
        self.bar
            .set_message(format!("{applied} applied, {skipped} skipped"));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
