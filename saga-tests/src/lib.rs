//! The whole Choreo platform in one process, for black-box saga tests.
//!
//! [`Platform::start`] runs a real broker (Tansu; librdkafka's mock cluster
//! with `CHOREO_TEST_BROKER=mock`), the schema registry and the
//! four saga services and the edge, each on a free port, each service on its
//! own fresh PostgreSQL database, all on topic names unique to the test. Tests
//! drive it only through the edge's REST API and the broker, as a user would.

use anyhow::Context;
use choreo_kit::{CancellationToken, internal_auth::Signer};
use choreo_messaging::KafkaSettings;
use choreo_service::ServiceSettings;
pub use choreo_testkit::bearer_client;
use choreo_testkit::{Broker, Edge, TestDatabase, unique_name, wait_until};
use serde_json::{Value, json};
use std::{net::SocketAddr, time::Duration};
use tokio::task::JoinHandle;

/// How long a saga may take on a slow, loaded CI machine before a test
/// gives up. Not a speed goal: `make bench` measures speed.
pub const SAGA_DEADLINE: Duration = Duration::from_secs(60);

pub struct Platform {
    pub broker: Broker,
    pub kafka: KafkaSettings,
    /// The edge, called as an operator: the tests' own setup (catalog,
    /// wallets, orders for any customer) goes through it like an operator's.
    pub edge: Edge,
    pub registry: String,
    pub order: String,
    pub inventory: String,
    pub payment: String,
    pub shipping: String,
    pub databases: Databases,
    /// The secret the edge checks tokens with; see [`Platform::token`].
    pub token_secret: String,
    /// The keys the processes sign their calls to each other with.
    pub internal_auth: choreo_kit::internal_auth::InternalAuthSettings,
    /// The services started (all but `Options::down`).
    pub up: Vec<String>,
    pub saga_deadline: Duration,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    registry_shutdown: CancellationToken,
    registry_task: JoinHandle<()>,
}

pub struct Databases {
    pub registry: TestDatabase,
    pub order: TestDatabase,
    pub inventory: TestDatabase,
    pub payment: TestDatabase,
    pub shipping: TestDatabase,
}

impl Databases {
    async fn create() -> anyhow::Result<Self> {
        Ok(Self {
            registry: TestDatabase::create("registry").await?,
            order: TestDatabase::create("order").await?,
            inventory: TestDatabase::create("inventory").await?,
            payment: TestDatabase::create("payment").await?,
            shipping: TestDatabase::create("shipping").await?,
        })
    }

    fn all(&self) -> [&TestDatabase; 5] {
        [
            &self.registry,
            &self.order,
            &self.inventory,
            &self.payment,
            &self.shipping,
        ]
    }
}

/// Migrates a down service's database, so that its tables exist (empty)
/// for the auditor, as they would for a service that crashed after its
/// first start.
async fn migrate(
    settings: &ServiceSettings,
    migrator: sqlx::migrate::Migrator,
) -> anyhow::Result<()> {
    choreo_service::connect(settings, migrator)
        .await?
        .close()
        .await;
    Ok(())
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A test that fails returns early and drops its platform without `stop()`.
/// The services must still stop before the broker goes: a Kafka client
/// closed after its broker is gone can block its thread for good, and with
/// it the test process.
impl Drop for Platform {
    fn drop(&mut self) {
        if self.tasks.is_empty() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        tokio::task::block_in_place(|| handle.block_on(self.stop_services()));
    }
}

/// How a test's platform differs from the default one.
#[derive(Debug, Clone)]
pub struct Options {
    /// The order service's saga deadline.
    pub saga_deadline: Duration,
    /// Services not started at all, as if down for the whole test.
    pub down: Vec<&'static str>,
    /// How long the order service remembers an idempotency key.
    pub idempotency_key_lifetime: Duration,
    /// The edge's rate limits; by default far above what any test sends.
    pub rate_limit: choreo_edge::RateLimitSettings,
    /// The edge's caps on long-polls in flight.
    pub waits: choreo_edge::WaitSettings,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            saga_deadline: Duration::from_secs(30),
            down: Vec::new(),
            idempotency_key_lifetime: Duration::from_secs(24 * 3600),
            rate_limit: choreo_edge::RateLimitSettings {
                customer_per_minute: 1_000_000,
                customer_burst: 100_000,
                address_per_minute: 1_000_000,
                address_burst: 100_000,
                ..Default::default()
            },
            waits: choreo_edge::WaitSettings::default(),
        }
    }
}

