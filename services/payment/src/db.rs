//! The payment service's tables: wallets and payments.

use choreo_events::EventMeta;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row, postgres::PgRow};
use uuid::Uuid;

pub use choreo_contract::wallet::Wallet;

fn wallet(row: PgRow) -> Result<Wallet, sqlx::Error> {
    Ok(Wallet {
        customer_id: row.try_get("customer_id")?,
        balance_cents: row.try_get("balance_cents")?,
        currency: row.try_get("currency")?,
    })
}

pub(crate) async fn get_wallet(
    conn: &mut PgConnection,
    customer_id: &str,
) -> Result<Option<Wallet>, sqlx::Error> {
    sqlx::query("SELECT customer_id, balance_cents, currency FROM wallets WHERE customer_id = $1")
        .bind(customer_id)
        .fetch_optional(conn)
        .await?
        .map(wallet)
        .transpose()
}

/// Sets a wallet's balance as of `at` (the `WalletSet` that publishes the
/// change), creating the wallet if needed; returns it with what the change
/// added to the balance.
pub(crate) async fn set_wallet(
    conn: &mut PgConnection,
    customer_id: &str,
    balance_cents: i64,
    at: DateTime<Utc>,
) -> Result<(Wallet, i64), sqlx::Error> {
    // A new wallet starts empty, so that the change is always "from the
    // locked row's balance to `balance_cents`", whoever created it first.
    ensure_wallet(conn, customer_id, at).await?;
    let before: i64 =
        sqlx::query_scalar("SELECT balance_cents FROM wallets WHERE customer_id = $1 FOR UPDATE")
            .bind(customer_id)
            .fetch_one(&mut *conn)
            .await?;
    let delta = balance_cents - before;
    let wallet = credit(conn, customer_id, delta, at)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok((wallet, delta))
}

