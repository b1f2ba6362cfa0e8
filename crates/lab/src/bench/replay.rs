//! `choreo bench replay`: how fast a service recovers from a lost database.
//!
//! On a platform of its own, the service's input is filled with the events
//! of generated orders, keyed and headed as the services' relays send them:
//! - inventory: an `OrderPlaced` each, then its `OrderConfirmed` (or, for
//!   one in ten, an `OrderCancelled`);
//! - shipping: a `PaymentCompleted` each (one in twenty to a country not
//!   served), and for one in ten an `OrderCancelled` after it;
//! - payment: as a restore finds it, its own topic holds what it decided
//!   (a `WalletSet` for each customer, then a `PaymentCompleted` an order
//!   and a `PaymentRefunded` for one in ten), its input what it answered
//!   (a `StockReserved` an order, and an `OrderCancelled` for one in ten).
//!   The replay re-applies its decisions from its own topic, without the
//!   provider, and then finds every input decided;
//! - order: as a restore finds it, its own topic holds each order's
//!   `OrderPlaced` and then its `OrderConfirmed` (or, for one in ten, its
//!   `OrderCancelled`: out of stock), its input the steps that decided it
//!   (a `StockReserved` and a `ShipmentScheduled` carrying the payment, or
//!   the `StockRejected`). The replay re-applies the orders and their
//!   outcomes, then records each step in its order's timeline.
//!
//! Every saga service is held meanwhile, so nothing reacts to them. Then,
//! as an operator would after losing the database: the database is
//! dropped and made again, empty, and `choreo-<service> replay
//! --from-beginning` re-reads its own topic (inventory's: the catalog) and
//! the input, applying every event. Then the same replay again, over the
//! database it rebuilt: every event is skipped as applied.
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
    Event, EventMeta, OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, PaymentCompleted,
    PaymentRefunded, PricedLine, RegistryClient, ShipmentScheduled, ShippingAddress, StockRejected,
    StockReserved, StockShortage, Topic, WalletSet, cancel_reason, encode_datum, frame, subject,
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

