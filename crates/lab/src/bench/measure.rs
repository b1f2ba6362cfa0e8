//! What a phase cost the database and the broker, counted by them rather
//! than by the bench: write transactions by PostgreSQL's transaction-id
//! counter, messages by the topics' high watermarks, and the size of the
//! messages the sagas wrote.

use anyhow::Context;
use choreo_messaging::KafkaSettings;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};
use sqlx::{Connection, PgConnection};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The next transaction id the server will hand out. Only a transaction
/// that writes is given one (a read-only one is not), so the difference
/// of two readings is the write transactions begun in between, on the
/// whole server: the bench's one-row-insert ceiling is one such each.
pub(crate) async fn next_xid(admin_url: &str) -> anyhow::Result<i64> {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
    let xid: i64 =
        sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
            .fetch_one(&mut conn)
            .await
            .context("reading the transaction-id counter")?;
    conn.close().await?;
    Ok(xid)
}

/// The charges the payment provider stand-in's ledger holds. Each charge is
/// one write transaction of the stand-in (one `INSERT`): a real provider's
/// writes are not on the platform's database server, so the bench counts
/// them apart.
pub(crate) async fn provider_charges(provider_url: &str) -> anyhow::Result<i64> {
    let mut conn = PgConnection::connect(provider_url)
        .await
        .with_context(|| format!("connecting to the provider's database at {provider_url}"))?;
    let charges: i64 = sqlx::query_scalar("SELECT count(*) FROM charges")
        .fetch_one(&mut conn)
        .await
        .context("counting the provider's charges")?;
    conn.close().await?;
    Ok(charges)
}

/// One partition's ends.
#[derive(Debug, Clone)]
pub(crate) struct Ends {
    pub topic: String,
    pub partition: i32,
    pub low: i64,
    pub high: i64,
}

/// The watermarks of every partition of `topics`.
pub(crate) async fn ends(kafka: &KafkaSettings, topics: Vec<String>) -> anyhow::Result<Vec<Ends>> {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let consumer = reader(&kafka)?;
        let mut out = Vec::new();
        for topic in topics {
            let metadata = consumer
                .fetch_metadata(Some(&topic), TIMEOUT)
                .with_context(|| format!("reading the partitions of {topic}"))?;
            let partitions = metadata
                .topics()
                .first()
                .map_or(0, |t| t.partitions().len());
            for partition in 0..i32::try_from(partitions)? {
                let (low, high) = consumer
                    .fetch_watermarks(&topic, partition, TIMEOUT)
                    .with_context(|| format!("reading the ends of {topic}/{partition}"))?;
                out.push(Ends {
                    topic: topic.clone(),
                    partition,
                    low,
                    high,
                });
            }
        }
        anyhow::Ok(out)
    })
    .await?
}

/// Messages written between two readings of the same topics.
pub(crate) fn written(before: &[Ends], after: &[Ends]) -> i64 {
    after
        .iter()
        .map(|a| {
            let was = before
                .iter()
                .find(|b| b.topic == a.topic && b.partition == a.partition)
                .map_or(0, |b| b.high);
            a.high - was
        })
        .sum()
}

/// The mean size (key and value) of the last `per_partition` messages of
/// each partition in `after` that were written since `before`: what the
/// sagas put on the broker, for a ceiling measured with the same size.
pub(crate) async fn mean_message_bytes(
    kafka: &KafkaSettings,
    before: &[Ends],
    after: &[Ends],
    per_partition: i64,
) -> anyhow::Result<Option<usize>> {
    let mut ranges = Vec::new();
    for a in after {
        let was = before
            .iter()
            .find(|b| b.topic == a.topic && b.partition == a.partition)
            .map_or(a.low, |b| b.high.max(a.low));
        if a.high > was {
            ranges.push((a.clone(), (a.high - per_partition).max(was)));
        }
    }
    if ranges.is_empty() {
        return Ok(None);
    }
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let consumer = reader(&kafka)?;
        let mut assignment = TopicPartitionList::new();
        for (ends, from) in &ranges {
            assignment.add_partition_offset(&ends.topic, ends.partition, Offset::Offset(*from))?;
        }
        consumer.assign(&assignment)?;
        let mut left: usize = ranges
            .iter()
            .map(|(e, from)| (e.high - from) as usize)
            .sum();
        let (mut bytes, mut count) = (0_usize, 0_usize);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while left > 0 {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the broker stopped answering while the bench read back its messages"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.context("reading back the sagas' messages")?;
            let in_range = ranges.iter().any(|(e, _)| {
                e.topic == message.topic()
                    && e.partition == message.partition()
                    && message.offset() < e.high
            });
            if in_range {
                bytes += message.payload_len() + message.key().map_or(0, <[u8]>::len);
                count += 1;
                left -= 1;
            }
        }
        anyhow::Ok(Some(bytes / count.max(1)))
    })
    .await?
}

fn reader(kafka: &KafkaSettings) -> anyhow::Result<BaseConsumer> {
    kafka
        .client_config_with_overrides()
        .set(
            "group.id",
            format!("choreo-bench-reader-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .create()
        .context("creating a broker reader")
}
