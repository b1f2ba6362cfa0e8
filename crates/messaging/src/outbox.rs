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
    #[error("inserting {record} into the outbox")]
    Database {
        record: &'static str,
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
    let payload = encode_datum(event).map_err(|source| OutboxError::Encode {
        record: E::NAME,
        source,
    })?;
    let meta = event.meta();
    let traceparent = choreo_telemetry::current_traceparent();
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, message_key, record_name, payload, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(meta.event_id)
    .bind(E::TOPIC.base_name())
    .bind(meta.correlation_id.to_string())
    .bind(E::full_name())
    .bind(payload)
    .bind(traceparent)
    .execute(conn)
    .await
    .map_err(|source| OutboxError::Database {
        record: E::NAME,
        source,
    })?;
    Ok(())
}