impl Platform {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> anyhow::Result<Self> {
        let up = |name: &str| !options.down.contains(&name);
        choreo_telemetry::init_for_tests("saga-tests");
        let broker = Broker::from_env().await?;
        let databases = Databases::create().await?;
        let shutdown = CancellationToken::new();
        // The registry outlives the services at shutdown: a consumer
        // finishing its last event may still need a schema.
        let registry_shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let internal_auth = choreo_testkit::internal_auth();

        let registry = choreo_schema_registry::start(
            choreo_schema_registry::Settings {
                http_addr: local(0),
                database_url: databases.registry.url.clone(),
                internal_auth: internal_auth.clone(),
                ..Default::default()
            },
            registry_shutdown.clone(),
        )
        .await
        .context("starting the schema registry")?;
        let registry_url = format!("http://{}", registry.addr);
        let registry_task = tokio::spawn(async move {
            let _ = registry.task.await;
        });

        let kafka = KafkaSettings {
            bootstrap_servers: broker.bootstrap(),
            topic_prefix: format!("{}.", unique_name("t")),
            partitions: 3,
            properties: std::env::var("PROBE_DEBUG")
                .ok()
                .map(|d| [("debug".to_owned(), d)].into_iter().collect())
                .unwrap_or_default(),
            ..Default::default()
        };
        let names = kafka.topics().all();
        match broker.mock() {
            Some(mock) => mock.create_topics(&names, kafka.partitions)?,
            None => choreo_messaging::admin::ensure_topics(&kafka, &names)
                .await
                .context("creating topics")?,
        }

        let service = |db: &TestDatabase| ServiceSettings {
            http_addr: local(0),
            database_url: db.url.clone(),
            // Above payment's input partitions (2 topics × 3), which it
            // refuses to start without.
            database_max_connections: 8,
            registry_url: registry_url.clone(),
            kafka: kafka.clone(),
            internal_auth: internal_auth.clone(),
            ..ServiceSettings::local("test", 0)
        };
        let mut spawn = |running: choreo_service::Running| {
            let addr = format!("http://{}", running.addr);
            tasks.push(tokio::spawn(async move {
                if let Err(e) = running.wait().await {
                    eprintln!("service stopped: {e}");
                }
            }));
            addr
        };
        let unstarted = |name: &str| format!("http://127.0.0.1:9/{name}-is-down");
        let order = if up("order") {
            spawn(
                choreo_order::start(
                    choreo_order::Settings {
                        service: service(&databases.order),
                        max_wait_seconds: 60,
                        saga_deadline_seconds: options.saga_deadline.as_secs_f64(),
                        idempotency_key_hours: options.idempotency_key_lifetime.as_secs_f64()
                            / 3600.0,
                    },
                    shutdown.clone(),
                )
                .await
                .context("starting order")?,
            )
        } else {
            migrate(&service(&databases.order), choreo_order::migrations()).await?;
            unstarted("order")
        };
        let inventory = if up("inventory") {
            spawn(
                choreo_inventory::start(
                    choreo_inventory::Settings {
                        service: service(&databases.inventory),
                    },
                    shutdown.clone(),
                )
                .await
                .context("starting inventory")?,
            )
        } else {
            migrate(
                &service(&databases.inventory),
                choreo_inventory::migrations(),
            )
            .await?;
            unstarted("inventory")
        };
        let payment = if up("payment") {
            spawn(
                choreo_payment::start(
                    choreo_payment::Settings {
                        service: service(&databases.payment),
                        provider: choreo_payment::ProviderSettings::default(),
                    },
                    shutdown.clone(),
                )
                .await
                .context("starting payment")?,
            )
        } else {
            migrate(&service(&databases.payment), choreo_payment::migrations()).await?;
            unstarted("payment")
        };
        let shipping = if up("shipping") {
            spawn(
                choreo_shipping::start(
                    choreo_shipping::Settings {
                        service: service(&databases.shipping),
                        ..Default::default()
                    },
                    shutdown.clone(),
                )
                .await
                .context("starting shipping")?,
            )
        } else {
            migrate(&service(&databases.shipping), choreo_shipping::migrations()).await?;
            unstarted("shipping")
        };
        let token_secret = format!("saga-test-secret-{}", uuid::Uuid::new_v4().simple());
        let edge = choreo_edge::start(
            choreo_edge::Settings {
                http_addr: local(0),
                order_url: order.clone(),
                inventory_url: inventory.clone(),
                payment_url: payment.clone(),
                shipping_url: shipping.clone(),
                auth: choreo_edge::AuthSettings {
                    hs256_secret: Some(token_secret.clone()),
                    ..Default::default()
                },
                rate_limit: options.rate_limit.clone(),
                waits: options.waits.clone(),
                internal_auth: choreo_kit::internal_auth::InternalAuthSettings {
                    admin_secret: None,
                    ..internal_auth.clone()
                },
                ..Default::default()
            },
            shutdown.clone(),
        )
        .await
        .context("starting the edge")?;
        let edge_url = format!("http://{}", edge.addr);
        tasks.push(tokio::spawn(edge.wait()));

