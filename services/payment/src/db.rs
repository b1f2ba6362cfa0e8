//! The payment service's tables: wallets and payments.

use choreo_events::EventMeta;
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

/// Sets a wallet's balance, creating the wallet if needed; returns it with
/// what the change added to the balance.
pub(crate) async fn set_wallet(
    conn: &mut PgConnection,
    customer_id: &str,
    balance_cents: i64,
) -> Result<(Wallet, i64), sqlx::Error> {
    // A new wallet starts empty, so that the change is always "from the
    // locked row's balance to `balance_cents`", whoever created it first.
    ensure_wallet(conn, customer_id).await?;
    let before: i64 =
        sqlx::query_scalar("SELECT balance_cents FROM wallets WHERE customer_id = $1 FOR UPDATE")
            .bind(customer_id)
            .fetch_one(&mut *conn)
            .await?;
    let delta = balance_cents - before;
    let wallet = credit(conn, customer_id, delta).await?;
    Ok((wallet, delta))
}

async fn ensure_wallet(conn: &mut PgConnection, customer_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO wallets (customer_id, balance_cents) VALUES ($1, 0) ON CONFLICT (customer_id) DO NOTHING",
    )
    .bind(customer_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds `delta` (negative: takes it away) to the wallet.
async fn credit(
    conn: &mut PgConnection,
    customer_id: &str,
    delta: i64,
) -> Result<Wallet, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE wallets SET balance_cents = balance_cents + $2, updated_at = now() WHERE customer_id = $1
         RETURNING customer_id, balance_cents, currency",
    )
    .bind(customer_id)
    .bind(delta)
    .fetch_one(conn)
    .await?;
    wallet(row)
}

/// Records the admin change `event_id`; `false` when it is recorded already.
pub(crate) async fn record_wallet_change(
    conn: &mut PgConnection,
    event_id: Uuid,
    customer_id: &str,
    delta_cents: i64,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO wallet_changes (event_id, customer_id, delta_cents) VALUES ($1, $2, $3)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(customer_id)
    .bind(delta_cents)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Re-applies a published admin change as the amount it added: charges
/// and refunds interleave with it.
pub(crate) async fn reapply_wallet_change(
    conn: &mut PgConnection,
    customer_id: &str,
    delta_cents: i64,
) -> Result<(), sqlx::Error> {
    ensure_wallet(conn, customer_id).await?;
    credit(conn, customer_id, delta_cents).await?;
    Ok(())
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
    sqlx::query("UPDATE wallets SET balance_cents = balance_cents - $2, updated_at = now() WHERE customer_id = $1")
        .bind(customer_id)
        .bind(amount_cents)
        .execute(&mut *conn)
        .await?;
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
        Some(charged),
    )
    .await
}

/// Records a decision that moved no money: DECLINED or VOIDED.
pub(crate) async fn record_without_charge(
    conn: &mut PgConnection,
    order_id: Uuid,
    customer_id: &str,
    amount_cents: i64,
    status: &str,
) -> Result<(), sqlx::Error> {
    record(conn, order_id, customer_id, amount_cents, status, None).await
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
        "INSERT INTO payments (order_id, payment_id, customer_id, amount_cents, currency, status, charged_cents, completed_event)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(order_id)
    .bind(payment_id(order_id))
    .bind(customer_id)
    .bind(amount_cents)
    .bind(currency)
    .bind(status)
    .bind(charged_cents)
    .bind(completed)
    .execute(conn)
    .await?;
    Ok(())
}

/// Credits a COMPLETED payment back to its wallet and marks it REFUNDED.
pub(crate) async fn refund(
    conn: &mut PgConnection,
    order_id: Uuid,
    payment: &Payment,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE wallets SET balance_cents = balance_cents + $2, updated_at = now() WHERE customer_id = $1")
        .bind(&payment.customer_id)
        .bind(payment.charged_cents)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE payments SET status = 'REFUNDED', refunded_cents = charged_cents WHERE order_id = $1")
        .bind(order_id)
        .execute(conn)
        .await?;
    Ok(())
}