/// Creates an empty wallet as of `at`, if there is none.
async fn ensure_wallet(
    conn: &mut PgConnection,
    customer_id: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO wallets (customer_id, balance_cents, updated_at) VALUES ($1, 0, $2)
         ON CONFLICT (customer_id) DO NOTHING",
    )
    .bind(customer_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds `delta` (negative: takes it away) to the wallet, changed as of
/// `at`: the time of the event that tells of the change, never the clock's,
/// so that a replay after a restore writes the very same row. A wallet's
/// `updated_at` is its latest change's, whatever order a replay applies
/// the changes in (they come from several partitions). `None` when the
/// customer has no wallet: nothing changed.
async fn credit(
    conn: &mut PgConnection,
    customer_id: &str,
    delta: i64,
    at: DateTime<Utc>,
) -> Result<Option<Wallet>, sqlx::Error> {
    sqlx::query(
        "UPDATE wallets SET balance_cents = balance_cents + $2, updated_at = GREATEST(updated_at, $3) WHERE customer_id = $1
         RETURNING customer_id, balance_cents, currency",
    )
    .bind(customer_id)
    .bind(delta)
    .bind(at)
    .fetch_optional(conn)
    .await?
    .map(wallet)
    .transpose()
}

/// Records the admin change `change` (its `WalletSet`'s envelope); `false`
/// when it is recorded already.
pub(crate) async fn record_wallet_change(
    conn: &mut PgConnection,
    change: &EventMeta,
    customer_id: &str,
    delta_cents: i64,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO wallet_changes (event_id, customer_id, delta_cents, applied_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(change.event_id)
    .bind(customer_id)
    .bind(delta_cents)
    .bind(change.occurred_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// The wallet, locked for the rest of the transaction.
pub(crate) async fn lock_wallet(
    conn: &mut PgConnection,
    customer_id: &str,
) -> Result<Option<Wallet>, sqlx::Error> {
    sqlx::query("SELECT customer_id, balance_cents, currency FROM wallets WHERE customer_id = $1 FOR UPDATE")
        .bind(customer_id)
        .fetch_optional(conn)
        .await?
        .map(wallet)
        .transpose()
}

/// The order's payment as this service recorded it.
pub(crate) struct Payment {
    pub(crate) payment_id: Uuid,
    pub(crate) customer_id: String,
    pub(crate) charged_cents: i64,
    pub(crate) currency: String,
    pub(crate) status: String,
    /// The envelope of the `PaymentCompleted` that announced the charge.
    pub(crate) completed_event: Option<EventMeta>,
}

/// The order's payment row, locked for the rest of the transaction.
pub(crate) async fn lock_payment(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Payment>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT payment_id, customer_id, charged_cents, currency, status, completed_event
         FROM payments WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(Payment {
            payment_id: r.try_get("payment_id")?,
            customer_id: r.try_get("customer_id")?,
            charged_cents: r.try_get("charged_cents")?,
            currency: r.try_get("currency")?,
            status: r.try_get("status")?,
            completed_event: r
                .try_get::<Option<serde_json::Value>, _>("completed_event")?
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        })
    })
    .transpose()
}

/// The stored decision (status) of each of `orders` that has one, read
/// without a lock: a caller counts only on what never changes again.
pub(crate) async fn decisions(
    conn: &mut PgConnection,
    orders: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, String>, sqlx::Error> {
    if orders.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT order_id, status FROM payments WHERE order_id = ANY($1)")
            .bind(orders)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().collect())
}

/// The payment's id derives from its order, so re-deriving the charge after
/// a restore yields the same id.
pub(crate) fn payment_id(order_id: Uuid) -> Uuid {
    Uuid::new_v5(&order_id, b"payment")
}

/// Debits the wallet and records the payment as COMPLETED, announced by the
/// `PaymentCompleted` of envelope `completed`.
pub(crate) async fn charge(
    conn: &mut PgConnection,
    order_id: Uuid,
    customer_id: &str,
    amount_cents: i64,
    currency: &str,
    completed: &EventMeta,
) -> Result<(), sqlx::Error> {
    credit(conn, customer_id, -amount_cents, completed.occurred_at).await?;
    let charged = Charged {
        currency,
        completed,
    };
    record(
        conn,
        order_id,
        customer_id,
        amount_cents,
        "COMPLETED",
        completed.occurred_at,
        Some(charged),
    )
    .await
}

/// Records a decision that moved no money, DECLINED or VOIDED, made as of
/// `at`: the time of the `PaymentFailed` that announces a decline, or of
/// the event a void answers.
pub(crate) async fn record_without_charge(
    conn: &mut PgConnection,
    order_id: Uuid,
    customer_id: &str,
    amount_cents: i64,
    status: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    record(conn, order_id, customer_id, amount_cents, status, at, None).await
}

/// What a payment that moved money records besides its amount.
struct Charged<'a> {
    currency: &'a str,
    /// The envelope of the `PaymentCompleted` that announced it.
    completed: &'a EventMeta,
}

async fn record(
    conn: &mut PgConnection,
    order_id: Uuid,
    customer_id: &str,
    amount_cents: i64,
    status: &str,
    at: DateTime<Utc>,
    charged: Option<Charged<'_>>,
) -> Result<(), sqlx::Error> {
    let completed = charged
        .as_ref()
        .map(|c| serde_json::to_value(c.completed))
        .transpose()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let currency = charged.as_ref().map_or("EUR", |c| c.currency);
    let charged_cents = if charged.is_some() { amount_cents } else { 0 };
    sqlx::query(
        "INSERT INTO payments (order_id, payment_id, customer_id, amount_cents, currency, status, charged_cents, completed_event, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(order_id)
    .bind(payment_id(order_id))
    .bind(customer_id)
    .bind(amount_cents)
    .bind(currency)
    .bind(status)
    .bind(charged_cents)
    .bind(completed)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Credits a COMPLETED payment back to its wallet and marks it REFUNDED, as
/// of `at` (the `PaymentRefunded` that announces it).
pub(crate) async fn refund(
    conn: &mut PgConnection,
    order_id: Uuid,
    payment: &Payment,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    credit(conn, &payment.customer_id, payment.charged_cents, at).await?;
    sqlx::query("UPDATE payments SET status = 'REFUNDED', refunded_cents = charged_cents WHERE order_id = $1")
        .bind(order_id)
        .execute(conn)
        .await?;
    Ok(())
}
