//! `choreo bench`: what the platform sustains on this machine, measured
//! against the machine's own limits.
//!
//! `run` drives orders through the edge of a platform (its own, started
//! like `choreo up` starts one, or a running one): a warm-up, a closed loop
//! of N clients, then an open loop at a fixed arrival rate (by default half
//! what the closed loop sustained). Each phase is counted by the platform's
//! own parts too: write transactions by PostgreSQL's transaction-id
//! counter, messages by the topics' watermarks. Then the ceilings at the
//! same concurrency and message size; the results are a table and a JSON
//! file in `bench/results/`, which `compare` sets side by side.
//!
//! Where the time and the processors go: each phase reads the processor
//! time of every platform process (`cpu`), and on its own platform the
//! bench collects the services' spans and runs one more, traced, closed
//! loop whose sagas it cuts into stages (`profile`). Only that loop's
//! sagas are traced, so the measured phases pay nothing for the spans.

mod ceilings;
mod cpu;
mod load;
mod measure;
mod profile;
mod replay;
mod report;
mod search;
mod stats;

use anyhow::Context;
use choreo_platform::{setup::BrokerArgs, up};
use load::{Counters, Load, Shop};
use report::{BenchReport, Ceilings, Counted, PhaseReport};
use std::{path::PathBuf, sync::Arc, time::Duration};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// The machine's limits: PostgreSQL's commit rate for a one-row insert
    /// transaction at a concurrency, and the broker's produce-to-consume
    /// rate for messages of a size.
    Ceilings(CeilingArgs),
    /// Drive sagas through the edge, closed- then open-loop, and judge the
    /// rates against the ceilings; writes the results as JSON.
    Run(Box<RunArgs>),
    /// Two results files side by side, figure by figure.
    Compare(CompareArgs),
    /// How fast a service recovers: fill inventory's input with generated
    /// orders' events, lose its database, replay into an empty one, then
    /// again; events per second, processor and commits per event.
    Replay(Box<replay::ReplayBenchArgs>),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// A running platform's edge; without it, the bench starts a platform
    /// of its own (fresh broker, databases and services, rate limits off)
    /// and stops it at the end.
    #[arg(long)]
    edge: Option<String>,
    /// The running edge's HS256 secret; by default the one `choreo up`
    /// keeps in its data folder.
    #[arg(long, env = "CHOREO_AUTH__HS256_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// The data folder of the `choreo up` behind `--edge`.
    #[arg(long, env = "CHOREO_DATA_DIR", default_value = ".choreo")]
    data_dir: PathBuf,
    /// The broker behind `--edge` (for counting its messages).
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    installation: up::Installation,
    /// Partitions of the topics of the bench's own platform.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Prefix of the own platform's databases; by default one of its own.
    #[arg(long)]
    db_prefix: Option<String>,
    /// Keep the own platform's databases and files.
    #[arg(long)]
    keep: bool,
    /// A setting for every process of the own platform, as
    /// `NAME=VALUE` (`CHOREO_CONSUMER__FETCH_WAIT_MS=10`); repeatable. The
    /// results record them.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = setting)]
    settings: Vec<(String, String)>,
    /// Run N replicas of a saga service on the own platform
    /// (`inventory=3`; repeatable). The results record them with the
    /// settings.
    #[arg(long, value_parser = up::replicas::Replicas::parse_one)]
    replicas: Vec<(&'static str, usize)>,
    /// Clients of the closed loop, each with one order at a time; also the
    /// commit ceiling's concurrency.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// How long each phase places orders.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// The open loop's arrival rate, orders per second, without a search;
    /// by default half the highest rate the search sustained.
    #[arg(long)]
    rate: Option<f64>,
    /// How long each rate of the maximum-throughput search places orders;
    /// 0: no search, the open loop at half the closed loop's rate.
    #[arg(long, default_value_t = 8.0)]
    search_seconds: f64,
    /// The saga p99 over which the search counts a rate as not sustained.
    #[arg(long, default_value_t = 250.0)]
    search_p99_ms: f64,
    /// The most rates the search tries.
    #[arg(long, default_value_t = 10)]
    search_steps: usize,
    /// The B side of an A/B in one run: after the platform as given (A),
    /// the bench runs again on a platform with this setting as well (B);
    /// repeatable, like `--set`.
    #[arg(long = "b-set", value_name = "NAME=VALUE", value_parser = setting)]
    b_settings: Vec<(String, String)>,
    /// The B side's broker binary (`make tansu-stock` installs the
    /// published release).
    #[arg(long)]
    b_tansu_bin: Option<PathBuf>,
    /// The B side's service binaries.
    #[arg(long)]
    b_bin_dir: Option<PathBuf>,
    /// How long, after a phase, its orders still running may take to end
    /// before they count as unfinished.
    #[arg(long, default_value_t = 30.0)]
    drain_seconds: f64,
    /// How long the commit ceiling commits for.
    #[arg(long, default_value_t = 5.0)]
    ceiling_seconds: f64,
    /// Messages the broker ceiling carries.
    #[arg(long, default_value_t = 20_000)]
    ceiling_messages: u64,
    /// How long the idle platform's processor use is measured, after the
    /// warm-up and before any phase (no orders); 0: not measured.
    #[arg(long, default_value_t = 10.0)]
    idle_seconds: f64,
    /// How long the traced closed loop of the profile places orders, on
    /// the bench's own platform (whose spans it collects); 0: no profile.
    #[arg(long, default_value_t = 5.0)]
    profile_seconds: f64,
    /// Where the results file goes.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct CompareArgs {
    /// The earlier results file.
    a: PathBuf,
    /// The later one.
    b: PathBuf,
}

