//! Idempotency keys for placing orders.
//!
//! A client that did not get an answer retries `POST /orders` with the same
//! `Idempotency-Key`: the retry must return the order the first attempt
//! placed, never place a second one, even when the attempts run at the same
//! time or the edge restarted in between. The key is claimed in the same
//! transaction that inserts the order, so a key exists exactly when its
//! order does. Concurrent attempts meet on the key's primary key: the
//! second `INSERT … ON CONFLICT DO NOTHING` waits for the first
//! transaction, then finds its committed key and replays it (or, if the
//! first rolled back, claims the key itself).
//!
//! Keys belong to a customer (two customers may use the same key) and live
//! for the configured lifetime; after that the key is free again.

use choreo_kit::CancellationToken;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// What claiming a key found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The key is new: this request places `order_id`.
    New,
    /// The key placed this order with the same request before.
    Replay(Uuid),
    /// The key was used with a different request.
    Reused,
}

/// Claims `key` for `customer`'s `request`, which is about to place
/// `order_id` at `placed_at` (its `OrderPlaced`'s time, which [`restore`]
/// remembers it from after a restore), inside the order's transaction.
pub(crate) async fn claim(
    tx: &mut PgConnection,
    customer: &str,
    key: &str,
    request: &Value,
    order_id: Uuid,
    placed_at: DateTime<Utc>,
    lifetime: Duration,
) -> Result<Claim, sqlx::Error> {
    // Between our failed insert and the look-up, the purge (or a request
    // that already sees the key expired) may delete the key; then it is
    // free, and the claim starts over. Twice is plenty: a key only expires
    // once.
    for _ in 0..3 {
        if let Some(claim) =
            try_claim(tx, customer, key, request, order_id, placed_at, lifetime).await?
        {
            return Ok(claim);
        }
    }
    Err(sqlx::Error::RowNotFound)
}

/// Re-learns the key an order was placed with, from its `OrderPlaced`,
/// after the database was restored from a backup that predates the order:
/// it is remembered from the time the order was placed, so it expires when
/// it would have. A key already held is left as it is; held by another
/// order (a new one the restored service accepted under the same key before
/// the replay), it is said loudly: that customer now has two orders.
pub(crate) async fn restore(
    tx: &mut PgConnection,
    customer: &str,
    key: &str,
    request: &Value,
    order_id: Uuid,
    placed_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO idempotency_keys (customer_id, key, request, order_id, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(customer)
    .bind(key)
    .bind(request)
    .bind(order_id)
    .bind(placed_at)
    .execute(&mut *tx)
    .await?;
    let holder: Option<Uuid> = sqlx::query_scalar(
        "SELECT order_id FROM idempotency_keys WHERE customer_id = $1 AND key = $2",
    )
    .bind(customer)
    .bind(key)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(other) = holder.filter(|h| *h != order_id) {
        tracing::error!(%order_id, other_order = %other, customer, key, "the idempotency key this order was placed with now belongs to another order, placed after the restore and before the replay");
    }
    Ok(())
}

async fn try_claim(
    tx: &mut PgConnection,
    customer: &str,
    key: &str,
    request: &Value,
    order_id: Uuid,
    placed_at: DateTime<Utc>,
    lifetime: Duration,
) -> Result<Option<Claim>, sqlx::Error> {
    // An expired key is free again, whether or not the purge got to it.
    sqlx::query(
        "DELETE FROM idempotency_keys
         WHERE customer_id = $1 AND key = $2 AND created_at < now() - make_interval(secs => $3)",
    )
    .bind(customer)
    .bind(key)
    .bind(lifetime.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (customer_id, key, request, order_id, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(customer)
    .bind(key)
    .bind(request)
    .bind(order_id)
    .bind(placed_at)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if claimed {
        return Ok(Some(Claim::New));
    }
    let earlier: Option<(Uuid, bool)> = sqlx::query_as(
        "SELECT order_id, request = $3 FROM idempotency_keys WHERE customer_id = $1 AND key = $2",
    )
    .bind(customer)
    .bind(key)
    .bind(request)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(earlier.map(|(earlier, same)| {
        if same {
            Claim::Replay(earlier)
        } else {
            Claim::Reused
        }
    }))
}

/// Deletes expired keys every tenth of their lifetime (at most every five
/// minutes) until `shutdown`.
pub(crate) async fn purge_until(pool: PgPool, lifetime: Duration, shutdown: CancellationToken) {
    let every = (lifetime / 10).clamp(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let purged = sqlx::query(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
        )
        .bind(lifetime.as_secs_f64())
        .execute(&pool)
        .await;
        match purged {
            Ok(r) if r.rows_affected() > 0 => {
                tracing::debug!(count = r.rows_affected(), "expired idempotency keys purged");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed; retrying"),
        }
    }
}
