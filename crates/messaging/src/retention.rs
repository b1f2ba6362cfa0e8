//! Retention: the outbox and the inbox do not grow forever.
//!
//! A published outbox row has done its job once the broker acknowledged it;
//! it is kept a while only for operators to look at. An inbox row is what
//! makes a redelivered or replayed event a no-op, so it must outlive every
//! redelivery and replay that can still bring its event back: keep
//! `inbox_days` longer than the oldest offset a replay (`choreo replay`) will
//! be asked to start from. Beyond that window a replayed event is applied
//! again, and only the handlers' own state checks stand between it and a
//! second effect.
//!
//! Rows go in small batches, so a purge never holds long locks on tables
//! the consumer and relay are writing.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionSettings {
    /// Published outbox rows are deleted this many hours after publishing.
    pub outbox_hours: f64,
    /// Inbox rows are deleted this many days after their event was applied.
    pub inbox_days: f64,
    /// Seconds between purges.
    pub interval_seconds: f64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            outbox_hours: 24.0,
            inbox_days: 14.0,
            interval_seconds: 300.0,
        }
    }
}

/// Rows deleted by one purge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub outbox: u64,
    pub inbox: u64,
}

const BATCH: i64 = 1000;

/// Deletes published outbox rows and inbox rows older than the settings
/// allow. Unpublished outbox rows are never deleted.
///
/// # Errors
/// When the database fails; rows deleted by earlier batches stay deleted.
#[tracing::instrument(skip_all, err)]
pub async fn purge(pool: &PgPool, settings: &RetentionSettings) -> Result<Purged, sqlx::Error> {
    let outbox_age = settings.outbox_hours * 3600.0;
    let inbox_age = settings.inbox_days * 86_400.0;
    let mut purged = Purged::default();
    loop {
        let n = sqlx::query(
            "DELETE FROM outbox WHERE id IN (
                SELECT id FROM outbox
                WHERE published_at IS NOT NULL
                  AND published_at < now() - make_interval(secs => $1)
                LIMIT $2)",
        )
        .bind(outbox_age)
        .bind(BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        purged.outbox += n;
        if n < BATCH as u64 {
            break;
        }
    }
    loop {
        let n = sqlx::query(
            "DELETE FROM inbox WHERE event_id IN (
                SELECT event_id FROM inbox
                WHERE received_at < now() - make_interval(secs => $1)
                LIMIT $2)",
        )
        .bind(inbox_age)
        .bind(BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        purged.inbox += n;
        if n < BATCH as u64 {
            break;
        }
    }
    if purged != Purged::default() {
        tracing::info!(
            outbox = purged.outbox,
            inbox = purged.inbox,
            "retention purge"
        );
    }
    Ok(purged)
}

/// Purges every `interval_seconds` until `shutdown`. A failed purge is
/// logged and tried again at the next interval.
pub async fn purge_until(pool: PgPool, settings: RetentionSettings, shutdown: CancellationToken) {
    let every = Duration::from_secs_f64(settings.interval_seconds.max(1.0));
    loop {
        if let Err(e) = purge(&pool, &settings).await {
            tracing::warn!(error = %e, "retention purge failed; trying again later");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
