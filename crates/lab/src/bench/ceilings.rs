//! The machine's own limits, the figures a saga rate is judged against:
//! how many one-row transactions PostgreSQL commits per second at a given
//! concurrency, and how many messages of a given size the broker carries
//! from producer to consumer per second.

use anyhow::Context;
use choreo_messaging::KafkaSettings;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    producer::{FutureProducer, FutureRecord},
};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection, postgres::PgPoolOptions};
use std::time::{Duration, Instant};

/// PostgreSQL's commit rate for a one-row insert transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CommitCeiling {
    pub concurrency: usize,
    pub transactions: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The server's `synchronous_commit`: `on` means each commit waited
    /// for its WAL flush.
    pub synchronous_commit: String,
    /// The scratch database, dropped at the end.
    pub database: String,
}

/// The broker's produce-to-consume rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BrokerCeiling {
    pub messages: u64,
    pub message_bytes: usize,
    pub seconds: f64,
    pub per_second: f64,
    /// The scratch topic; left on the broker (Choreo never deletes topics).
    pub topic: String,
}

/// Commits one-row insert transactions from `concurrency` connections for
/// `duration`, in a database of its own that it drops afterwards. Every
/// counted commit is checked to be a row.
pub(crate) async fn commit_rate(
    admin_url: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<CommitCeiling> {
    let database = format!(
        "choreo_bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let url = choreo_platform::setup::database_url(admin_url, &database);
    // Not `setup::create_databases`, which reports on stdout (here the
    // JSON report's).
    let mut admin = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
    sqlx::query(&format!("CREATE DATABASE \"{database}\""))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating {database}"))?;
    admin.close().await?;
    let measured = measure_commits(&url, concurrency, duration).await;
    // Dropped whatever happened, so that a failed run leaves nothing.
    let dropped =
        choreo_platform::setup::drop_databases(admin_url, std::slice::from_ref(&database)).await;
    let (transactions, seconds, latencies, synchronous_commit) = measured?;
    dropped?;
    let latency = super::stats::Latency::of(&latencies);
    Ok(CommitCeiling {
        concurrency,
        transactions,
        seconds,
        per_second: transactions as f64 / seconds,
        p50_ms: latency.p50_ms,
        p99_ms: latency.p99_ms,
        synchronous_commit,
        database,
    })
}

async fn measure_commits(
    url: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<(u64, f64, Vec<Duration>, String)> {
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(concurrency)?)
        .connect(url)
        .await?;
    sqlx::query(
        "CREATE TABLE bench_commit (id bigserial PRIMARY KEY, payload bytea NOT NULL,
         at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&pool)
    .await?;
    let synchronous_commit: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&pool)
        .await?;
    let payload = vec![0x5a_u8; 64];
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let mut conn = pool.acquire().await?;
        let payload = payload.clone();
        workers.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let began = Instant::now();
                let mut tx = conn.begin().await?;
                sqlx::query("INSERT INTO bench_commit (payload) VALUES ($1)")
                    .bind(&payload)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                latencies.push(began.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = workers.join_next().await {
        latencies.extend(done??);
    }
    let seconds = start.elapsed().as_secs_f64();
    let transactions = latencies.len() as u64;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_commit")
        .fetch_one(&pool)
        .await?;
    anyhow::ensure!(
        u64::try_from(rows)? == transactions,
        "{transactions} commits counted but {rows} rows committed"
    );
    pool.close().await;
    Ok((transactions, seconds, latencies, synchronous_commit))
}

/// Produces `messages` messages of `message_bytes` bytes to a new topic
/// while a consumer reads them back from its start; the rate is from the
/// first send to the last message received.
pub(crate) async fn broker_rate(
    kafka: &KafkaSettings,
    messages: u64,
    message_bytes: usize,
) -> anyhow::Result<BrokerCeiling> {
    let topic = format!(
        "{}bench.ceiling.{}",
        kafka.topic_prefix,
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    choreo_messaging::admin::ensure_topics(kafka, std::slice::from_ref(&topic))
        .await
        .with_context(|| format!("creating {topic} on {}", kafka.bootstrap_servers))?;

    // Assigned, not subscribed: no consumer group to join, so the
    // measurement is the broker's, not a rebalance's.
    let consumer: StreamConsumer = kafka
        .client_config_with_overrides()
        .set("group.id", format!("{topic}.reader"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut partitions = TopicPartitionList::new();
    for partition in 0..kafka.partitions {
        partitions.add_partition_offset(&topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&partitions)?;
    let producer: FutureProducer = kafka.client_config_with_overrides().create()?;

    let start = Instant::now();
    let reader = tokio::spawn(async move {
        let mut received = 0_u64;
        while received < messages {
            let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
                .await
                .context("no message for 30 s")??;
            anyhow::ensure!(message.payload().map(<[u8]>::len) == Some(message_bytes));
            received += 1;
        }
        anyhow::Ok(start.elapsed())
    });
    let payload = vec![0xa5_u8; message_bytes];
    // Enqueued without waiting for the broker (librdkafka batches); when
    // its queue is full, the oldest send is awaited first.
    let mut pending = std::collections::VecDeque::new();
    for i in 0..messages {
        let key = i.to_be_bytes();
        loop {
            let record = FutureRecord::to(&topic).key(&key[..]).payload(&payload);
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push_back(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    let oldest = pending.pop_front().context("the producer queue is full")?;
                    delivered(oldest).await?;
                }
                Err((e, _)) => return Err(e).context("producing"),
            }
        }
    }
    for delivery in pending {
        delivered(delivery).await?;
    }
    let elapsed = reader.await??;
    let seconds = elapsed.as_secs_f64();
    Ok(BrokerCeiling {
        messages,
        message_bytes,
        seconds,
        per_second: messages as f64 / seconds,
        topic,
    })
}

async fn delivered(delivery: rdkafka::producer::DeliveryFuture) -> anyhow::Result<()> {
    delivery
        .await
        .context("the producer went away")?
        .map_err(|(e, _)| e)
        .context("producing")?;
    Ok(())
}
