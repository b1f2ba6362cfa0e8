//! The inbox: which events this service has already applied.

use sqlx::PgConnection;
use uuid::Uuid;

/// Where an event was read from, recorded for operators tracing a replay.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// Records `event_id` as applied, in the caller's transaction. Returns `false`
/// when it was already recorded, in which case the caller must not apply the
/// event's effect again.
///
/// # Errors
/// When the database fails.
pub async fn record(
    conn: &mut PgConnection,
    event_id: Uuid,
    event_type: &str,
    source: Source<'_>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO inbox (event_id, event_type, topic, partition, \"offset\") VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(event_type)
    .bind(source.topic)
    .bind(source.partition)
    .bind(source.offset)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Which of `event_ids` the inbox holds: events applied before.
///
/// # Errors
/// When the database fails.
pub async fn applied_among(
    pool: &sqlx::PgPool,
    event_ids: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, sqlx::Error> {
    if event_ids.is_empty() {
        return Ok(Default::default());
    }
    let found: Vec<Uuid> =
        sqlx::query_scalar("SELECT event_id FROM inbox WHERE event_id = ANY($1)")
            .bind(event_ids)
            .fetch_all(pool)
            .await?;
    Ok(found.into_iter().collect())
}
