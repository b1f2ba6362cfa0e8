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

/// Records a batch's events as applied, with one statement, in the
/// caller's transaction: as [`record`] for each. Returns the ids recorded
/// now; the caller must not apply the others (applied before, or twice in
/// the batch: only an id's first entry is new).
///
/// # Errors
/// When the database fails.
pub async fn record_all(
    conn: &mut PgConnection,
    entries: &[(Uuid, &str, Source<'_>)],
) -> Result<std::collections::HashSet<Uuid>, sqlx::Error> {
    if entries.is_empty() {
        return Ok(Default::default());
    }
    let ids: Vec<Uuid> = entries.iter().map(|(id, ..)| *id).collect();
    let types: Vec<&str> = entries.iter().map(|(_, t, _)| *t).collect();
    let topics: Vec<&str> = entries.iter().map(|(.., s)| s.topic).collect();
    let partitions: Vec<i32> = entries.iter().map(|(.., s)| s.partition).collect();
    let offsets: Vec<i64> = entries.iter().map(|(.., s)| s.offset).collect();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO inbox (event_id, event_type, topic, partition, \"offset\")
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::bigint[])
         ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
    )
    .bind(&ids)
    .bind(&types)
    .bind(&topics)
    .bind(&partitions)
    .bind(&offsets)
    .fetch_all(conn)
    .await?;
    Ok(inserted.into_iter().collect())
}

/// Takes `event_ids` out of the inbox again, in the caller's transaction:
/// for events of a batch its handler ignored, which must leave nothing
/// behind (see [`crate::Outcome::Ignored`]).
///
/// # Errors
/// When the database fails.
pub async fn forget(conn: &mut PgConnection, event_ids: &[Uuid]) -> Result<(), sqlx::Error> {
    if !event_ids.is_empty() {
        sqlx::query("DELETE FROM inbox WHERE event_id = ANY($1)")
            .bind(event_ids)
            .execute(conn)
            .await?;
    }
    Ok(())
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
