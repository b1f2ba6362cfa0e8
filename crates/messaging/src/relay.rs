//! The outbox relay: publishes committed outbox rows to Kafka and marks them.
//!
//! Rows go out in id order, enqueued to an idempotent producer before any is
//! awaited, so one key's events reach its partition in commit order without a
//! round trip per event. A row is marked only once the broker has
//! acknowledged it (`acks=all`); a crash in between publishes it again, and
//! consumers drop the copy by its event id.
//!
//! Marks are written in bulk, at most every [`MARK_EVERY`]: each batch's
//! acknowledged ids are kept in memory, left out of the next claims, and
//! marked together in one `UPDATE`. Under load a batch is only what committed
//! since the relay last woke (a row or two), and marking each batch cost a
//! write transaction apiece; in bulk the relays' marks cost next to nothing
//! per saga. The price is the crash window: a relay killed with unmarked rows
//! publishes up to `MARK_EVERY` of them again, which the consumers' inboxes
//! drop, as they drop any copy. The marks are written before the relay stops.
//!
//! Only one relay per database publishes at a time: each holds a session
//! advisory lock while it publishes, on a connection of its own. Replicas of
//! a service stand by and take over within a second of the holder stopping
//! or losing its connection (PostgreSQL releases the lock with the
//! session). Two relays publishing at once would not lose or duplicate
//! effects (consumers deduplicate) but would interleave one key's events.

use crate::{
    Health, KafkaSettings, MessagingError,
    backoff::backoff,
    headers::event_headers,
    producer::{self, Acknowledged, Producer},
};
use choreo_events::{RegistryClient, Topics, catalog, frame, subject};
use choreo_telemetry::error_chain;
use rdkafka::{message::Header, producer::FutureRecord};
use sqlx::{Connection, PgConnection, PgPool, Row, postgres::PgListener};
use std::{collections::HashMap, time::Duration};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Span, field::Empty};

const BATCH: i64 = 256;
/// The fallback when a notification is missed or the listener is down.
const POLL: Duration = Duration::from_millis(500);
/// The longest acknowledged rows wait in memory before they are marked.
pub const MARK_EVERY: Duration = Duration::from_millis(250);
/// Marked at once when this many are waiting, whatever their age.
const MARK_AT: usize = 4096;
/// How often a standby relay tries to take the lease.
const STANDBY: Duration = Duration::from_secs(1);
/// The advisory lock key of the relay lease ("choreo" in ASCII). Each
/// service has its own database, so one key serves them all.
const LEASE_KEY: i64 = 0x63_68_6f_72_65_6f;

pub struct Relay {
    pool: PgPool,
    producer: Producer,
    registry: RegistryClient,
    topics: Topics,
    schemas: HashMap<String, &'static str>,
    health: Health,
}

struct Row_ {
    id: i64,
    topic: String,
    key: String,
    record: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
    event_id: uuid::Uuid,
}

impl Row_ {
    /// The record's short name (`OrderPlaced`).
    fn event_type(&self) -> &str {
        self.record.rsplit('.').next().unwrap_or(&self.record)
    }
}

impl Relay {
    /// # Errors
    /// When the producer cannot be created.
    pub fn new(
        settings: &KafkaSettings,
        pool: PgPool,
        registry: RegistryClient,
        health: Health,
    ) -> Result<Self, MessagingError> {
        let schemas = catalog()
            .into_iter()
            .map(|(_, name, text)| (format!("{}.{name}", choreo_events::NAMESPACE), text))
            .collect();
        Ok(Self {
            pool,
            producer: producer::idempotent(settings)?,
            registry,
            topics: settings.topics(),
            schemas,
            health,
        })
    }

