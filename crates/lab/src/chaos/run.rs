//! Runs one suite: its own platform, its load, its faults, its verdict.

use super::{
    broker_proxy::BrokerProxy,
    db_proxy::DbProxy,
    faults::{Target, inject},
    persist::persist,
    report::{FaultEvent, OrderVerdict, SuiteReport},
    suite::{FaultKind, Suite},
};
use anyhow::Context;
use choreo_kit::internal_auth::{self, Signer};
use choreo_platform::{
    client,
    supervisor::Supervised,
    up::{self, Config, replicas::Pool},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::Value;
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::{sync::watch, task::JoinSet, time::Instant};

/// A SKU the runner adds with no stock, for orders meant to find none.
const EMPTY_SKU: &str = "CHAOS-EMPTY";
/// A customer the runner adds with an empty wallet.
const BROKE: &str = "chaos-broke";
/// A country no shipping route serves.
const UNSERVED_COUNTRY: &str = "AQ";
/// How long payment waits for its provider in a chaos run: short, so that
/// a provider timeout fault costs seconds, not minutes.
const PROVIDER_TIMEOUT_MS: u64 = 1_000;

/// What an order is meant to end as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Succeed,
    OutOfStock,
    PaymentDeclined,
    Unshippable,
    /// Cancelled by its customer right after placing: CANCELLED, or
    /// CONFIRMED when the saga won the race.
    Cancelled,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Succeed => "succeed",
            Kind::OutOfStock => "out_of_stock",
            Kind::PaymentDeclined => "payment_declined",
            Kind::Unshippable => "unshippable",
            Kind::Cancelled => "cancelled",
        }
    }

    /// Whether an order of this kind may end as `status` with `reason`;
    /// an order the provider declined may also end PAYMENT_DECLINED.
    fn allows(self, status: &str, reason: Option<&str>, declined: bool) -> bool {
        if declined && status == "CANCELLED" && reason == Some("PAYMENT_DECLINED") {
            return true;
        }
        match self {
            Kind::Succeed => status == "CONFIRMED",
            Kind::OutOfStock => status == "CANCELLED" && reason == Some("OUT_OF_STOCK"),
            Kind::PaymentDeclined => status == "CANCELLED" && reason == Some("PAYMENT_DECLINED"),
            Kind::Unshippable => status == "CANCELLED" && reason == Some("SHIPPING_UNAVAILABLE"),
            Kind::Cancelled => {
                status == "CONFIRMED"
                    || (status == "CANCELLED" && reason == Some("CUSTOMER_CANCELLED"))
            }
        }
    }
}

/// Where a run keeps its platform's files and how it names its databases.
pub(crate) struct Workspace {
    pub data_dir: PathBuf,
    pub db_prefix: String,
    pub pg_admin_url: String,
    pub tansu: PathBuf,
    pub bin_dir: PathBuf,
    /// Fail points every saga service arms at start-up (`point=actions;…`):
    /// how `--mutant` plants a bug in every incarnation of every service.
    pub fail_points: Option<String>,
}

