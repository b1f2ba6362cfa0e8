//! Writing events to the outbox, inside the transaction that changes state.

use choreo_events::{Event, encode_datum};
use sqlx::PgConnection;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("encoding {record}")]
    Encode {
        record: &'static str,
        #[source]
        source: choreo_events::CodecError,
    },
    #[error("inserting {records} into the outbox")]
    Database {
        /// The records of the rows that were to be inserted.
        records: String,
        #[source]
        source: sqlx::Error,
    },
}

/// Adds `event` to the outbox in the caller's transaction, keyed by its order
/// id. An event whose id is already there is not added again: ids derive from
/// their cause, so this is the same event produced by re-handling that cause.
///
/// The row keeps the trace context of the caller's span (the handler of the
/// event that caused this one, or the request that placed the order), so
/// the relay publishes it as the next step of the same trace.
///
/// # Errors
/// When the event does not match its schema or the insert fails.
pub async fn enqueue<E: Event>(conn: &mut PgConnection, event: &E) -> Result<(), OutboxError> {
    let mut pending = Pending::default();
    pending.push(event)?;
    pending.write(conn).await
}

/// Events to add to the outbox with one statement: what a handler applying
/// a batch of events emits, written together once the batch is decided.
#[derive(Debug, Default)]
pub struct Pending {
    event_ids: Vec<uuid::Uuid>,
    topics: Vec<&'static str>,
    keys: Vec<String>,
    records: Vec<String>,
    payloads: Vec<Vec<u8>>,
    traceparents: Vec<Option<String>>,
}

impl Pending {
    /// Encodes `event` for the outbox, with the trace context of the span
    /// the caller runs in (as [`enqueue`]): push each event inside the span
    /// of the event that caused it.
    ///
    /// # Errors
    /// When the event does not match its schema.
    pub fn push<E: Event>(&mut self, event: &E) -> Result<(), OutboxError> {
        let payload = encode_datum(event).map_err(|source| OutboxError::Encode {
            record: E::NAME,
            source,
        })?;
        let meta = event.meta();
        self.event_ids.push(meta.event_id);
        self.topics.push(E::TOPIC.base_name());
        self.keys.push(meta.correlation_id.to_string());
        self.records.push(E::full_name());
        self.payloads.push(payload);
        self.traceparents
            .push(choreo_telemetry::current_traceparent());
        Ok(())
    }

    /// Inserts the events in the caller's transaction, in the order pushed,
    /// each one unless its id is there already (see [`enqueue`]).
    ///
    /// # Errors
    /// When the insert fails.
    pub async fn write(self, conn: &mut PgConnection) -> Result<(), OutboxError> {
        if self.event_ids.is_empty() {
            return Ok(());
        }
        // `WITH ORDINALITY` keeps the pushed order in the outbox's sequence,
        // which is the order the relay publishes in.
        sqlx::query(
            "INSERT INTO outbox (event_id, topic, message_key, record_name, payload, traceparent)
             SELECT event_id, topic, message_key, record_name, payload, traceparent
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[])
                  WITH ORDINALITY AS e(event_id, topic, message_key, record_name, payload, traceparent, n)
             ORDER BY n
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&self.event_ids)
        .bind(&self.topics)
        .bind(&self.keys)
        .bind(&self.records)
        .bind(&self.payloads)
        .bind(&self.traceparents)
        .execute(conn)
        .await
        .map_err(|source| OutboxError::Database {
            records: self.records.join(", "),
            source,
        })?;
        Ok(())
    }
}
