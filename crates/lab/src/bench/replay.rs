//! `choreo bench replay`: how fast a service recovers from a lost database.
//!
//! On a platform of its own, inventory's input is filled with the events
//! of generated orders: an `OrderPlaced` each, then its `OrderConfirmed`
//! (or, for one in ten, an `OrderCancelled`), keyed and headed as the
//! order service's relay sends them. Inventory is held meanwhile, as is
//! every saga service, so nothing reacts to them. Then, as an operator
//! would after losing the database: the database is dropped and made
//! again, empty, and `choreo-inventory replay --from-beginning` re-reads
//! its own topic (the catalog) and the input, applying every event. Then
//! the same replay again, over the database it rebuilt: every event is
//! skipped as applied.
//!
//! Each replay is counted by what it says (events re-read, applied,
//! skipped), by the clock (the whole command, start-up and planning
//! included), by the processor time of the replay process (its rusage)
//! and of PostgreSQL's backends (sampled from `/proc`), and by the
//! database's own counter of committed transactions
//! (`pg_stat_database.xact_commit`).
//!
//! With `--b-bin-dir`, the same two replays run again with another build's
//! service binary, on the same events and a database made empty again:
//! an A/B in one run.

use super::{cpu, report};
use anyhow::Context;
use choreo_events::{
    Event, EventMeta, OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, RegistryClient,
    ShippingAddress, cancel_reason, encode_datum, frame, subject,
};
use choreo_messaging::{KafkaSettings, headers::event_headers, producer::Acknowledged};
use choreo_platform::{client, setup, supervisor, up};
use rdkafka::{
    error::{KafkaError, RDKafkaErrorCode},
    producer::FutureRecord,
};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};
use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};
use uuid::Uuid;

/// The service whose recovery is measured: its input holds only the order
/// service's events, which the bench can write as that service would.
const SERVICE: &str = "inventory";

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayBenchArgs {
    /// Orders whose events fill inventory's input: two events each.
    #[arg(long, default_value_t = 50_000)]
    orders: u64,
    /// Partitions of the platform's topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Products in the catalog the orders are spread over.
    #[arg(long, default_value_t = 50)]
    products: usize,
    #[command(flatten)]
    installation: up::Installation,
    /// The B side of an A/B in one run: the same replays with the service
    /// binary from this folder, on the same events.
    #[arg(long)]
    b_bin_dir: Option<PathBuf>,
    /// Where the results file goes.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

/// What `choreo bench replay` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplayReport {
    pub format: String,
    pub started_at: String,
    pub git_commit: String,
    pub machine: report::Machine,
    pub service: String,
    pub orders: u64,
    pub partitions: i32,
    /// Events on the service's input topic.
    pub input_events: u64,
    /// Events on its own topic (the catalog), read first.
    pub own_events: u64,
    /// How long the generated events took to publish.
    pub publish_seconds: f64,
    pub sides: Vec<Side>,
}

/// The results file's format, for `compare`-like readers.
const FORMAT: &str = "choreo-bench-replay/1";

/// One build's replays.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Side {
    pub bin_dir: String,
    /// Into the empty database: every event applied.
    pub restore: Replay,
    /// Again, into the database the first rebuilt: every event skipped.
    pub again: Replay,
}

/// One replay, measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Replay {
    /// The whole command, from start to exit.
    pub seconds: f64,
    pub reread: u64,
    pub applied: u64,
    /// Skipped as applied before, and records the service ignores.
    pub skipped: u64,
    pub dead_lettered: u64,
    /// Events re-read per second of the whole command.
    pub events_per_second: f64,
    /// The replay process's processor time per event re-read.
    pub replay_cpu_us_per_event: f64,
    /// PostgreSQL's backends' processor time per event re-read (sampled
    /// every 100 ms: a backend's last slice before it exits is missed).
    pub postgres_cpu_us_per_event: f64,
    /// The database's committed transactions per event re-read.
    pub commits_per_event: f64,
}