/// Runs `suite` on a platform of its own and judges it.
pub(crate) async fn run(suite: &Suite, workspace: &Workspace) -> anyhow::Result<SuiteReport> {
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    // Every port the run binds, in one block below the kernel's ephemeral
    // range, so that no outgoing connection takes one while it is free
    // (the broker killed and restarted on its port, a database proxy's port
    // closed by a cut and bound again by the restore; "listening on
    // 127.0.0.1:46171 for order: Address already in use" ended the goal
    // suite with seed 28) and no two are handed out twice: the services'
    // (the edge's first), the broker's, one per database proxy.
    let services = 7 + suite.platform.replicas().extra() as u16;
    let ports = up::free_port_block(services + 1 + choreo_events::SAGA_SERVICES.len() as u16);
    let mut config = Config {
        data_dir: workspace.data_dir.clone(),
        pg_admin_url: workspace.pg_admin_url.clone(),
        tansu: workspace.tansu.clone(),
        bin_dir: workspace.bin_dir.clone(),
        broker_port: ports + services,
        broker_proxy: None,
        edge_port: ports,
        db_prefix: workspace.db_prefix.clone(),
        topic_prefix: String::new(),
        partitions: suite.platform.partitions,
        token_secret: secret.clone(),
        internal_auth: choreo_kit::internal_auth::generate(),
        env: up::unlimited_edge()
            .into_iter()
            .chain([
                (
                    "order",
                    "CHOREO_SAGA_DEADLINE_SECONDS".into(),
                    suite.platform.saga_deadline_seconds.to_string(),
                ),
                (
                    "payment",
                    "CHOREO_PROVIDER__TIMEOUT_MS".into(),
                    PROVIDER_TIMEOUT_MS.to_string(),
                ),
            ])
            .collect(),
        replicas: suite.platform.replicas(),
    };
    if let Some(points) = &workspace.fail_points {
        for service in choreo_events::SAGA_SERVICES {
            config
                .env
                .push((service, "CHOREO_FAIL_POINTS".into(), points.clone()));
        }
    }
    // A fault proxy in front of the database of each service a database
    // fault names; the service connects through it.
    let mut proxies = Proxies::default();
    // And one in front of the broker, through which every client connects,
    // when a fault cuts a service off the broker.
    if suite.faults.iter().any(|f| f.kind == FaultKind::BrokerCut) {
        let proxy = BrokerProxy::start(([127, 0, 0, 1], config.broker_port).into()).await?;
        config.broker_proxy = Some(proxy.port());
        proxies.broker = Some(Arc::new(proxy));
    }
    for fault in &suite.faults {
        let Some(service) = fault.service.as_deref() else {
            continue;
        };
        if !matches!(fault.kind, FaultKind::DbCut | FaultKind::DbLatency)
            || proxies.databases.contains_key(service)
        {
            continue;
        }
        let (index, service) = choreo_events::SAGA_SERVICES
            .into_iter()
            .enumerate()
            .find(|(_, s)| *s == service)
            .context("a database fault names a saga service")?;
        let upstream = pg_address(&workspace.pg_admin_url)?;
        // The block's ports after the broker's, one per saga service.
        let port = ports + services + 1 + index as u16;
        let proxy = DbProxy::start(service, port, &upstream).await?;
        let proxied = workspace
            .pg_admin_url
            .replacen(&upstream, proxy.listen(), 1);
        config.env.push((
            service,
            "CHOREO_DATABASE_URL".into(),
            choreo_platform::setup::database_url(
                &proxied,
                &format!("{}{service}", workspace.db_prefix),
            ),
        ));
        proxies
            .databases
            .insert(service, Arc::new(tokio::sync::Mutex::new(proxy)));
    }
    let mut running: Vec<Supervised> = Vec::new();
    let mut replicas = None;
    let result = async {
        let endpoints = up::start(&config, &mut running).await?;
        // The saga services' replicas, which scale faults change.
        let pool = Arc::new(tokio::sync::Mutex::new(Pool::take(
            endpoints.saga.clone(),
            &mut running,
            &endpoints.replicas,
        )));
        replicas = Some(pool.clone());
        drive(suite, workspace, &endpoints, &secret, &proxies, pool).await
    }
    .await;
    if let Some(pool) = replicas {
        pool.lock().await.stop().await;
    }
    up::stop(running).await;
    for proxy in proxies.databases.values() {
        proxy.lock().await.cut().await;
    }
    result
}

/// The fault proxies of a run.
#[derive(Default)]
pub(crate) struct Proxies {
    /// In front of the databases, by service.
    databases: BTreeMap<&'static str, Arc<tokio::sync::Mutex<DbProxy>>>,
    /// In front of the broker.
    broker: Option<Arc<BrokerProxy>>,
}

/// `host:port` of the PostgreSQL server `url` names.
fn pg_address(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
    let host = parsed
        .host_str()
        .context("the PostgreSQL URL names no host")?;
    Ok(format!("{host}:{}", parsed.port().unwrap_or(5432)))
}

