//! The payment service's tables: wallets and payments.

use serde::Serialize;
use sqlx::{PgConnection, Row, postgres::PgRow};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct Wallet {
    pub customer_id: String,
    pub balance_cents: i64,
    pub currency: String,
}

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

/// Sets a wallet's balance, creating the wallet if needed.
pub(crate) async fn set_wallet(
    conn: &mut PgConnection,
    customer_id: &str,
    balance_cents: i64,
) -> Result<Wallet, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO wallets (customer_id, balance_cents) VALUES ($1, $2)
         ON CONFLICT (customer_id) DO UPDATE SET balance_cents = $2, updated_at = now()
         RETURNING customer_id, balance_cents, currency",
    )
    .bind(customer_id)
    .bind(balance_cents)
    .fetch_one(conn)
    .await?;
    wallet(row)
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

pub(crate) async fn payment_exists(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT 1 FROM payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(conn)
        .await?
        .is_some())
}

/// Debits the wallet and records the payment.
pub(crate) async fn charge(
    conn: &mut PgConnection,
    order_id: Uuid,
    payment_id: Uuid,
    customer_id: &str,
    amount_cents: i64,
    currency: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE wallets SET balance_cents = balance_cents - $2, updated_at = now() WHERE customer_id = $1")
        .bind(customer_id)
        .bind(amount_cents)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO payments (order_id, payment_id, customer_id, amount_cents, currency, status)
         VALUES ($1, $2, $3, $4, $5, 'COMPLETED')",
    )
    .bind(order_id)
    .bind(payment_id)
    .bind(customer_id)
    .bind(amount_cents)
    .bind(currency)
    .execute(conn)
    .await?;
    Ok(())
}