    /// Publishes until `shutdown`, then returns after the batch in flight and
    /// releases the lease.
    /// Failures (broker, registry or database down) are logged and retried
    /// with backoff; rows stay in the outbox until they are published.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut lease: Option<PgConnection> = None;
        let mut listener = None;
        let mut failures = 0u32;
        let mut standing_by = false;
        let mut unmarked = Unmarked::default();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            // Marking needs no lease: an acknowledged row is published,
            // whoever holds the outbox now.
            if unmarked.due_at().is_some_and(|due| due <= Instant::now()) {
                if let Err(error) = self.mark(&mut unmarked).await {
                    let error = error_chain(&error);
                    tracing::warn!(%error, "marking outbox rows published failed; retrying");
                    // Not again at once: the loop would spin on a database
                    // that is down.
                    unmarked.since = Some(Instant::now());
                }
            }
            if !self.holds(&mut lease).await {
                let wait = match self.acquire().await {
                    Ok(Some(conn)) => {
                        lease = Some(conn);
                        standing_by = false;
                        tracing::info!("outbox lease taken; publishing");
                        None
                    }
                    Ok(None) => {
                        // Standing by is healthy: the holder publishes.
                        if failures > 0 {
                            self.health.recover("relay");
                            failures = 0;
                        }
                        if !standing_by {
                            tracing::info!("another relay holds the outbox lease; standing by");
                            standing_by = true;
                        }
                        Some(STANDBY)
                    }
                    Err(e) => {
                        failures += 1;
                        let error = error_chain(&e);
                        tracing::warn!(%error, failures, "cannot take the outbox lease; retrying");
                        self.health.stall("relay", &error);
                        Some(backoff(failures))
                    }
                };
                if let Some(wait) = wait {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            }
            if listener.is_none() {
                listener = self.listen().await;
            }
            // A batch in flight is finished even when shutdown is asked
            // for, so that what it sent is marked and not sent again by the
            // next lease holder. Were the broker gone, the service's grace
            // period ends the wait.
            let outcome = self.publish_batch(&mut unmarked).await;
            match outcome {
                Ok(n) => {
                    if failures > 0 {
                        self.health.recover("relay");
                    }
                    failures = 0;
                    if n as i64 == BATCH {
                        continue;
                    }
                }
                Err(error) => {
                    failures += 1;
                    self.health.metrics().retried("relay");
                    let error = error_chain(&error);
                    tracing::warn!(%error, failures, "outbox relay failed; retrying");
                    self.health.stall("relay", &error);
                }
            }
            let wait = if failures == 0 {
                POLL
            } else {
                backoff(failures)
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                _ = sleep_until(unmarked.due_at()) => {}
                notified = wait_notification(&mut listener), if failures == 0 => {
                    if !notified {
                        listener = None;
                    }
                }
            }
        }
        // What was published is marked before the relay stops, so that the
        // next holder of the lease does not publish it again.
        if let Err(error) = self.mark(&mut unmarked).await {
            let error = error_chain(&error);
            tracing::warn!(%error, rows = unmarked.ids.len(), "could not mark published outbox rows; they will be published again");
        }
        if let Some(lease) = lease {
            // Closing the session releases the lock for a standby at once.
            let _ = lease.close().await;
        }
    }

    /// Takes the lease if no other relay holds it: a session advisory lock
    /// on a connection that lives as long as the lease. `None` when another
    /// relay holds it.
    async fn acquire(&self) -> Result<Option<PgConnection>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?.detach();
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEASE_KEY)
            .fetch_one(&mut conn)
            .await?;
        if taken {
            Ok(Some(conn))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Whether the lease is still held: its session still answers. A lost
    /// session has released the lock, and another relay may hold it now.
    async fn holds(&self, lease: &mut Option<PgConnection>) -> bool {
        let Some(conn) = lease else {
            return false;
        };
        if conn.ping().await.is_ok() {
            return true;
        }
        tracing::warn!("outbox lease lost with its database session");
        *lease = None;
        false
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen("choreo_outbox").await.ok()?;
        Some(listener)
    }

    /// Publishes up to one batch of unpublished rows, leaving out those
    /// published but not marked yet, and returns how many were published.
    /// Their ids join `unmarked`.
    ///
    /// # Errors
    /// When the database, registry or broker fails; rows published before the
    /// failure join `unmarked`, the rest stay for the next attempt.
    async fn publish_batch(&self, unmarked: &mut Unmarked) -> Result<usize, MessagingError> {
        let rows = sqlx::query(
            "SELECT id, event_id, topic, message_key, record_name, payload, traceparent
             FROM outbox WHERE published_at IS NULL AND id <> ALL($2) ORDER BY id LIMIT $1",
        )
        .bind(BATCH)
        .bind(&unmarked.ids)
        .fetch_all(&self.pool)
        .await
        .map_err(MessagingError::db("reading outbox"))?;
        if rows.is_empty() {
            return Ok(0);
        }
        let rows = rows
            .into_iter()
            .map(|r| {
                Ok(Row_ {
                    id: r.try_get("id")?,
                    event_id: r.try_get("event_id")?,
                    topic: r.try_get("topic")?,
                    key: r.try_get("message_key")?,
                    record: r.try_get("record_name")?,
                    payload: r.try_get("payload")?,
                    traceparent: r.try_get("traceparent")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(MessagingError::db("decoding outbox row"))?;

        // Enqueue everything first, in id order, then wait for acks.
        let mut pending = Vec::with_capacity(rows.len());
        let mut first_error = None;
        for row in &rows {
            let topic = format!("{}{}", self.topics.prefix, row.topic);
            let span = send_span(row, &topic);
            match self.enqueue(row, &topic, &span).await {
                Ok(delivery) => pending.push((row.id, delivery, span)),
                Err(e) => {
                    span.record("otel.status_code", "ERROR");
                    first_error = Some(e);
                    break;
                }
            }
        }
        let mut published = Vec::with_capacity(pending.len());
        // Each row's span ends when the broker acknowledges it.
        for (id, delivery, span) in pending {
            match delivery.await {
                Ok(()) => published.push(id),
                // The producer went away: shutting down.
                Err(rdkafka::error::KafkaError::Canceled) => break,
                Err(e) => {
                    span.record("otel.status_code", "ERROR");
                    first_error.get_or_insert(MessagingError::Kafka {
                        context: format!("publishing outbox row {id}"),
                        source: e,
                    });
                    break;
                }
            }
        }
        let count = published.len();
        if count > 0 {
            crate::fail_points::crash_point(crate::fail_points::RELAY_AFTER_PUBLISH);
            tracing::debug!(count, "outbox rows published");
            // Rows are acknowledged in id order, so the published ones are
            // the first of the batch.
            for row in &rows[..count] {
                self.health.metrics().published(&row.topic);
            }
            unmarked.add(published);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }

    /// Marks the acknowledged rows published, in one statement.
    ///
    /// # Errors
    /// When the database fails; the rows stay in `unmarked`.
    async fn mark(&self, unmarked: &mut Unmarked) -> Result<(), MessagingError> {
        if unmarked.ids.is_empty() {
            return Ok(());
        }
        sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
            .bind(&unmarked.ids)
            .execute(&self.pool)
            .await
            .map_err(MessagingError::db("marking outbox rows published"))?;
        tracing::debug!(count = unmarked.ids.len(), "outbox rows marked published");
        *unmarked = Unmarked::default();
        Ok(())
    }

    async fn enqueue(
        &self,
        row: &Row_,
        topic: &str,
        span: &Span,
    ) -> Result<Acknowledged, MessagingError> {
        let schema_text =
            self.schemas
                .get(&row.record)
                .ok_or_else(|| MessagingError::UnknownRecord {
                    record: row.record.clone(),
                })?;
        let schema_id = self
            .registry
            .register(&subject(topic, &row.record), schema_text)
            .await?;
        let value = frame(schema_id, &row.payload);
        let mut headers = event_headers(row.event_id, row.event_type(), row.id);
        // The consumer's span is a child of this send, itself a child of
        // the handler that enqueued the row. Without telemetry the row's own
        // context goes on unchanged.
        let traceparent = choreo_telemetry::traceparent(span).or_else(|| row.traceparent.clone());
        if let Some(tp) = &traceparent {
            headers = headers.insert(Header {
                key: choreo_telemetry::TRACEPARENT,
                value: Some(tp.as_str()),
            });
        }
        let record = FutureRecord::to(topic)
            .key(&row.key)
            .payload(&value)
            .headers(headers);
        self.producer
            .enqueue(record)
            .map_err(|e| MessagingError::Kafka {
                context: format!("enqueueing outbox row {} for {topic}", row.id),
                source: e,
            })
    }
}

/// The producer span of one outbox row, sent to `topic` (the prefixed
/// name), in the trace of the work that enqueued it (OpenTelemetry's
/// messaging conventions).
fn send_span(row: &Row_, topic: &str) -> Span {
    let span = tracing::info_span!(
        parent: None,
        "send",
        otel.name = %format_args!("send {topic}"),
        otel.kind = "producer",
        otel.status_code = Empty,
        event_type = row.event_type(),
        order_id = %row.key,
        trace_id = Empty,
    );
    for (key, value) in [
        ("messaging.system", "kafka"),
        ("messaging.operation.type", "send"),
        ("messaging.operation.name", "send"),
    ] {
        choreo_telemetry::attribute(&span, key, value);
    }
    choreo_telemetry::attribute(&span, "messaging.destination.name", topic.to_owned());
    choreo_telemetry::attribute(&span, "messaging.kafka.message.key", row.key.clone());
    choreo_telemetry::attribute(&span, "messaging.message.id", row.event_id.to_string());
    choreo_telemetry::continue_trace(&span, row.traceparent.as_deref());
    span
}

/// Rows the broker acknowledged that are not marked in the database yet.
#[derive(Default)]
struct Unmarked {
    ids: Vec<i64>,
    /// When the oldest of them was acknowledged.
    since: Option<Instant>,
}

impl Unmarked {
    fn add(&mut self, ids: Vec<i64>) {
        self.since.get_or_insert_with(Instant::now);
        self.ids.extend(ids);
    }

    /// When they must be marked: [`MARK_EVERY`] after the oldest, or now
    /// when [`MARK_AT`] are waiting; `None` when there are none.
    fn due_at(&self) -> Option<Instant> {
        let since = self.since?;
        Some(if self.ids.len() >= MARK_AT {
            since
        } else {
            since + MARK_EVERY
        })
    }
}

/// Sleeps until `at`; never resolves for `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `true` on a notification, `false` when the listener broke. Without a
/// listener it never resolves, leaving the poll timer in charge.
async fn wait_notification(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => l.recv().await.is_ok(),
        None => std::future::pending().await,
    }
}