#[derive(Debug, clap::Args)]
struct CeilingArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// A PostgreSQL database the user may create databases from; the
    /// measurement runs in a scratch database it drops.
    #[arg(
        long,
        env = "CHOREO_PG_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pg_admin_url: String,
    /// Connections committing at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to commit for.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Messages to carry through the broker.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Each message's size.
    #[arg(long, default_value_t = 512)]
    message_bytes: usize,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Ceilings(args) => ceilings(args).await,
        BenchCommand::Run(args) => run_bench(*args).await,
        BenchCommand::Replay(args) => replay::run(*args).await,
        BenchCommand::Compare(args) => {
            let read = |path: &PathBuf| -> anyhow::Result<BenchReport> {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let value: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", path.display()))?;
                anyhow::ensure!(
                    value["format"] == report::FORMAT,
                    "{} is not a results file of format {} (`choreo bench run` writes them)",
                    path.display(),
                    report::FORMAT
                );
                serde_json::from_value(value)
                    .with_context(|| format!("{} is not a bench results file", path.display()))
            };
            print!("{}", report::compare(&read(&args.a)?, &read(&args.b)?));
            Ok(())
        }
    }
}

async fn ceilings(args: CeilingArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(
        args.seconds > 0.0 && args.seconds.is_finite(),
        "--seconds must be a positive number"
    );
    anyhow::ensure!(args.messages > 0, "--messages must be at least 1");
    let kafka = args.broker.settings()?;
    let commit = ceilings::commit_rate(
        &args.pg_admin_url,
        args.concurrency,
        Duration::from_secs_f64(args.seconds),
    )
    .await?;
    let broker = ceilings::broker_rate(&kafka, args.messages, args.message_bytes).await?;
    let result = Ceilings { commit, broker };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    let Ceilings { commit, broker } = &result;
    println!(
        "PostgreSQL commits   {:>10.0}/s  ({} one-row transactions from {} connections in {:.1} s; \
         p50 {:.2} ms, p99 {:.2} ms; synchronous_commit={})",
        commit.per_second,
        commit.transactions,
        commit.concurrency,
        commit.seconds,
        commit.p50_ms,
        commit.p99_ms,
        commit.synchronous_commit
    );
    println!(
        "broker messages      {:>10.0}/s  ({} messages of {} bytes, produced and consumed in {:.2} s)",
        broker.per_second, broker.messages, broker.message_bytes, broker.seconds
    );
    Ok(())
}