pub(crate) async fn run(args: ReplayBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.orders > 0, "--orders must be at least 1");
    anyhow::ensure!(args.partitions > 0, "--partitions must be at least 1");
    anyhow::ensure!(args.products > 0, "--products must be at least 1");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let tag = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let data_dir = std::env::temp_dir().join(format!("choreo-bench-replay-{tag}"));
    let db_prefix = format!("choreo_benchreplay_{tag}_");
    let internal_auth = choreo_kit::internal_auth::generate();
    let secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let config = up::Config {
        data_dir: data_dir.clone(),
        pg_admin_url: args.installation.pg_admin_url.clone(),
        tansu: args.installation.tansu(),
        bin_dir: args.installation.bin_dir()?,
        broker_port: up::free_port()?,
        broker_proxy: None,
        edge_port: up::free_port_block(7),
        db_prefix: db_prefix.clone(),
        topic_prefix: String::new(),
        partitions: args.partitions,
        token_secret: secret,
        internal_auth,
        env: up::unlimited_edge(),
        replicas: up::replicas::Replicas::default(),
    };
    eprintln!("starting a platform of its own in {}", data_dir.display());
    let mut running = Vec::new();
    let result = async {
        let endpoints = up::start(&config, &mut running).await?;
        measure(&args, &config, &endpoints).await
    }
    .await;
    up::stop(running).await;
    let names: Vec<String> = up::DATABASES
        .iter()
        .map(|s| format!("{db_prefix}{s}"))
        .collect();
    if let Err(e) = setup::drop_databases(&args.installation.pg_admin_url, &names).await {
        tracing::warn!(error = %e, "dropping the bench platform's databases");
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    let report = result?;
    print!("{}", report.text());
    let file = args.out.join(format!(
        "replay-{}-{}.json",
        report.started_at.replace([':', '-'], ""),
        report.git_commit
    ));
    std::fs::write(&file, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", file.display()))?;
    println!("results: {}", file.display());
    Ok(())
}

async fn measure(
    args: &ReplayBenchArgs,
    config: &up::Config,
    endpoints: &up::Endpoints,
) -> anyhow::Result<ReplayReport> {
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let database = format!("{}{SERVICE}", config.db_prefix);
    let database_url = setup::database_url(&config.pg_admin_url, &database);

    eprintln!("setting {} products", args.products);
    let admin = client::bearer(&choreo_kit::customer_token::hs256_token(
        &config.token_secret,
        "bench-replay-operator",
        true,
        86_400,
    )?)?;
    let skus: Vec<String> = (0..args.products)
        .map(|i| format!("REPLAY-{i:03}"))
        .collect();
    for sku in &skus {
        client::put_product(
            &admin,
            &endpoints.edge,
            sku,
            "Replay bench item",
            100,
            1_000_000_000,
        )
        .await?;
    }
    // The catalog is on inventory's own topic before the service is held.
    wait_for(
        "inventory to publish the catalog",
        Duration::from_secs(60),
        || async {
            let mut conn = PgConnection::connect(&database_url).await.ok()?;
            let unpublished: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(&mut conn)
                    .await
                    .ok()?;
            (unpublished == 0).then_some(())
        },
    )
    .await?;
    hold_saga_services(&config.data_dir).await?;

    let kafka = KafkaSettings {
        bootstrap_servers: endpoints.bootstrap.clone(),
        partitions: args.partitions,
        ..Default::default()
    };
    eprintln!(
        "publishing {} orders' events to inventory's input",
        args.orders
    );
    let published = Instant::now();
    let input_events = publish_orders(
        &kafka,
        &RegistryClient::new(&endpoints.registry, endpoints.operator.clone()),
        &skus,
        args.orders,
    )
    .await?;
    let publish_seconds = published.elapsed().as_secs_f64();
    eprintln!("published {input_events} events in {publish_seconds:.1} s");

    let env = endpoints
        .saga
        .spec(SERVICE, 0, up::free_port()?)
        .env
        .into_iter()
        .collect::<Vec<_>>();
    let mut bin_dirs = vec![config.bin_dir.clone()];
    bin_dirs.extend(args.b_bin_dir.clone());
    let mut sides = Vec::new();
    let mut own_events = 0;
    for bin_dir in bin_dirs {
        let replay = Replayer {
            binary: bin_dir.join(format!("choreo-{SERVICE}")),
            env: &env,
            data_dir: &config.data_dir,
            database: &database,
            pg_admin_url: &config.pg_admin_url,
        };
        // The incident: the database is lost; the service starts on an
        // empty one, which its migrations set up.
        setup::drop_databases(&config.pg_admin_url, std::slice::from_ref(&database)).await?;
        setup::create_databases(&config.pg_admin_url, std::slice::from_ref(&database)).await?;
        eprintln!(
            "replaying into an empty database with {}",
            replay.binary.display()
        );
        let (restore, own) = replay
            .run()
            .await
            .context("the replay into an empty database")?;
        own_events = own;
        anyhow::ensure!(
            restore.applied + restore.skipped + restore.dead_lettered == restore.reread,
            "the replay did not account for every event: {restore:?}"
        );
        eprintln!("replaying again over the rebuilt database");
        let (again, _) = replay.run().await.context("the second replay")?;
        anyhow::ensure!(
            again.applied == 0,
            "the second replay applied {} events again",
            again.applied
        );
        sides.push(Side {
            bin_dir: bin_dir.display().to_string(),
            restore,
            again,
        });
    }
    Ok(ReplayReport {
        format: FORMAT.to_owned(),
        started_at,
        git_commit: report::git_commit(),
        machine: report::Machine::this(),
        service: SERVICE.to_owned(),
        orders: args.orders,
        partitions: args.partitions,
        input_events,
        own_events,
        publish_seconds,
        sides,
    })
}

/// Waits until `check` answers, trying every 100 ms for at most `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "gave up waiting for {what} after {} s",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Holds every saga service (the supervisor stops them and keeps them
/// stopped), so that nothing reacts to the generated events.
async fn hold_saga_services(data_dir: &Path) -> anyhow::Result<()> {
    let run = data_dir.join("run");
    for service in choreo_events::SAGA_SERVICES {
        std::fs::write(
            supervisor::hold_file(&run, service),
            "held by choreo bench replay\n",
        )?;
    }
    wait_for(
        "the saga services to stop",
        Duration::from_secs(60),
        || async {
            choreo_events::SAGA_SERVICES
                .iter()
                .all(|s| supervisor::replica_pid_files(&run, s).is_empty())
                .then_some(())
        },
    )
    .await
}

/// Publishes `orders` orders' events to the order topic, as the order
/// service's relay would (keyed by order, with the event id, type and an
/// outbox id in the headers); the number of events.
async fn publish_orders(
    kafka: &KafkaSettings,
    registry: &RegistryClient,
    skus: &[String],
    orders: u64,
) -> anyhow::Result<u64> {
    let topic = kafka.topics().name(OrderPlaced::TOPIC);
    let mut schema_ids = HashMap::new();
    for (name, text) in [
        (OrderPlaced::full_name(), OrderPlaced::schema_text()),
        (OrderConfirmed::full_name(), OrderConfirmed::schema_text()),
        (OrderCancelled::full_name(), OrderCancelled::schema_text()),
    ] {
        let id = registry.register(&subject(&topic, &name), text).await?;
        schema_ids.insert(name, id);
    }
    let producer = choreo_messaging::producer::idempotent(kafka)?;
    let mut waiting: VecDeque<Acknowledged> = VecDeque::new();
    let mut outbox_id = 0i64;
    for i in 0..orders {
        let order_id = Uuid::new_v4();
        let placed = OrderPlaced {
            meta: EventMeta::first::<OrderPlaced>(order_id, "order"),
            order_id,
            customer_id: format!("replay-customer-{}", i % 1000),
            lines: vec![OrderLine {
                sku: skus[(i as usize) % skus.len()].clone(),
                quantity: 1,
            }],
            shipping_address: ShippingAddress {
                name: "Replay Bench".into(),
                line1: "1 Queue Street".into(),
                line2: None,
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            },
            idempotency_key: None,
        };
        let ended = if i % 10 == 9 {
            encoded(
                &schema_ids,
                &OrderCancelled {
                    meta: EventMeta::caused_by::<OrderCancelled>(&placed.meta, "order"),
                    order_id,
                    reason: cancel_reason::PAYMENT_DECLINED.into(),
                    detail: "declined by the replay bench".into(),
                },
            )?
        } else {
            encoded(
                &schema_ids,
                &OrderConfirmed {
                    meta: EventMeta::caused_by::<OrderConfirmed>(&placed.meta, "order"),
                    order_id,
                    total_cents: 100,
                    currency: "EUR".into(),
                },
            )?
        };
        let key = order_id.to_string();
        for (event_id, event_type, value) in [encoded(&schema_ids, &placed)?, ended] {
            outbox_id += 1;
            let headers = event_headers(event_id, event_type, outbox_id);
            loop {
                let record = FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&value)
                    .headers(headers.clone());
                match producer.enqueue(record) {
                    Ok(ack) => {
                        waiting.push_back(ack);
                        break;
                    }
                    // librdkafka's queue is full: wait for the oldest half.
                    Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                        for _ in 0..waiting.len().div_ceil(2) {
                            if let Some(ack) = waiting.pop_front() {
                                ack.await.context("publishing a generated event")?;
                            }
                        }
                    }
                    Err(e) => return Err(e).context("publishing a generated event"),
                }
            }
        }
    }
    for ack in waiting {
        ack.await.context("publishing a generated event")?;
    }
    Ok(outbox_id.unsigned_abs())
}