        Ok(Self {
            broker,
            kafka,
            edge: Edge::new(
                edge_url,
                &choreo_kit::customer_token::hs256_token(&token_secret, "saga-admin", true, 3600)?,
            )?,
            registry: registry_url,
            order,
            inventory,
            payment,
            shipping,
            databases,
            token_secret,
            internal_auth,
            up: ["order", "inventory", "payment", "shipping"]
                .into_iter()
                .filter(|s| up(s))
                .map(str::to_owned)
                .collect(),
            saga_deadline: options.saga_deadline,
            shutdown,
            tasks,
            registry_shutdown,
            registry_task,
        })
    }

    /// Stops every service, then drops the test's databases.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_services().await;
        for db in self.databases.all() {
            db.drop_db().await?;
        }
        Ok(())
    }

    async fn stop_services(&mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        self.registry_shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), &mut self.registry_task).await;
    }

    /// Stops the schema registry for the rest of the test, as an outage.
    pub fn stop_registry(&self) {
        self.registry_shutdown.cancel();
    }

    /// A token for `customer` (with the admin scope when `admin`), valid
    /// for an hour.
    pub fn token(&self, customer: &str, admin: bool) -> anyhow::Result<String> {
        Ok(choreo_kit::customer_token::hs256_token(
            &self.token_secret,
            customer,
            admin,
            3600,
        )?)
    }

    /// A client calling as `customer`, without admin rights.
    pub fn customer(&self, customer: &str) -> anyhow::Result<reqwest::Client> {
        bearer_client(&self.token(customer, false)?)
    }

    /// The wallet as the payment service reports it (the edge has no wallet
    /// read route yet).
    pub async fn wallet(&self, customer: &str) -> anyhow::Result<Value> {
        Ok(self
            .service_client("payment")?
            .get(format!("{}/wallets/{customer}", self.payment))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Waits until the order reaches `status`, for at most the saga
    /// deadline.
    pub async fn wait_for_status(&self, id: &str, status: &str) -> anyhow::Result<Value> {
        self.edge.wait_for_status(id, status, SAGA_DEADLINE).await
    }
}

/// A valid order body for `customer`.
pub fn order_body(customer: &str, items: &[(&str, i32)]) -> Value {
    json!({
        "customer_id": customer,
        "items": items.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect::<Vec<_>>(),
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 St James's Square",
            "city": "London",
            "postal_code": "SW1Y 4JH",
            "country": "GB"
        }
    })
}

/// Which topics each service's consumer group reads.
pub use choreo_events::SUBSCRIPTIONS;