fn setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() && !name.contains(char::is_whitespace) => {
            Ok((name.to_owned(), value.to_owned()))
        }
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

/// Where the load goes and what counts it.
struct Target {
    edge: String,
    secret: String,
    kafka: choreo_messaging::KafkaSettings,
    pg_admin_url: String,
    own: bool,
    partitions: Option<i32>,
    /// Where the platform's pid files are, for the processor times.
    run_dir: Option<PathBuf>,
    /// Receives the platform's spans, when the bench started it.
    spans: Option<choreo_telemetry::collector::OtlpReceiver>,
    /// The own platform's `--set` settings and broker binary, for the
    /// report.
    settings: Vec<(String, String)>,
    broker_bin: Option<String>,
    /// The payment provider stand-in's database, on the own platform.
    provider_db: Option<String>,
}

async fn run_bench(args: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    for (flag, value) in [
        ("--seconds", args.seconds),
        ("--drain-seconds", args.drain_seconds),
        ("--ceiling-seconds", args.ceiling_seconds),
        ("--search-p99-ms", args.search_p99_ms),
    ] {
        anyhow::ensure!(
            value > 0.0 && value.is_finite(),
            "{flag} must be a positive number"
        );
    }
    if let Some(rate) = args.rate {
        anyhow::ensure!(
            rate > 0.0 && rate.is_finite(),
            "--rate must be a positive number of orders per second"
        );
    }
    for (flag, value) in [
        ("--profile-seconds", args.profile_seconds),
        ("--idle-seconds", args.idle_seconds),
        ("--search-seconds", args.search_seconds),
    ] {
        anyhow::ensure!(
            value >= 0.0 && value.is_finite(),
            "{flag} must be 0 (not measured) or a positive number"
        );
    }
    anyhow::ensure!(args.search_steps > 0, "--search-steps must be at least 1");
    anyhow::ensure!(
        args.ceiling_messages > 0,
        "--ceiling-messages must be at least 1"
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

    if let Some(edge) = &args.edge {
        anyhow::ensure!(
            args.settings.is_empty(),
            "--set applies to the bench's own platform, not to one behind --edge"
        );
        anyhow::ensure!(
            !args.has_b_side(),
            "an A/B (--b-set, --b-tansu-bin, --b-bin-dir) runs on the bench's own platforms, \
             not on one behind --edge"
        );
        let secret = match &args.secret {
            Some(secret) => secret.clone(),
            None => {
                let file = args.data_dir.join("edge-token-secret");
                std::fs::read_to_string(&file)
                    .with_context(|| {
                        format!(
                            "reading {}; pass --secret, the edge's HS256 secret",
                            file.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        let target = Target {
            edge: edge.trim_end_matches('/').to_owned(),
            secret,
            kafka: args.broker.settings()?,
            pg_admin_url: args.installation.pg_admin_url.clone(),
            own: false,
            partitions: None,
            run_dir: Some(args.data_dir.join("run")),
            spans: None,
            settings: Vec::new(),
            broker_bin: None,
            provider_db: None,
        };
        let report = bench(&args, &target, &tag).await?;
        save(&report, &args.out)?;
        return Ok(());
    }

    let a = Side::a(&args, &tag)?;
    let b = args.has_b_side().then(|| Side::b(&args, &a)).transpose()?;
    if b.is_some() {
        eprintln!("A/B: the bench runs on platform A, then on platform B");
    }
    let report_a = own_platform(&args, &a, &tag).await?;
    let Some(b) = b else {
        save(&report_a, &args.out)?;
        return Ok(());
    };
    println!("A: {}", a.describe());
    save(&report_a, &args.out)?;
    let report_b = own_platform(&args, &b, &tag).await?;
    println!("\nB: {}", b.describe());
    save(&report_b, &args.out)?;
    println!("\nA against B:");
    print!("{}", report::compare(&report_a, &report_b));
    Ok(())
}

impl RunArgs {
    fn has_b_side(&self) -> bool {
        !self.b_settings.is_empty() || self.b_tansu_bin.is_some() || self.b_bin_dir.is_some()
    }
}

/// One platform the bench starts for itself: A as the flags give it, B
/// with the `--b-…` flags on top.
struct Side {
    settings: Vec<(String, String)>,
    tansu: PathBuf,
    bin_dir: PathBuf,
    db_prefix: String,
}

impl Side {
    fn a(args: &RunArgs, tag: &str) -> anyhow::Result<Self> {
        Ok(Self {
            settings: args.settings.clone(),
            tansu: args.installation.tansu(),
            bin_dir: args.installation.bin_dir()?,
            db_prefix: args
                .db_prefix
                .clone()
                .unwrap_or_else(|| format!("choreo_benchrun_{tag}_")),
        })
    }

    fn b(args: &RunArgs, a: &Self) -> anyhow::Result<Self> {
        let mut settings = a.settings.clone();
        for (name, value) in &args.b_settings {
            // B's value replaces A's for the same name.
            settings.retain(|(n, _)| n != name);
            settings.push((name.clone(), value.clone()));
        }
        let b = Self {
            settings,
            tansu: args.b_tansu_bin.clone().unwrap_or_else(|| a.tansu.clone()),
            bin_dir: args.b_bin_dir.clone().unwrap_or_else(|| a.bin_dir.clone()),
            // A's databases may be kept (`--keep`): B's have names of their own.
            db_prefix: format!("{}b_", a.db_prefix),
        };
        anyhow::ensure!(
            b.settings != a.settings || b.tansu != a.tansu || b.bin_dir != a.bin_dir,
            "the B side (--b-set, --b-tansu-bin, --b-bin-dir) is the same as A"
        );
        Ok(b)
    }

    fn describe(&self) -> String {
        let settings: Vec<String> = self
            .settings
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        format!(
            "broker {}, services from {}, settings: {}",
            self.tansu.display(),
            self.bin_dir.display(),
            if settings.is_empty() {
                "none".to_owned()
            } else {
                settings.join(" ")
            }
        )
    }
}

/// Starts a platform of its own, as `choreo up` starts one, runs the bench
/// on it and stops it.
async fn own_platform(args: &RunArgs, side: &Side, tag: &str) -> anyhow::Result<BenchReport> {
    let data_dir = std::env::temp_dir().join(format!(
        "choreo-bench-{tag}-{}",
        uuid::Uuid::new_v4().simple().to_string()[..4].to_owned()
    ));
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let spans = if args.profile_seconds > 0.0 {
        Some(choreo_telemetry::collector::OtlpReceiver::start().await?)
    } else {
        None
    };
    let replicas = up::replicas::Replicas::from_pairs(args.replicas.iter().copied());
    let mut env = up::unlimited_edge();
    env.extend(
        side.settings
            .iter()
            .map(|(name, value)| ("*", name.clone(), value.clone())),
    );
    if let Some(receiver) = &spans {
        env.extend(
            [
                ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()),
                // The spans of the traced loop arrive soon after it and
                // none is dropped for want of room in the export queue.
                ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "262144".to_owned()),
            ]
            .map(|(k, v)| ("*", k.to_owned(), v)),
        );
    }
    let config = up::Config {
        data_dir: data_dir.clone(),
        pg_admin_url: args.installation.pg_admin_url.clone(),
        tansu: side.tansu.clone(),
        bin_dir: side.bin_dir.clone(),
        broker_port: up::free_port()?,
        broker_proxy: None,
        edge_port: up::free_port_block(7 + replicas.extra() as u16),
        db_prefix: side.db_prefix.clone(),
        topic_prefix: String::new(),
        partitions: args.partitions,
        token_secret: secret.clone(),
        internal_auth: choreo_kit::internal_auth::generate(),
        env,
        replicas,
    };
    eprintln!("starting a platform of its own in {}", data_dir.display());
    let mut running = Vec::new();
    let result = async {
        let endpoints = up::start(&config, &mut running).await?;
        let target = Target {
            edge: endpoints.edge.clone(),
            secret,
            kafka: choreo_messaging::KafkaSettings {
                bootstrap_servers: endpoints.bootstrap.clone(),
                partitions: args.partitions,
                ..Default::default()
            },
            pg_admin_url: args.installation.pg_admin_url.clone(),
            own: true,
            partitions: Some(args.partitions),
            run_dir: Some(data_dir.join("run")),
            spans,
            // The replicas are recorded with the settings they ran under.
            settings: side
                .settings
                .iter()
                .cloned()
                .chain(
                    args.replicas
                        .iter()
                        .map(|(service, n)| ("--replicas".to_owned(), format!("{service}={n}"))),
                )
                .collect(),
            broker_bin: Some(side.tansu.display().to_string()),
            provider_db: Some(choreo_platform::setup::database_url(
                &args.installation.pg_admin_url,
                &format!("{}provider", side.db_prefix),
            )),
        };
        bench(args, &target, tag).await
    }
    .await;
    up::stop(running).await;
    if args.keep {
        eprintln!(
            "kept: {} and databases {}*",
            data_dir.display(),
            side.db_prefix
        );
    } else {
        let names: Vec<String> = up::DATABASES
            .iter()
            .map(|s| format!("{}{s}", side.db_prefix))
            .collect();
        if let Err(e) =
            choreo_platform::setup::drop_databases(&args.installation.pg_admin_url, &names).await
        {
            tracing::warn!(error = %e, "dropping the bench platform's databases");
        }
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    result
}

/// Prints a run's table and writes its results file.
fn save(report: &BenchReport, out: &std::path::Path) -> anyhow::Result<()> {
    print!("{}", report.text());
    let file = out.join(format!(
        "{}-{}.json",
        report.started_at.replace([':', '-'], ""),
        report.git_commit
    ));
    std::fs::write(&file, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", file.display()))?;
    println!("results: {}", file.display());
    Ok(())
}

/// The phases, the ceilings and the report, against `target`.
async fn bench(args: &RunArgs, target: &Target, tag: &str) -> anyhow::Result<BenchReport> {
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    eprintln!("seeding {} customers and products", args.clients);
    let shop = Arc::new(Shop::open(&target.edge, &target.secret, args.clients, tag).await?);
    eprintln!("warming up: one saga per client");
    shop.warm_up().await.context("the warm-up")?;

    let duration = Duration::from_secs_f64(args.seconds);
    let drain = Duration::from_secs_f64(args.drain_seconds);
    let idle = if args.idle_seconds > 0.0 {
        Some(
            idle(
                &shop,
                target,
                Duration::from_secs_f64(args.idle_seconds),
                drain,
            )
            .await?,
        )
    } else {
        None
    };
    let closed = phase(
        &shop,
        target,
        "closed",
        Load::Closed {
            clients: args.clients,
        },
        duration,
        drain,
    )
    .await?;
    let search = match args.rate {
        None if args.search_seconds > 0.0 => {
            Some(search(&shop, target, args, closed.sagas_per_second, drain).await?)
        }
        _ => None,
    };
    let rate = args.rate.unwrap_or_else(|| {
        search::half_rate(
            search
                .as_ref()
                .and_then(|s| s.highest_sustained)
                .unwrap_or(closed.sagas_per_second),
        )
    });
    let open = phase(&shop, target, "open", Load::Open { rate }, duration, drain).await?;
    let profile = match &target.spans {
        Some(spans) => Some(
            profile_sagas(&shop, spans, args, drain)
                .await
                .context("the profile")?,
        ),
        None => None,
    };

    let message_bytes = closed.message_bytes.or(open.message_bytes).unwrap_or(512);
    eprintln!(
        "measuring the ceilings: {} connections committing, {} messages of {message_bytes} bytes",
        args.clients, args.ceiling_messages
    );
    let commit = ceilings::commit_rate(
        &target.pg_admin_url,
        args.clients,
        Duration::from_secs_f64(args.ceiling_seconds),
    )
    .await
    .context("the commit ceiling")?;
    let broker = ceilings::broker_rate(&target.kafka, args.ceiling_messages, message_bytes)
        .await
        .context("the broker ceiling")?;
    let ceilings = Ceilings { commit, broker };
    let ratios = report::Ratios::new(&closed, &ceilings);
    let goals = report::goals(
        &closed,
        Some(&open),
        &ratios,
        search.as_ref(),
        idle.as_ref(),
    );
    Ok(BenchReport {
        format: report::FORMAT,
        started_at,
        git_commit: report::git_commit(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into(),
        machine: report::Machine::this(),
        platform: report::Platform {
            edge: target.edge.clone(),
            own: target.own,
            partitions: target.partitions,
            settings: target
                .settings
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect(),
            broker_bin: target.broker_bin.clone(),
        },
        idle,
        phases: vec![closed, open],
        search,
        ceilings,
        ratios,
        goals,
        profile,
    })
}

/// The maximum-throughput search, from half the closed loop's rate.
async fn search(
    shop: &Arc<Shop>,
    target: &Target,
    args: &RunArgs,
    closed_rate: f64,
    drain: Duration,
) -> anyhow::Result<search::Search> {
    let plan = search::Plan {
        start: search::half_rate(closed_rate),
        p99_limit_ms: args.search_p99_ms,
        steps: args.search_steps,
    };
    let seconds = Duration::from_secs_f64(args.search_seconds);
    let mut searcher = search::Searcher::default();
    let mut steps = Vec::new();
    while let Some(rate) = searcher.next(&plan) {
        // Each step's orders have idempotency keys of their own: with the
        // same keys the edge would answer with the last step's orders.
        let name = format!("search-{}", steps.len() + 1);
        let phase = phase(shop, target, &name, Load::Open { rate }, seconds, drain).await?;
        let step = search::SearchStep::judge(&phase, plan.p99_limit_ms);
        eprintln!(
            "  search: {rate:.1} orders/s: {}",
            step.why.as_deref().unwrap_or("sustained")
        );
        searcher.record(&step);
        steps.push(step);
    }
    Ok(search::Search {
        seconds_per_step: args.search_seconds,
        p99_limit_ms: plan.p99_limit_ms,
        steps,
        highest_sustained: searcher.highest_sustained(),
    })
}

/// The traced closed loop, and the stages of its sagas once their spans
/// have all come in.
async fn profile_sagas(
    shop: &Arc<Shop>,
    spans: &choreo_telemetry::collector::OtlpReceiver,
    args: &RunArgs,
    drain: Duration,
) -> anyhow::Result<profile::Profile> {
    let load = Load::Closed {
        clients: args.clients,
    };
    let duration = Duration::from_secs_f64(args.profile_seconds);
    shop.wait_published(drain).await?;
    let counters = Arc::new(Counters::default());
    let progress = Progress::start("profile", load, duration, counters.clone());
    let run = load::run_phase(shop, "profile", load, duration, drain, true, &counters).await;
    progress.finish();
    let run = run?;
    shop.wait_published(drain).await?;
    // The exporters send every 200 ms: the spans are in once their count
    // has stood still for a while.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = (spans.len(), tokio::time::Instant::now());
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = spans.len();
        if now != last.0 {
            last = (now, tokio::time::Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs(2) {
            break;
        }
    }
    let traces = run.ended().map(|o| o.trace_id.clone()).collect();
    Ok(profile::profile(&spans.spans(), &traces))
}

/// The platform's processor use while it has nothing to do: no orders, the
/// warm-up's sagas run out. What an idle platform costs is what its
/// consumers' empty fetches, heartbeats and pollers cost.
async fn idle(
    shop: &Arc<Shop>,
    target: &Target,
    window: Duration,
    drain: Duration,
) -> anyhow::Result<report::Idle> {
    shop.wait_published(drain).await?;
    eprintln!("measuring the idle platform for {window:?}");
    let before = cpu::sample(target.run_dir.as_deref());
    // A measurement window, not a wait for a condition.
    tokio::time::sleep(window).await;
    let after = cpu::sample(target.run_dir.as_deref());
    Ok(report::Idle {
        seconds: window.as_secs_f64(),
        cpu: cpu::used(&before, &after, 0),
    })
}

/// One phase, counted by the bench and by the platform's parts.
async fn phase(
    shop: &Arc<Shop>,
    target: &Target,
    name: &str,
    load: Load,
    duration: Duration,
    drain: Duration,
) -> anyhow::Result<PhaseReport> {
    let topics = target.kafka.topics().all();
    shop.wait_published(drain).await?;
    let xid_before = measure::next_xid(&target.pg_admin_url).await?;
    let charges_before = provider_charges(target).await?;
    let ends_before = measure::ends(&target.kafka, topics.clone()).await?;
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(name, load, duration, counters.clone());
    let cpu_before = cpu::sample(target.run_dir.as_deref());
    let run = load::run_phase(shop, name, load, duration, drain, false, &counters).await;
    let cpu_after = cpu::sample(target.run_dir.as_deref());
    progress.finish();
    let run = run?;
    shop.wait_published(drain).await?;
    let xid_after = measure::next_xid(&target.pg_admin_url).await?;
    let charges_after = provider_charges(target).await?;
    let ends_after = measure::ends(&target.kafka, topics).await?;
    let counted = Counted {
        transactions: xid_after - xid_before,
        provider_transactions: charges_after.zip(charges_before).map(|(a, b)| a - b),
        messages: measure::written(&ends_before, &ends_after),
        message_bytes: measure::mean_message_bytes(&target.kafka, &ends_before, &ends_after, 32)
            .await?,
        cpu: cpu::used(&cpu_before, &cpu_after, run.ended().count()),
    };
    Ok(PhaseReport::new(&run, &counted))
}

/// The charges in the provider stand-in's ledger, when the bench knows its
/// database.
async fn provider_charges(target: &Target) -> anyhow::Result<Option<i64>> {
    match &target.provider_db {
        Some(url) => Ok(Some(measure::provider_charges(url).await?)),
        None => Ok(None),
    }
}

/// The live display of a phase, on stderr when it is a terminal: time,
/// orders placed and ended, and the rate so far.
struct Progress {
    bar: indicatif::ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(name: &str, load: Load, duration: Duration, counters: Arc<Counters>) -> Self {
        let bar = indicatif::ProgressBar::new(duration.as_secs());
        bar.set_style(
            indicatif::ProgressStyle::with_template("  {prefix:28} [{bar:24}] {elapsed:>4}  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(match load {
            Load::Closed { clients } => format!("{name}: {clients} clients"),
            Load::Open { rate } => format!("{name}: {rate:.0} orders/s"),
        });
        let ticker = {
            let bar = bar.clone();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tick.tick().await;
                    let elapsed = started.elapsed().as_secs_f64();
                    let ended = counters.ended.load(std::sync::atomic::Ordering::Relaxed);
                    bar.set_position(elapsed as u64);
                    bar.set_message(format!(
                        "placed {}  ended {ended}  {:.0} sagas/s",
                        counters.placed.load(std::sync::atomic::Ordering::Relaxed),
                        ended as f64 / elapsed.max(0.001)
                    ));
                }
            })
        };
        Self { bar, ticker }
    }

    fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}
