//! What the messaging runtime's black-box tests share: a real broker, a real
//! schema registry on its own database, fresh topic names, and numbered
//! events whose order survives the trip through Kafka.

#![allow(dead_code, unreachable_pub)] // each test file uses its own subset

use anyhow::Context;
use choreo_events::{EventMeta, OrderLine, OrderPlaced, RegistryClient, ShippingAddress};
use choreo_messaging::{KafkaSettings, outbox};
use choreo_testkit::{Broker, TestDatabase, unique_name};
use sqlx::PgPool;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What a slow, loaded CI machine needs, not what a test expects.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A broker, a registry and topic names of the test's own.
pub struct Env {
    pub broker: Broker,
    pub kafka: KafkaSettings,
    pub registry_url: String,
    registry_db: TestDatabase,
    registry_stop: CancellationToken,
    registry_task: JoinHandle<()>,
}

impl Env {
    pub async fn start() -> anyhow::Result<Self> {
        choreo_telemetry::init_for_tests("messaging-tests");
        let broker = Broker::from_env().await?;
        let registry_db = TestDatabase::create("registry").await?;
        let registry_stop = CancellationToken::new();
        let registry = choreo_schema_registry::start(
            choreo_schema_registry::Settings {
                http_addr: "127.0.0.1:0".parse()?,
                database_url: registry_db.url.clone(),
                internal_auth: choreo_testkit::internal_auth(),
                ..Default::default()
            },
            registry_stop.clone(),
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
            ..Default::default()
        };
        let names = kafka.topics().all();
        match broker.mock() {
            Some(mock) => mock.create_topics(&names, kafka.partitions)?,
            None => choreo_messaging::admin::ensure_topics(&kafka, &names).await?,
        }
        Ok(Self {
            broker,
            kafka,
            registry_url,
            registry_db,
            registry_stop,
            registry_task,
        })
    }

    pub fn registry(&self) -> RegistryClient {
        RegistryClient::new(&self.registry_url, choreo_testkit::operator())
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.registry_stop.cancel();
        let _ = self.registry_task.await;
        self.registry_db.drop_db().await
    }
}

/// A database with the outbox and inbox tables.
pub async fn service_database(label: &str) -> anyhow::Result<(TestDatabase, PgPool)> {
    let db = TestDatabase::create(label).await?;
    let pool = PgPool::connect(&db.url).await?;
    choreo_messaging::migrate(&pool).await?;
    Ok((db, pool))
}

/// An `OrderPlaced` for `order_id` whose position in that order's stream is
/// `seq`, carried in the first line's quantity so that it survives the trip
/// through Kafka. Each gets a fresh event id: these are distinct events, not
/// re-handlings of one cause.
pub fn numbered_event(order_id: Uuid, seq: i32) -> OrderPlaced {
    OrderPlaced {
        meta: EventMeta {
            event_id: Uuid::new_v4(),
            ..EventMeta::first::<OrderPlaced>(order_id, "test")
        },
        order_id,
        customer_id: "customer-1".into(),
        lines: vec![OrderLine {
            sku: "SKU-1".into(),
            quantity: seq,
        }],
        shipping_address: ShippingAddress {
            name: "Ada Lovelace".into(),
            line1: "1 Analytical Way".into(),
            line2: None,
            city: "London".into(),
            postal_code: "N1 1AA".into(),
            country: "GB".into(),
        },
        idempotency_key: None,
    }
}

pub fn seq_of(event: &OrderPlaced) -> Option<i32> {
    event.lines.first().map(|l| l.quantity)
}

/// Enqueues `event` in a transaction of its own and commits it, as a service
/// does when it changes state.
pub async fn enqueue_committed(pool: &PgPool, event: &OrderPlaced) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    outbox::enqueue(&mut tx, event).await?;
    tx.commit().await?;
    Ok(())
}