impl Platform {
    fn kafka_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &self.kafka.bootstrap_servers);
        config
    }

    /// Every message on `topic`, from the beginning up to its current end.
    pub async fn read_topic(
        &self,
        topic: choreo_events::Topic,
    ) -> anyhow::Result<Vec<rdkafka::message::OwnedMessage>> {
        use rdkafka::{
            Message, Offset, TopicPartitionList,
            consumer::{BaseConsumer, Consumer},
        };
        let name = self.kafka.topics().name(topic);
        let consumer: BaseConsumer = self
            .kafka_config()
            .set("group.id", unique_name("reader"))
            .set("enable.auto.commit", "false")
            .create()?;
        let mut ends = Vec::new();
        let mut assignment = TopicPartitionList::new();
        for partition in 0..self.kafka.partitions {
            let (_, high) = consumer.fetch_watermarks(&name, partition, Duration::from_secs(10))?;
            if high > 0 {
                assignment.add_partition_offset(&name, partition, Offset::Beginning)?;
                ends.push((partition, high));
            }
        }
        let mut out = Vec::new();
        if ends.is_empty() {
            return Ok(out);
        }
        consumer.assign(&assignment)?;
        let total: i64 = ends.iter().map(|(_, h)| h).sum();
        let started = tokio::time::Instant::now();
        while (out.len() as i64) < total {
            anyhow::ensure!(
                started.elapsed() < SAGA_DEADLINE,
                "reading {name} timed out"
            );
            // BaseConsumer::poll blocks; keep it off the async workers.
            let message = tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(200)));
            if let Some(message) = message {
                let message = message?;
                if ends
                    .iter()
                    .any(|(p, h)| *p == message.partition() && message.offset() < *h)
                {
                    out.push(message.detach());
                }
            }
        }
        Ok(out)
    }

    /// Publishes `messages` again, exactly as they were (key, value, headers):
    /// a broker or producer redelivering them.
    pub async fn republish(
        &self,
        messages: &[rdkafka::message::OwnedMessage],
    ) -> anyhow::Result<()> {
        use rdkafka::{
            Message,
            producer::{FutureProducer, FutureRecord},
        };
        let producer: FutureProducer = self.kafka_config().create()?;
        for m in messages {
            let mut record = FutureRecord::to(m.topic()).partition(m.partition());
            if let Some(key) = m.key() {
                record = record.key(key);
            }
            if let Some(value) = m.payload() {
                record = record.payload(value);
            }
            if let Some(headers) = m.headers() {
                record = record.headers(headers.clone());
            }
            producer
                .send(record, Duration::from_secs(10))
                .await
                .map_err(|(e, _)| anyhow::anyhow!("republishing: {e}"))?;
        }
        Ok(())
    }

    /// Waits until the platform is quiet: every outbox is published, and
    /// every service has consumed and committed every message on its input
    /// topics, with nothing new produced meanwhile (a consumed event may
    /// cause another, which must be consumed too).
    pub async fn wait_until_consumed(&self) -> anyhow::Result<()> {
        let mut last = None;
        loop {
            self.wait_for_outboxes().await?;
            let ends = self.catch_up().await?;
            if last.as_ref() == Some(&ends) {
                return Ok(());
            }
            last = Some(ends);
        }
    }

    async fn wait_for_outboxes(&self) -> anyhow::Result<()> {
        for db in [
            &self.databases.order,
            &self.databases.inventory,
            &self.databases.payment,
            &self.databases.shipping,
        ] {
            let pool = sqlx::PgPool::connect(&db.url).await?;
            wait_until(
                &format!("{}'s outbox to be published", db.name),
                SAGA_DEADLINE,
                || async {
                    // -1 when the table is missing: a service that is down
                    // never created it.
                    let unpublished: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM outbox WHERE published_at IS NULL",
                    )
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(-1);
                    (unpublished <= 0).then_some(())
                },
            )
            .await?;
            pool.close().await;
        }
        Ok(())
    }

    /// Waits until every consumer group has committed up to the ends of its
    /// input topics as they are now, and returns those ends.
    async fn catch_up(&self) -> anyhow::Result<Vec<(String, i32, i64)>> {
        use rdkafka::{
            Offset, TopicPartitionList,
            consumer::{BaseConsumer, Consumer},
        };
        let topics = self.kafka.topics();
        let probe: BaseConsumer = self
            .kafka_config()
            .set("group.id", unique_name("probe"))
            .create()?;
        let mut targets = Vec::new();
        for (service, inputs) in &SUBSCRIPTIONS {
            let mut list = TopicPartitionList::new();
            let mut ends = Vec::new();
            for topic in *inputs {
                let name = topics.name(*topic);
                for partition in 0..self.kafka.partitions {
                    let (_, high) =
                        probe.fetch_watermarks(&name, partition, Duration::from_secs(10))?;
                    list.add_partition(&name, partition);
                    ends.push((name.clone(), partition, high));
                }
            }
            targets.push((format!("{}{service}", self.kafka.topic_prefix), list, ends));
        }
        let mut all_ends = Vec::new();
        for (group, list, ends) in targets {
            if !self.up.iter().any(|s| group.ends_with(s.as_str())) {
                continue;
            }
            let consumer: BaseConsumer = self.kafka_config().set("group.id", &group).create()?;
            wait_until(
                &format!("group {group} to commit up to the end"),
                SAGA_DEADLINE,
                || {
                    let committed = tokio::task::block_in_place(|| {
                        consumer.committed_offsets(list.clone(), Duration::from_secs(5))
                    });
                    let done = committed.ok().is_some_and(|c| {
                        ends.iter().all(|(topic, partition, high)| {
                            match c.find_partition(topic, *partition).map(|e| e.offset()) {
                                Some(Offset::Offset(o)) => o >= *high,
                                _ => *high == 0,
                            }
                        })
                    });
                    std::future::ready(done.then_some(()))
                },
            )
            .await?;
            all_ends.extend(ends);
        }
        Ok(all_ends)
    }

    /// Runs the saga auditor against this platform's databases, once the
    /// platform is quiet.
    pub async fn audit(&self) -> anyhow::Result<choreo_audit::Report> {
        self.wait_until_consumed().await?;
        let databases = choreo_audit::Databases {
            order: self.databases.order.url.clone(),
            inventory: self.databases.inventory.url.clone(),
            payment: self.databases.payment.url.clone(),
            shipping: self.databases.shipping.url.clone(),
            // These in-process platforms run payment without a provider.
            provider: None,
        };
        let bounds = choreo_audit::Bounds {
            deadline: self.saga_deadline,
            grace: Duration::from_secs(5),
            settle: Duration::ZERO,
            outbox: Duration::from_secs(5),
        };
        Ok(choreo_audit::audit(&databases, bounds).await?)
    }

    /// Fails with every violation the auditor finds.
    pub async fn assert_audit_clean(&self) -> anyhow::Result<()> {
        let report = self.audit().await?;
        let lines: Vec<String> = report.violations.iter().map(ToString::to_string).collect();
        anyhow::ensure!(
            report.is_clean(),
            "audit found violations:\n{}",
            lines.join("\n")
        );
        Ok(())
    }
}