/// `event` framed for the order topic: its id, its type and the bytes.
fn encoded<E: Event>(
    schema_ids: &HashMap<String, u32>,
    event: &E,
) -> anyhow::Result<(Uuid, &'static str, Vec<u8>)> {
    let id = schema_ids
        .get(&E::full_name())
        .context("a schema id for every generated record")?;
    Ok((
        event.meta().event_id,
        E::NAME,
        frame(*id, &encode_datum(event)?),
    ))
}

/// Runs the service binary's replay as an operator would, and measures it.
struct Replayer<'a> {
    binary: PathBuf,
    env: &'a [(String, String)],
    data_dir: &'a Path,
    database: &'a str,
    pg_admin_url: &'a str,
}

impl Replayer<'_> {
    /// The replay, measured, and the events of the service's own topic it
    /// re-read.
    async fn run(&self) -> anyhow::Result<(Replay, u64)> {
        let commits_before = self.commits().await?;
        let cpu_before = children_cpu_seconds();
        let postgres = PostgresCpu::start();
        let started = Instant::now();
        // Its progress on the bench's stderr, its summary captured.
        let out = tokio::process::Command::new(&self.binary)
            .args(["replay", "--from-beginning", "--json", "--data-dir"])
            .arg(self.data_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .with_context(|| format!("running {}", self.binary.display()))?
            .wait_with_output()
            .await
            .with_context(|| format!("running {}", self.binary.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        let replay_cpu = children_cpu_seconds() - cpu_before;
        anyhow::ensure!(
            out.status.success(),
            "{} replay failed: {}",
            self.binary.display(),
            out.status
        );
        // The replay's connections close as it exits; their backends
        // report their counts as they end.
        self.wait_for_backends().await?;
        let postgres_cpu = postgres.stop().await;
        let commits = self.commits().await? - commits_before;
        let summary: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("the replay's JSON summary")?;
        anyhow::ensure!(summary["interrupted"] == false, "interrupted: {summary}");
        let (mut own, mut reread, mut applied, mut skipped, mut dead) = (0, 0, 0, 0, 0);
        for p in summary["partitions"].as_array().into_iter().flatten() {
            let count = |field: &str| p["tally"][field].as_u64().unwrap_or(0);
            if p["phase"] == "own" {
                own += count("reread");
                continue;
            }
            reread += count("reread");
            applied += count("applied");
            skipped += count("duplicates") + count("ignored");
            dead += count("dead_lettered");
        }
        let per_event = |total: f64| {
            if reread == 0 {
                0.0
            } else {
                total / reread as f64
            }
        };
        Ok((
            Replay {
                seconds,
                reread,
                applied,
                skipped,
                dead_lettered: dead,
                events_per_second: reread as f64 / seconds.max(1e-9),
                replay_cpu_us_per_event: per_event(replay_cpu * 1e6),
                postgres_cpu_us_per_event: per_event(postgres_cpu * 1e6),
                commits_per_event: per_event(commits as f64),
            },
            own,
        ))
    }

    async fn commits(&self) -> anyhow::Result<i64> {
        let mut conn = PgConnection::connect(self.pg_admin_url).await?;
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut conn)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
                .bind(self.database)
                .fetch_one(&mut conn)
                .await?,
        )
    }

    /// Until no backend serves the database any more.
    async fn wait_for_backends(&self) -> anyhow::Result<()> {
        wait_for(
            "the replay's connections to close",
            Duration::from_secs(30),
            || async {
                let mut conn = PgConnection::connect(self.pg_admin_url).await.ok()?;
                let left: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                        .bind(self.database)
                        .fetch_one(&mut conn)
                        .await
                        .ok()?;
                (left == 0).then_some(())
            },
        )
        .await
    }
}

