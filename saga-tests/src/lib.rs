//! The whole Choreo platform in one process, for black-box saga tests.
//!
//! [`Platform::start`] runs a real Tansu broker, the schema registry and the
//! four saga services and the edge, each on a free port, each service on its
//! own fresh PostgreSQL database, all on topic names unique to the test. Tests
//! drive it only through the edge's REST API and the broker, as a user would.

use anyhow::Context;
use choreo_kit::CancellationToken;
use choreo_messaging::KafkaSettings;
use choreo_service::ServiceSettings;
use choreo_testkit::{TestBroker, TestDatabase, unique_name, wait_until};
use serde_json::{Value, json};
use std::{net::SocketAddr, time::Duration};
use tokio::task::JoinHandle;

/// How long a saga may take on a slow, loaded CI machine before a test
/// gives up. Not a speed goal: `make bench` measures speed.
pub const SAGA_DEADLINE: Duration = Duration::from_secs(60);

pub struct Platform {
    pub broker: TestBroker,
    pub kafka: KafkaSettings,
    pub edge: String,
    pub registry: String,
    pub order: String,
    pub inventory: String,
    pub payment: String,
    pub shipping: String,
    pub databases: Databases,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
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

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Platform {
    pub async fn start() -> anyhow::Result<Self> {
        choreo_telemetry::init("saga-tests", choreo_telemetry::LogFormat::Text);
        let broker = TestBroker::start().await?;
        let databases = Databases::create().await?;
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();

        let registry = choreo_schema_registry::start(
            choreo_schema_registry::Settings {
                http_addr: local(0),
                database_url: databases.registry.url.clone(),
                ..Default::default()
            },
            shutdown.clone(),
        )
        .await
        .context("starting the schema registry")?;
        let registry_url = format!("http://{}", registry.addr);
        tasks.push(tokio::spawn(async move {
            let _ = registry.task.await;
        }));

        let kafka = KafkaSettings {
            bootstrap_servers: broker.bootstrap.clone(),
            topic_prefix: format!("{}.", unique_name("t")),
            partitions: 3,
            ..Default::default()
        };
        let topics = kafka.topics();
        let names: Vec<String> = choreo_events::Topic::ALL
            .iter()
            .map(|t| topics.name(*t))
            .collect();
        choreo_messaging::admin::ensure_topics(&kafka, &names)
            .await
            .context("creating topics")?;

        let service = |db: &TestDatabase| ServiceSettings {
            http_addr: local(0),
            database_url: db.url.clone(),
            database_max_connections: 5,
            registry_url: registry_url.clone(),
            kafka: kafka.clone(),
            log_format: Default::default(),
        };
        let mut spawn = |running: choreo_service::Running| {
            let addr = format!("http://{}", running.addr);
            tasks.push(tokio::spawn(running.wait()));
            addr
        };
        let order = spawn(
            choreo_order::start(
                choreo_order::Settings {
                    service: service(&databases.order),
                    max_wait_seconds: 60,
                },
                shutdown.clone(),
            )
            .await
            .context("starting order")?,
        );
        let inventory = spawn(
            choreo_inventory::start(
                choreo_inventory::Settings {
                    service: service(&databases.inventory),
                },
                shutdown.clone(),
            )
            .await
            .context("starting inventory")?,
        );
        let payment = spawn(
            choreo_payment::start(
                choreo_payment::Settings {
                    service: service(&databases.payment),
                },
                shutdown.clone(),
            )
            .await
            .context("starting payment")?,
        );
        let shipping = spawn(
            choreo_shipping::start(
                choreo_shipping::Settings {
                    service: service(&databases.shipping),
                },
                shutdown.clone(),
            )
            .await
            .context("starting shipping")?,
        );
        let edge = choreo_edge::start(
            choreo_edge::Settings {
                http_addr: local(0),
                order_url: order.clone(),
                inventory_url: inventory.clone(),
                payment_url: payment.clone(),
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
            edge: edge_url,
            registry: registry_url,
            order,
            inventory,
            payment,
            shipping,
            databases,
            http: reqwest::Client::new(),
            shutdown,
            tasks,
        })
    }

    /// Stops every service, then drops the test's databases.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        for db in self.databases.all() {
            db.drop_db().await?;
        }
        Ok(())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.edge)
    }

    /// Sets a product through the edge's admin API.
    pub async fn set_product(
        &self,
        sku: &str,
        price_cents: i64,
        available: i32,
    ) -> anyhow::Result<()> {
        let response = self
            .http
            .put(self.url(&format!("/v1/admin/products/{sku}")))
            .json(&json!({"name": format!("Product {sku}"), "price_cents": price_cents, "available": available}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "set product: {}",
            response.text().await?
        );
        Ok(())
    }

    /// Sets a wallet through the edge's admin API.
    pub async fn set_wallet(&self, customer: &str, balance_cents: i64) -> anyhow::Result<()> {
        let response = self
            .http
            .put(self.url(&format!("/v1/admin/customers/{customer}/wallet")))
            .json(&json!({"balance_cents": balance_cents}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "set wallet: {}",
            response.text().await?
        );
        Ok(())
    }

    pub async fn product(&self, sku: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(self.url(&format!("/v1/products/{sku}")))
            .send()
            .await?
            .json()
            .await?)
    }

    /// The wallet as the payment service reports it (the edge has no wallet
    /// read route yet).
    pub async fn wallet(&self, customer: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/wallets/{customer}", self.payment))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Reads an order through the edge, waiting up to `wait` seconds for a
    /// terminal status.
    pub async fn order(&self, id: &str, wait: u64) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(self.url(&format!("/v1/orders/{id}?wait={wait}")))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "get order: {}",
            response.status()
        );
        Ok(response.json().await?)
    }

    /// Waits until the order reaches `status`.
    pub async fn wait_for_status(&self, id: &str, status: &str) -> anyhow::Result<Value> {
        wait_until(
            &format!("order {id} to be {status}"),
            SAGA_DEADLINE,
            || async {
                let order = self.order(id, 5).await.ok()?;
                (order["status"] == status).then_some(order)
            },
        )
        .await
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
