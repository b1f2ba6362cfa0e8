//! The provider's ledger: one row per charge key.

use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

/// A charge as the ledger holds it and the API answers it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub(crate) struct Charge {
    #[serde(rename = "id")]
    pub(crate) charge_key: String,
    pub(crate) order_id: Uuid,
    pub(crate) customer_id: String,
    pub(crate) amount_cents: i64,
    pub(crate) currency: String,
    /// CAPTURED, DECLINED, REFUNDED or VOIDED.
    pub(crate) status: String,
    pub(crate) reason: Option<String>,
    pub(crate) captured_cents: i64,
    pub(crate) refunded_cents: i64,
}

/// What a charge asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChargeRequest {
    pub(crate) order_id: Uuid,
    pub(crate) customer_id: String,
    pub(crate) amount_cents: i64,
    pub(crate) currency: String,
}

/// The reason the stand-in gives for the charges it declines.
pub(crate) const DECLINED: &str = "CARD_DECLINED";

const COLUMNS: &str = "charge_key, order_id, customer_id, amount_cents, currency, status, reason, \
                       captured_cents, refunded_cents";

/// Captures (or, when `decline`, declines) the charge `key`, unless the key
/// was used before: then the earlier charge is returned as it stands, with
/// `false` for "not new".
pub(crate) async fn charge(
    pool: &PgPool,
    key: &str,
    request: &ChargeRequest,
    decline: bool,
) -> Result<(Charge, bool), sqlx::Error> {
    let (status, reason, captured) = if decline {
        ("DECLINED", Some(DECLINED), 0)
    } else {
        ("CAPTURED", None, request.amount_cents)
    };
    let inserted = sqlx::query_as::<_, Charge>(&format!(
        "INSERT INTO charges (charge_key, order_id, customer_id, amount_cents, currency, status, reason, captured_cents)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (charge_key) DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(key)
    .bind(request.order_id)
    .bind(&request.customer_id)
    .bind(request.amount_cents)
    .bind(&request.currency)
    .bind(status)
    .bind(reason)
    .bind(captured)
    .fetch_optional(pool)
    .await?;
    match inserted {
        Some(charge) => Ok((charge, true)),
        None => Ok((
            get(pool, key).await?.ok_or(sqlx::Error::RowNotFound)?,
            false,
        )),
    }
}

/// Refunds the charge `key` in full. A key never charged gets a VOIDED
/// tombstone for `order_id`; a declined, voided or refunded one, or one
/// for another order, is returned as it stands (the caller refuses the
/// last).
pub(crate) async fn refund(
    pool: &PgPool,
    key: &str,
    order_id: Uuid,
) -> Result<Charge, sqlx::Error> {
    let tombstone = sqlx::query_as::<_, Charge>(&format!(
        "INSERT INTO charges (charge_key, order_id, customer_id, amount_cents, currency, status)
         VALUES ($1, $2, '', 0, '', 'VOIDED')
         ON CONFLICT (charge_key) DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(key)
    .bind(order_id)
    .fetch_optional(pool)
    .await?;
    if let Some(charge) = tombstone {
        return Ok(charge);
    }
    let refunded = sqlx::query_as::<_, Charge>(&format!(
        "UPDATE charges SET status = 'REFUNDED', refunded_cents = captured_cents, updated_at = now()
         WHERE charge_key = $1 AND status = 'CAPTURED' AND order_id = $2
         RETURNING {COLUMNS}"
    ))
    .bind(key)
    .bind(order_id)
    .fetch_optional(pool)
    .await?;
    match refunded {
        Some(charge) => Ok(charge),
        None => get(pool, key).await?.ok_or(sqlx::Error::RowNotFound),
    }
}

pub(crate) async fn get(pool: &PgPool, key: &str) -> Result<Option<Charge>, sqlx::Error> {
    sqlx::query_as::<_, Charge>(&format!(
        "SELECT {COLUMNS} FROM charges WHERE charge_key = $1"
    ))
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// The orders with a declined charge.
pub(crate) async fn declined_orders(pool: &PgPool) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT order_id FROM charges WHERE status = 'DECLINED' ORDER BY order_id",
    )
    .fetch_all(pool)
    .await
}

pub(crate) async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}