/// The processor time of this process's ended children, in seconds.
fn children_cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

/// PostgreSQL's processor time, sampled from `/proc` every 100 ms per
/// backend, so that backends that start and end during a replay count.
struct PostgresCpu {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<f64>,
}

impl PostgresCpu {
    fn start() -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let first = cpu::postgres_ticks();
            let mut last = first.clone();
            loop {
                for (pid, ticks) in cpu::postgres_ticks() {
                    last.insert(pid, ticks);
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            let ticks: u64 = last
                .iter()
                .map(|(pid, end)| end.saturating_sub(first.get(pid).copied().unwrap_or(0)))
                .sum();
            ticks as f64 / cpu::TICKS_PER_SECOND
        });
        Self { stop, task }
    }

    async fn stop(self) -> f64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0.0)
    }
}

impl ReplayReport {
    /// The table a run prints.
    pub(crate) fn text(&self) -> String {
        let mut out = format!(
            "\nreplay into {}: {} input events ({} orders) on {} partitions, {} on its own topic; \
             published in {:.1} s\ncommit {}, {} cores, {}\n",
            self.service,
            self.input_events,
            self.orders,
            self.partitions,
            self.own_events,
            self.publish_seconds,
            self.git_commit,
            self.machine.cores,
            self.machine.cpu
        );
        out += &format!(
            "{:<44} {:>8} {:>9} {:>9} {:>9} {:>10} {:>12} {:>12} {:>10}\n",
            "REPLAY",
            "SECONDS",
            "RE-READ",
            "APPLIED",
            "SKIPPED",
            "EVENTS/S",
            "REPLAY-CPU",
            "PG-CPU",
            "COMMITS"
        );
        for side in &self.sides {
            for (what, r) in [
                ("into an empty database", &side.restore),
                ("again (all applied before)", &side.again),
            ] {
                out += &format!(
                    "{:<44} {:>8.1} {:>9} {:>9} {:>9} {:>10.0} {:>9.0} us {:>9.0} us {:>10.3}\n",
                    what,
                    r.seconds,
                    r.reread,
                    r.applied,
                    r.skipped,
                    r.events_per_second,
                    r.replay_cpu_us_per_event,
                    r.postgres_cpu_us_per_event,
                    r.commits_per_event
                );
            }
            out += &format!("  (service binary: {})\n", side.bin_dir);
        }
        out += "REPLAY-CPU and PG-CPU are processor time per event re-read; COMMITS, the database's committed transactions per event\n";
        out
    }
}