/// The services whose recovery the bench measures: those whose inputs it
/// can write as the services upstream would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Service {
    Inventory,
    Order,
    Payment,
    Shipping,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Inventory => "inventory",
            Service::Order => "order",
            Service::Payment => "payment",
            Service::Shipping => "shipping",
        }
    }

    /// The topic it publishes to, which its replay re-reads first.
    fn own_topic(self) -> Topic {
        match self {
            Service::Inventory => Topic::Inventory,
            Service::Order => Topic::Order,
            Service::Payment => Topic::Payment,
            Service::Shipping => Topic::Shipping,
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayBenchArgs {
    /// The service whose database is lost and replayed.
    #[arg(long, value_enum, default_value_t = Service::Inventory)]
    service: Service,
    /// Orders whose events fill the service's topics: two events each for
    /// inventory, 1.1 for shipping, 2.2 for payment (with a `WalletSet` for
    /// each of up to 1,000 customers), 3.9 for order.
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
    /// Events of the service's own topic re-read first, and re-applied.
    #[serde(default)]
    pub own_reread: u64,
    #[serde(default)]
    pub own_applied: u64,
    /// Events of its input (the rest of this record counts these).
    pub reread: u64,
    pub applied: u64,
    /// Skipped as applied before, and records the service ignores.
    pub skipped: u64,
    pub dead_lettered: u64,
    /// Events re-read (the own topic's and the input's) per second of the
    /// whole command.
    pub events_per_second: f64,
    /// The replay process's processor time per event re-read (the own
    /// topic's and the input's, as below).
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
    let service = args.service.name();
    let database = format!("{}{service}", config.db_prefix);
    let database_url = setup::database_url(&config.pg_admin_url, &database);
    let skus: Vec<String> = (0..args.products)
        .map(|i| format!("REPLAY-{i:03}"))
        .collect();
    if args.service == Service::Inventory {
        set_catalog(config, endpoints, &skus, &database_url).await?;
    }
    hold_saga_services(&config.data_dir).await?;

    let kafka = KafkaSettings {
        bootstrap_servers: endpoints.bootstrap.clone(),
        partitions: args.partitions,
        ..Default::default()
    };
    eprintln!(
        "publishing {} orders' events to {service}'s input",
        args.orders
    );
    let published = Instant::now();
    let mut publisher = Publisher::new(
        &kafka,
        RegistryClient::new(&endpoints.registry, endpoints.operator.clone()),
    )?;
    if args.service == Service::Payment {
        // Each wallet before any charge to it: the replay re-applies its
        // own topic in the order the service committed it.
        for i in 0..args.orders.min(CUSTOMERS) {
            publisher.wallet(i).await?;
        }
    }
    for i in 0..args.orders {
        match args.service {
            Service::Inventory => publisher.inventory_input(&skus, i).await?,
            Service::Order => publisher.order_topics(&skus, i).await?,
            Service::Payment => publisher.payment_topics(&skus, i).await?,
            Service::Shipping => publisher.shipping_input(i).await?,
        }
    }
    let input_events = publisher.flush(args.service.own_topic()).await?;
    let publish_seconds = published.elapsed().as_secs_f64();
    eprintln!("published {input_events} events in {publish_seconds:.1} s");

    let env = endpoints
        .saga
        .spec(service, 0, up::free_port()?)
        .env
        .into_iter()
        .collect::<Vec<_>>();
    let mut bin_dirs = vec![config.bin_dir.clone()];
    bin_dirs.extend(args.b_bin_dir.clone());
    let mut sides = Vec::new();
    let mut own_events = 0;
    for bin_dir in bin_dirs {
        let replay = Replayer {
            binary: bin_dir.join(format!("choreo-{service}")),
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
        service: service.to_owned(),
        orders: args.orders,
        partitions: args.partitions,
        input_events,
        own_events,
        publish_seconds,
        sides,
    })
}

/// Sets inventory's catalog, `skus` with plenty of stock each, and waits
/// until it is on inventory's own topic: the replay re-reads it first.
async fn set_catalog(
    config: &up::Config,
    endpoints: &up::Endpoints,
    skus: &[String],
    database_url: &str,
) -> anyhow::Result<()> {
    eprintln!("setting {} products", skus.len());
    let admin = client::bearer(&choreo_kit::customer_token::hs256_token(
        &config.token_secret,
        "bench-replay-operator",
        true,
        86_400,
    )?)?;
    for sku in skus {
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
            let mut conn = PgConnection::connect(database_url).await.ok()?;
            let unpublished: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(&mut conn)
                    .await
                    .ok()?;
            (unpublished == 0).then_some(())
        },
    )
    .await?;
    Ok(())
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

/// Writes generated events as the services' relays would: keyed by order,
/// with the event id, type and an outbox id in the headers, each record's
/// schema registered under its topic's subject.
struct Publisher<'a> {
    kafka: &'a KafkaSettings,
    registry: RegistryClient,
    producer: choreo_messaging::producer::Producer,
    schema_ids: HashMap<(String, String), u32>,
    waiting: VecDeque<Acknowledged>,
    /// Events sent so far, which also numbers their outbox ids.
    sent: i64,
    by_topic: HashMap<Topic, u64>,
}

impl<'a> Publisher<'a> {
    fn new(kafka: &'a KafkaSettings, registry: RegistryClient) -> anyhow::Result<Self> {
        Ok(Self {
            kafka,
            registry,
            producer: choreo_messaging::producer::idempotent(kafka)?,
            schema_ids: HashMap::new(),
            waiting: VecDeque::new(),
            sent: 0,
            by_topic: HashMap::new(),
        })
    }

    /// The `i`th order's events on the order topic, as inventory reads
    /// them: its `OrderPlaced` for one of `skus`, then its `OrderConfirmed`
    /// or, for one in ten, its `OrderCancelled`.
    async fn inventory_input(&mut self, skus: &[String], i: u64) -> anyhow::Result<()> {
        let order_id = Uuid::new_v4();
        let placed = OrderPlaced {
            meta: EventMeta::first::<OrderPlaced>(order_id, "order"),
            order_id,
            customer_id: customer(i),
            lines: vec![OrderLine {
                sku: skus[(i as usize) % skus.len()].clone(),
                quantity: 1,
            }],
            shipping_address: address("DE"),
            idempotency_key: None,
        };
        self.send(&placed).await?;
        if i % 10 == 9 {
            self.send(&cancelled(&placed.meta, order_id)).await
        } else {
            let confirmed = OrderConfirmed {
                meta: EventMeta::caused_by::<OrderConfirmed>(&placed.meta, "order"),
                order_id,
                total_cents: 100,
                currency: "EUR".into(),
            };
            self.send(&confirmed).await
        }
    }

    /// The `i`th order's events as shipping reads them: its
    /// `PaymentCompleted` on the payment topic (to a country not served for
    /// one in twenty), and for one in ten an `OrderCancelled` after it on
    /// the order topic.
    async fn shipping_input(&mut self, i: u64) -> anyhow::Result<()> {
        let order_id = Uuid::new_v4();
        let placed = EventMeta::first::<OrderPlaced>(order_id, "order");
        let paid = PaymentCompleted {
            meta: EventMeta::caused_by::<PaymentCompleted>(&placed, "payment"),
            order_id,
            payment_id: Uuid::new_v5(&order_id, b"payment"),
            customer_id: customer(i),
            amount_cents: 100,
            currency: "EUR".into(),
            shipping_address: Some(address(if i % 20 == 7 { "AQ" } else { "DE" })),
        };
        self.send(&paid).await?;
        if i % 10 == 9 {
            self.send(&cancelled(&placed, order_id)).await?;
        }
        Ok(())
    }

    /// The `i`th order as the order service's topics hold it: on its own
    /// topic its `OrderPlaced`, then its `OrderConfirmed` or, for one in
    /// ten, its `OrderCancelled`; on its input the steps that decided it.
    async fn order_topics(&mut self, skus: &[String], i: u64) -> anyhow::Result<()> {
        let order_id = Uuid::new_v4();
        let sku = skus[(i as usize) % skus.len()].clone();
        let placed = OrderPlaced {
            meta: EventMeta::first::<OrderPlaced>(order_id, "order"),
            order_id,
            customer_id: customer(i),
            lines: vec![OrderLine {
                sku: sku.clone(),
                quantity: 1,
            }],
            shipping_address: address("DE"),
            idempotency_key: None,
        };
        self.send(&placed).await?;
        if i % 10 == 9 {
            let rejected = StockRejected {
                meta: EventMeta::caused_by::<StockRejected>(&placed.meta, "inventory"),
                order_id,
                reason: cancel_reason::OUT_OF_STOCK.into(),
                shortages: vec![StockShortage {
                    sku,
                    requested: 1,
                    available: 0,
                }],
                customer_id: Some(customer(i)),
            };
            let cancelled = OrderCancelled {
                meta: EventMeta::once_per_order::<OrderCancelled>(
                    order_id,
                    Some(rejected.meta.event_id),
                    "order",
                ),
                order_id,
                reason: cancel_reason::OUT_OF_STOCK.into(),
                detail: String::new(),
            };
            self.send(&rejected).await?;
            return self.send(&cancelled).await;
        }
        let reserved = reserved(&placed.meta, i, sku);
        let paid = EventMeta::caused_by::<PaymentCompleted>(&reserved.meta, "payment");
        let scheduled = ShipmentScheduled {
            meta: EventMeta::once_per_order::<ShipmentScheduled>(
                order_id,
                Some(paid.event_id),
                "shipping",
            ),
            order_id,
            shipment_id: Uuid::new_v5(&order_id, b"shipment"),
            country: "DE".into(),
            payment: Some(paid),
        };
        let confirmed = OrderConfirmed {
            meta: EventMeta::once_per_order::<OrderConfirmed>(
                order_id,
                Some(scheduled.meta.event_id),
                "order",
            ),
            order_id,
            total_cents: 100,
            currency: "EUR".into(),
        };
        self.send(&reserved).await?;
        self.send(&scheduled).await?;
        self.send(&confirmed).await
    }

    /// The `i`th customer's wallet, as an operator set it: plenty for every
    /// order.
    async fn wallet(&mut self, i: u64) -> anyhow::Result<()> {
        let balance_cents = 1_000_000_000;
        self.send(&WalletSet {
            meta: EventMeta::first::<WalletSet>(Uuid::new_v4(), "payment"),
            customer_id: customer(i),
            balance_cents,
            currency: "EUR".into(),
            delta_cents: balance_cents,
        })
        .await
    }

    /// The `i`th order as payment's topics hold it: the `StockReserved` it
    /// answered and the `PaymentCompleted` it answered with; for one in
    /// ten, the `OrderCancelled` and the `PaymentRefunded` that answered it.
    async fn payment_topics(&mut self, skus: &[String], i: u64) -> anyhow::Result<()> {
        let order_id = Uuid::new_v4();
        let placed = EventMeta::first::<OrderPlaced>(order_id, "order");
        let reserved = reserved(&placed, i, skus[(i as usize) % skus.len()].clone());
        let paid = PaymentCompleted {
            meta: EventMeta::caused_by::<PaymentCompleted>(&reserved.meta, "payment"),
            order_id,
            payment_id: Uuid::new_v5(&order_id, b"payment"),
            customer_id: customer(i),
            amount_cents: 100,
            currency: "EUR".into(),
            shipping_address: reserved.shipping_address.clone(),
        };
        self.send(&reserved).await?;
        self.send(&paid).await?;
        if i % 10 == 9 {
            let cancelled = cancelled(&placed, order_id);
            let refunded = PaymentRefunded {
                meta: EventMeta::caused_by::<PaymentRefunded>(&cancelled.meta, "payment"),
                order_id,
                payment_id: paid.payment_id,
                customer_id: customer(i),
                amount_cents: 100,
                currency: "EUR".into(),
                reason: cancelled.reason.clone(),
                payment: Some(paid.meta.clone()),
            };
            self.send(&cancelled).await?;
            self.send(&refunded).await?;
        }
        Ok(())
    }

    /// Queues `event`, waiting for the oldest half of those in flight when
    /// librdkafka's queue is full.
    /// Keyed as the outbox keys it, by the event's correlation id.
    async fn send<E: Event>(&mut self, event: &E) -> anyhow::Result<()> {
        let topic = self.kafka.topics().name(E::TOPIC);
        let key = (topic.clone(), E::full_name());
        let schema_id = match self.schema_ids.get(&key) {
            Some(id) => *id,
            None => {
                let subject = subject(&topic, &key.1);
                let id = self.registry.register(&subject, E::schema_text()).await?;
                *self.schema_ids.entry(key).or_insert(id)
            }
        };
        let value = frame(schema_id, &encode_datum(event)?);
        self.sent += 1;
        *self.by_topic.entry(E::TOPIC).or_default() += 1;
        let headers = event_headers(event.meta().event_id, E::NAME, self.sent);
        let key = event.meta().correlation_id.to_string();
        loop {
            let record = FutureRecord::to(&topic)
                .key(&key)
                .payload(&value)
                .headers(headers.clone());
            match self.producer.enqueue(record) {
                Ok(ack) => {
                    self.waiting.push_back(ack);
                    return Ok(());
                }
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                    for _ in 0..self.waiting.len().div_ceil(2) {
                        if let Some(ack) = self.waiting.pop_front() {
                            ack.await.context("publishing a generated event")?;
                        }
                    }
                }
                Err(e) => return Err(e).context("publishing a generated event"),
            }
        }
    }

    /// Waits for every event to be acknowledged; how many were sent to
    /// topics other than `own`: the service's input.
    async fn flush(self, own: Topic) -> anyhow::Result<u64> {
        for ack in self.waiting {
            ack.await.context("publishing a generated event")?;
        }
        Ok(self
            .by_topic
            .iter()
            .filter(|(topic, _)| **topic != own)
            .map(|(_, n)| n)
            .sum())
    }
}