async fn drive(
    suite: &Suite,
    workspace: &Workspace,
    endpoints: &up::Endpoints,
    secret: &str,
    proxies: &Proxies,
    pool: Arc<tokio::sync::Mutex<Pool>>,
) -> anyhow::Result<SuiteReport> {
    let (edge, bootstrap) = (endpoints.edge.as_str(), endpoints.bootstrap.as_str());
    let admin = client::bearer(&choreo_kit::customer_token::hs256_token(
        secret,
        "chaos-operator",
        true,
        86_400,
    )?)?;
    seed(suite, edge, &admin).await?;
    warm_up(suite, edge, &admin, secret).await?;

    let progress = Progress::new(suite.load.orders);
    let started = Instant::now();
    let placed = Arc::new(AtomicUsize::new(0));
    let (placed_tx, placed_rx) = watch::channel(0usize);
    let mut rng = StdRng::seed_from_u64(suite.seed);

    // The schedule is drawn before anything runs, so a seed replays it.
    let kinds: Vec<Kind> = (0..suite.load.orders)
        .map(|_| draw_kind(suite, &mut rng))
        .collect();
    let kafka = choreo_messaging::KafkaSettings {
        bootstrap_servers: bootstrap.to_owned(),
        partitions: suite.platform.partitions,
        ..Default::default()
    };
    let mut faults = JoinSet::new();
    let mut crash_locks = BTreeMap::<String, Arc<tokio::sync::Mutex<()>>>::new();
    for fault in &suite.faults {
        for _ in 0..fault.times {
            let at = fault
                .window
                .map(|[from, to]| rng.random_range(from..=to))
                .or(fault.at_seconds);
            let target = Target {
                database: fault
                    .service
                    .as_deref()
                    .and_then(|s| proxies.databases.get(s))
                    .cloned(),
                broker: proxies.broker.clone(),
                kafka: kafka.clone(),
                data_dir: workspace.data_dir.clone(),
                provider: endpoints.provider.clone(),
                operator: endpoints.operator.clone(),
                seed: suite.seed,
                // Drawn only for the faults that use it, so that adding
                // one leaves the other faults' moments as they were.
                draw: if fault.kind == FaultKind::KillReplica {
                    rng.random_range(0..1024)
                } else {
                    0
                },
                pool: pool.clone(),
                crash_at: crash_locks
                    .entry(fault.service.clone().unwrap_or_default())
                    .or_default()
                    .clone(),
            };
            let (fault, placed_rx, progress) = (fault.clone(), placed_rx.clone(), progress.clone());
            faults.spawn(async move {
                let event = inject(fault, at, started, target, placed_rx).await?;
                progress.fault(&event);
                anyhow::Ok(event)
            });
        }
    }

    // The load: each order placed with an idempotency key of its own and
    // retried with it until it is accepted, as a careful client would.
    let customers: Vec<String> = suite
        .wallets
        .iter()
        .filter(|(_, balance)| **balance > 0)
        .map(|(c, _)| c.clone())
        .collect();
    let skus: Vec<String> = suite
        .catalog
        .iter()
        .filter(|(_, p)| p.stock > 0)
        .map(|(s, _)| s.clone())
        .collect();
    // One client (and connection pool) per customer, signed for it.
    let mut clients = BTreeMap::new();
    for customer in customers.iter().chain([&BROKE.to_owned()]) {
        let token = choreo_kit::customer_token::hs256_token(secret, customer, false, 86_400)?;
        clients.insert(customer.clone(), client::bearer(&token)?);
    }
    let semaphore = Arc::new(tokio::sync::Semaphore::new(suite.load.concurrency));
    let mut load = JoinSet::new();
    for (i, kind) in kinds.iter().copied().enumerate() {
        let customer = match kind {
            Kind::PaymentDeclined => BROKE.to_owned(),
            _ => customers[i % customers.len()].clone(),
        };
        let sku = match kind {
            Kind::OutOfStock => EMPTY_SKU.to_owned(),
            _ => skus[i % skus.len()].clone(),
        };
        let country = if kind == Kind::Unshippable {
            UNSERVED_COUNTRY
        } else {
            "DE"
        };
        let body = client::order_body(&customer, &sku, country);
        let client = clients[&customer].clone();
        let (edge, semaphore, placed, placed_tx, progress) = (
            edge.to_owned(),
            semaphore.clone(),
            placed.clone(),
            placed_tx.clone(),
            progress.clone(),
        );
        let key = format!("chaos-{}-{i}", suite.seed);
        let arrival = suite
            .load
            .rate_per_second
            .map(|rate| started + Duration::from_secs_f64(i as f64 / rate));
        load.spawn(async move {
            if let Some(at) = arrival {
                tokio::time::sleep_until(at).await;
            }
            let _slot = semaphore.acquire_owned().await?;
            let id = client::place(&client, &edge, &key, &body).await?;
            let n = placed.fetch_add(1, Ordering::SeqCst) + 1;
            placed_tx.send_replace(n);
            progress.placed();
            if kind == Kind::Cancelled {
                cancel(&client, &edge, &id).await?;
            }
            anyhow::Ok((i, id))
        });
    }
    let mut ids = vec![String::new(); kinds.len()];
    while let Some(result) = load.join_next().await {
        let (i, id) = result??;
        ids[i] = id;
    }
    let mut events = Vec::new();
    while let Some(result) = faults.join_next().await {
        events.push(result??);
    }
    events.sort_by(|a: &FaultEvent, b| a.injected_at.total_cmp(&b.injected_at));
    let last_heal = events
        .iter()
        .map(|e| e.healed_at)
        .fold(started.elapsed().as_secs_f64(), f64::max);

    // Every order to its end, within the suite's settle time.
    let settle = Duration::from_secs_f64(suite.expect.settle_seconds);
    let deadline = started + Duration::from_secs_f64(last_heal) + settle;
    progress.settling();
    let mut orders = Vec::new();
    for (id, kind) in ids.iter().zip(&kinds) {
        let order = client::wait_terminal(&admin, edge, id, deadline, None).await;
        progress.decided();
        let status = order["status"].as_str().unwrap_or("PENDING").to_owned();
        let reason = order["cancel_reason"].as_str().map(str::to_owned);
        orders.push(OrderVerdict {
            id: id.clone(),
            kind: kind.name(),
            right: false,
            status,
            reason,
        });
    }
    // Judged once every order is decided, so that every decline is known.
    let declined = declined_by_provider(&endpoints.provider, &endpoints.operator).await?;
    for (order, kind) in orders.iter_mut().zip(&kinds) {
        order.right = kind.allows(
            &order.status,
            order.reason.as_deref(),
            declined.contains(&order.id),
        );
    }
    let settled_at = started.elapsed().as_secs_f64();
    progress.finish();
    // Every consumer through every message on its topics (the copies and
    // poison a fault added included) before the verdict: a duplicate still
    // unread proves nothing.
    let lagging = wait_drained(&kafka, deadline.max(Instant::now() + settle)).await?;
    let OnTopics { copies, poison } = read_topics(&kafka).await?;

    // The audit, once compensation has caught up: it is re-run until clean
    // or the settle time is up, and its last answer stands.
    let audit = audit_until_clean(workspace, suite, deadline.max(Instant::now() + settle)).await?;
    let mut dead_letters = BTreeMap::new();
    for service in choreo_events::SAGA_SERVICES {
        let letters = persist(&format!("listing {service}'s dead letters"), || async {
            Ok(choreo_messaging::dead_letter::list(&kafka, service).await?)
        })
        .await?;
        let described: Vec<String> = letters
            .iter()
            .map(|l| {
                format!(
                    "{}/{}@{}: {}",
                    l.source_topic, l.source_partition, l.source_offset, l.error
                )
            })
            .collect();
        dead_letters.insert(service.to_owned(), described);
    }
    Ok(SuiteReport::judge(
        suite,
        super::report::Findings {
            orders,
            faults: events,
            last_heal,
            settled_at,
            lagging,
            copies,
            audit,
            dead_letters,
            poison,
        },
    ))
}