impl Platform {
    /// Places an order through the edge and returns its id.
    pub async fn place(&self, customer: &str, items: &[(&str, i32)]) -> anyhow::Result<String> {
        self.place_body(order_body(customer, items)).await
    }

    pub async fn place_body(&self, body: Value) -> anyhow::Result<String> {
        self.edge.place_as(self.edge.admin(), &body).await
    }

    /// Cancels through the edge; returns the HTTP status and body.
    pub async fn cancel(&self, id: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .edge
            .admin()
            .post(self.edge.url(&format!("/v1/orders/{id}/cancel")))
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// Waits until the order's timeline holds an event of `event_type`.
    pub async fn wait_for_event(&self, id: &str, event_type: &str) -> anyhow::Result<Value> {
        wait_until(
            &format!("{event_type} in order {id}'s timeline"),
            SAGA_DEADLINE,
            || async {
                let order = self.edge.order(id, 0).await.ok()?;
                let seen = order["timeline"]
                    .as_array()?
                    .iter()
                    .any(|e| e["event_type"] == event_type);
                seen.then_some(order)
            },
        )
        .await
    }

    /// A client of the service `audience` (`order`, …, `registry`) behind
    /// the edge, as the edge calls it: with the service key, a minute's
    /// credential.
    pub fn service_client(&self, audience: &str) -> anyhow::Result<reqwest::Client> {
        let signer = Signer::service(&self.internal_auth, "saga-tests")?;
        Ok(choreo_testkit::signed_client(&signer, audience))
    }

    pub fn registry_client(&self) -> choreo_events::RegistryClient {
        choreo_events::RegistryClient::new(&self.registry, choreo_testkit::operator())
    }

    /// Publishes `event` to its topic as its producing service would.
    pub async fn publish<E: choreo_events::Event>(&self, event: &E) -> anyhow::Result<()> {
        choreo_testkit::publish_event(
            &self.kafka.bootstrap_servers,
            &self.kafka.topics(),
            &self.registry_client(),
            event,
        )
        .await
    }
}

/// The event types of an order's timeline, in order.
pub fn timeline(order: &Value) -> Vec<String> {
    order["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|e| e["event_type"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