/// How many customers share the generated orders.
const CUSTOMERS: u64 = 1000;

fn customer(i: u64) -> String {
    format!("replay-customer-{}", i % CUSTOMERS)
}

fn address(country: &str) -> ShippingAddress {
    ShippingAddress {
        name: "Replay Bench".into(),
        line1: "1 Queue Street".into(),
        line2: None,
        city: "Berlin".into(),
        postal_code: "10115".into(),
        country: country.into(),
    }
}

/// The `i`th order's reservation of one `sku` at 100 cents, as inventory
/// sends it for the order `placed` tells of.
fn reserved(placed: &EventMeta, i: u64, sku: String) -> StockReserved {
    StockReserved {
        meta: EventMeta::caused_by::<StockReserved>(placed, "inventory"),
        order_id: placed.correlation_id,
        customer_id: customer(i),
        lines: vec![PricedLine {
            sku,
            quantity: 1,
            unit_price_cents: 100,
            line_total_cents: 100,
        }],
        total_cents: 100,
        currency: "EUR".into(),
        shipping_address: Some(address("DE")),
    }
}

/// The order's cancel, as its deadline or a declined payment sends it.
fn cancelled(placed: &EventMeta, order_id: Uuid) -> OrderCancelled {
    OrderCancelled {
        meta: EventMeta::caused_by::<OrderCancelled>(placed, "order"),
        order_id,
        reason: cancel_reason::PAYMENT_DECLINED.into(),
        detail: "declined by the replay bench".into(),
    }
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
        let (mut own, mut own_applied, mut reread, mut applied, mut skipped, mut dead) =
            (0, 0, 0, 0, 0, 0);
        for p in summary["partitions"].as_array().into_iter().flatten() {
            let count = |field: &str| p["tally"][field].as_u64().unwrap_or(0);
            if p["phase"] == "own" {
                own += count("reread");
                own_applied += count("applied");
                continue;
            }
            reread += count("reread");
            applied += count("applied");
            skipped += count("duplicates") + count("ignored");
            dead += count("dead_lettered");
        }
        // Rates over every event re-read, the own topic's too: for payment
        // that is most of the work.
        let all = own + reread;
        let per_event = |total: f64| {
            if all == 0 { 0.0 } else { total / all as f64 }
        };
        Ok((
            Replay {
                seconds,
                own_reread: own,
                own_applied,
                reread,
                applied,
                skipped,
                dead_lettered: dead,
                events_per_second: all as f64 / seconds.max(1e-9),
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
            "\nreplay into {}: {} events on its input ({} orders) and {} on its own topic, {} partitions; \
             published in {:.1} s\ncommit {}, {} cores, {}\n",
            self.service,
            self.input_events,
            self.orders,
            self.own_events,
            self.partitions,
            self.publish_seconds,
            self.git_commit,
            self.machine.cores,
            self.machine.cpu
        );
        out += &format!(
            "{:<30} {:>8} {:>15} {:>9} {:>9} {:>9} {:>10} {:>12} {:>12} {:>10}\n",
            "REPLAY",
            "SECONDS",
            "OWN (APPLIED)",
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
                    "{:<30} {:>8.1} {:>15} {:>9} {:>9} {:>9} {:>10.0} {:>9.0} us {:>9.0} us {:>10.3}\n",
                    what,
                    r.seconds,
                    format!("{} ({})", r.own_reread, r.own_applied),
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
        out += "OWN: its own topic's events, re-read first; RE-READ, APPLIED, SKIPPED: its input's. EVENTS/S counts both, \
                REPLAY-CPU and PG-CPU are processor time per event of both; COMMITS, the database's committed transactions per event\n";
        out
    }
}