/// The live display of a run: orders placed, then orders decided, with the
/// faults as they happen. Drawn on stderr only when it is a terminal (so a
/// CI log gets the report alone).
#[derive(Clone)]
struct Progress(indicatif::ProgressBar);

impl Progress {
    fn new(orders: usize) -> Self {
        let bar = indicatif::ProgressBar::new(orders as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "  {prefix:9} [{bar:30}] {pos}/{len} orders  {elapsed}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix("placing");
        Self(bar)
    }

    fn placed(&self) {
        self.0.inc(1);
    }

    fn fault(&self, event: &FaultEvent) {
        self.0.println(format!(
            "  fault {} {} at {:.1} s, healed at {:.1} s",
            event.kind, event.target, event.injected_at, event.healed_at
        ));
    }

    fn settling(&self) {
        self.0.set_prefix("deciding");
        self.0.set_position(0);
    }

    fn decided(&self) {
        self.0.inc(1);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Faults are meant for a platform in its steady state: one order is taken
/// through the whole saga first, which needs every service's consumer group
/// to have settled its partitions. (A service killed while its group was
/// still forming left the group stuck on Tansu: see the README.)
async fn warm_up(
    suite: &Suite,
    edge: &str,
    admin: &reqwest::Client,
    secret: &str,
) -> anyhow::Result<()> {
    let customer = suite
        .wallets
        .iter()
        .find(|(_, balance)| **balance > 0)
        .map(|(c, _)| c.clone())
        .context("a customer with money")?;
    let sku = suite
        .catalog
        .iter()
        .find(|(_, p)| p.stock > 0)
        .map(|(s, _)| s.clone())
        .context("a product in stock")?;
    let customer_client = client::bearer(&choreo_kit::customer_token::hs256_token(
        secret, &customer, false, 3_600,
    )?)?;
    let body = client::order_body(&customer, &sku, "DE");
    let id = client::place(&customer_client, edge, "chaos-warm-up", &body).await?;
    let order = client::wait_terminal(
        admin,
        edge,
        &id,
        Instant::now() + Duration::from_secs(120),
        None,
    )
    .await;
    anyhow::ensure!(
        order["status"] == "CONFIRMED",
        "the warm-up order {id} did not complete before the faults (it is {}): the platform is not healthy",
        order["status"]
    );
    Ok(())
}

fn draw_kind(suite: &Suite, rng: &mut StdRng) -> Kind {
    let m = &suite.load.mix;
    let weights = [
        (Kind::Succeed, m.succeed),
        (Kind::OutOfStock, m.out_of_stock),
        (Kind::PaymentDeclined, m.payment_declined),
        (Kind::Unshippable, m.unshippable),
        (Kind::Cancelled, m.cancelled),
    ];
    let total: u32 = weights.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    for (kind, weight) in weights {
        if pick < weight {
            return kind;
        }
        pick -= weight;
    }
    Kind::Succeed
}

/// Seeds the catalog and wallets; each `PUT` sets a value, so it is
/// retried as it is.
async fn seed(suite: &Suite, edge: &str, admin: &reqwest::Client) -> anyhow::Result<()> {
    let products = suite
        .catalog
        .iter()
        .map(|(sku, p)| (sku.as_str(), p.price_cents, i64::from(p.stock)))
        .chain([(EMPTY_SKU, 100, 0)]);
    for (sku, price, stock) in products {
        persist(&format!("seeding {sku}"), || {
            client::put_product(admin, edge, sku, sku, price, stock)
        })
        .await?;
    }
    let wallets = suite
        .wallets
        .iter()
        .map(|(c, b)| (c.as_str(), *b))
        .chain([(BROKE, 0)]);
    for (customer, balance) in wallets {
        persist(&format!("seeding {customer}'s wallet"), || {
            client::put_wallet(admin, edge, customer, balance)
        })
        .await?;
    }
    Ok(())
}

/// How long a client keeps retrying a cancel before the run fails.
const CANCEL_DEADLINE: Duration = Duration::from_secs(120);

async fn cancel(client: &reqwest::Client, edge: &str, id: &str) -> anyhow::Result<()> {
    let until = Instant::now() + CANCEL_DEADLINE;
    loop {
        let response = client
            .post(format!("{edge}/v1/orders/{id}/cancel"))
            .send()
            .await;
        match response {
            // Cancelled, or already decided: either is an answer.
            Ok(r) if r.status() == 202 || r.status() == 409 => return Ok(()),
            Ok(r) if r.status().is_client_error() && r.status() != 429 => {
                anyhow::bail!("cancel refused ({}): {}", r.status(), r.text().await?);
            }
            _ => {}
        }
        anyhow::ensure!(
            Instant::now() < until,
            "cancel of {id} not answered within {CANCEL_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The orders the provider declined a charge of (as `GET /admin/declined`
/// lists them): their right end includes PAYMENT_DECLINED. A provider
/// restarting (a fault's) is waited for.
async fn declined_by_provider(
    provider: &str,
    operator: &Signer,
) -> anyhow::Result<std::collections::HashSet<String>> {
    let listed: Value = super::faults::admin(
        "asking the provider which charges it declined",
        operator,
        internal_auth::PROVIDER,
        |http| http.get(format!("{provider}/admin/declined")),
    )
    .await?
    .json()
    .await?;
    Ok(listed["order_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect())
}

/// Waits until every saga consumer group has committed up to the end of
/// each of its input topics as they are at that moment, or `deadline`;
/// returns what still lags then (`group on topic/partition: lag N`).
async fn wait_drained(
    kafka: &choreo_messaging::KafkaSettings,
    deadline: Instant,
) -> anyhow::Result<Vec<String>> {
    let topics = kafka.topics();
    loop {
        let mut lagging = Vec::new();
        for (service, inputs) in &choreo_events::SUBSCRIPTIONS {
            let group = format!("{}{service}", kafka.topic_prefix);
            let names: Vec<String> = inputs.iter().map(|t| topics.name(*t)).collect();
            match choreo_messaging::admin::group_lag(kafka, &group, &names).await {
                Ok(partitions) => {
                    lagging.extend(partitions.iter().filter(|p| p.lag() > 0).map(|p| {
                        format!("{group} on {}/{}: lag {}", p.topic, p.partition, p.lag())
                    }))
                }
                Err(e) => lagging.push(format!("{group}: {}", choreo_telemetry::error_chain(&e))),
            }
        }
        if lagging.is_empty() || Instant::now() >= deadline {
            return Ok(lagging);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the saga topics hold besides one copy of each event.
struct OnTopics {
    /// Per saga topic, how many of its events it holds more than once (by
    /// the `choreo-event-id` header every published event carries): the
    /// copies a relay published again after a crash before it marked its
    /// rows, and the suite's own duplicates. Every one must have been
    /// skipped by the inboxes, which the audit and the orders' ends show.
    copies: BTreeMap<String, usize>,
    /// Per service, where each poison message on its input topics lies
    /// (`topic/partition@offset`), by the key every poison message's
    /// begins with.
    poison: BTreeMap<String, Vec<String>>,
}

async fn read_topics(kafka: &choreo_messaging::KafkaSettings) -> anyhow::Result<OnTopics> {
    use rdkafka::message::{Headers as _, Message as _};
    let mut copies = BTreeMap::new();
    let mut poison_on: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for topic in choreo_events::Topic::ALL.map(|t| kafka.topics().name(t)) {
        let messages = persist(&format!("reading {topic} to count its copies"), || async {
            Ok(choreo_messaging::admin::read_to_end(kafka, &topic).await?)
        })
        .await?;
        let ids: Vec<&[u8]> = messages
            .iter()
            .filter_map(|m| {
                m.headers()?
                    .iter()
                    .find(|h| h.key == choreo_messaging::headers::EVENT_ID_HEADER)?
                    .value
            })
            .collect();
        let distinct: std::collections::HashSet<&[u8]> = ids.iter().copied().collect();
        copies.insert(topic.clone(), ids.len() - distinct.len());
        let poison = messages
            .iter()
            .filter(|m| {
                m.key()
                    .is_some_and(|k| k.starts_with(super::faults::POISON_KEY.as_bytes()))
            })
            .map(|m| format!("{topic}/{}@{}", m.partition(), m.offset()))
            .collect();
        poison_on.insert(topic, poison);
    }
    let poison = choreo_events::SUBSCRIPTIONS
        .into_iter()
        .map(|(service, inputs)| {
            let on_inputs = inputs
                .iter()
                .flat_map(|t| {
                    poison_on
                        .get(&kafka.topics().name(*t))
                        .into_iter()
                        .flatten()
                })
                .cloned()
                .collect();
            (service.to_owned(), on_inputs)
        })
        .collect();
    Ok(OnTopics { copies, poison })
}

async fn audit_until_clean(
    workspace: &Workspace,
    suite: &Suite,
    deadline: Instant,
) -> anyhow::Result<choreo_audit::Report> {
    let db = |s: &str| {
        choreo_platform::setup::database_url(
            &workspace.pg_admin_url,
            &format!("{}{s}", workspace.db_prefix),
        )
    };
    let databases = choreo_audit::Databases {
        order: db("order"),
        inventory: db("inventory"),
        payment: db("payment"),
        shipping: db("shipping"),
        provider: Some(db("provider")),
    };
    let bounds = choreo_audit::Bounds {
        deadline: Duration::from_secs_f64(suite.platform.saga_deadline_seconds),
        grace: Duration::from_secs(10),
        settle: Duration::from_secs(10),
        outbox: Duration::from_secs(60),
    };
    loop {
        // A database a fault of the suite's has cut answers again once the
        // fault heals: an audit that cannot read is asked again.
        let report = persist("auditing the services' databases", || async {
            Ok(choreo_audit::audit(&databases, bounds).await?)
        })
        .await?;
        if report.is_clean() || Instant::now() >= deadline {
            return Ok(report);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
