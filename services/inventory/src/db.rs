//! The inventory service's tables: products and reservations.

use serde::Serialize;
use sqlx::{PgConnection, Row, postgres::PgRow};
use uuid::Uuid;

/// A catalog entry with its stock, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub available: i32,
    pub reserved: i32,
}

fn product(row: PgRow) -> Result<Product, sqlx::Error> {
    Ok(Product {
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        price_cents: row.try_get("price_cents")?,
        currency: row.try_get("currency")?,
        available: row.try_get("available")?,
        reserved: row.try_get("reserved")?,
    })
}

const COLUMNS: &str = "sku, name, price_cents, currency, available, reserved";

pub(crate) async fn list_products(conn: &mut PgConnection) -> Result<Vec<Product>, sqlx::Error> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM products ORDER BY sku"))
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(product)
        .collect()
}

pub(crate) async fn get_product(
    conn: &mut PgConnection,
    sku: &str,
) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM products WHERE sku = $1"))
        .bind(sku)
        .fetch_optional(conn)
        .await?
        .map(product)
        .transpose()
}

/// Creates or replaces a product's name, price and free stock. Stock held by
/// reservations is not touched.
pub(crate) async fn upsert_product(
    conn: &mut PgConnection,
    sku: &str,
    name: &str,
    price_cents: i64,
    available: i32,
) -> Result<Product, sqlx::Error> {
    let row = sqlx::query(&format!(
        "INSERT INTO products (sku, name, price_cents, available) VALUES ($1, $2, $3, $4)
         ON CONFLICT (sku) DO UPDATE SET name = $2, price_cents = $3, available = $4, updated_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(sku)
    .bind(name)
    .bind(price_cents)
    .bind(available)
    .fetch_one(conn)
    .await?;
    product(row)
}

/// Locks the products with these SKUs, in SKU order so that concurrent
/// reservations cannot deadlock.
pub(crate) async fn lock_products(
    conn: &mut PgConnection,
    skus: &[String],
) -> Result<Vec<Product>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM products WHERE sku = ANY($1) ORDER BY sku FOR UPDATE"
    ))
    .bind(skus)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(product)
    .collect()
}

pub(crate) async fn reservation_exists(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("SELECT 1 FROM reservations WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(conn)
            .await?
            .is_some(),
    )
}

/// One reserved line: SKU, quantity, unit price.
pub(crate) struct Reserved<'a> {
    pub(crate) sku: &'a str,
    pub(crate) quantity: i32,
    pub(crate) unit_price_cents: i64,
}

pub(crate) async fn insert_reservation(
    conn: &mut PgConnection,
    order_id: Uuid,
    customer_id: &str,
    total_cents: i64,
    currency: &str,
    lines: &[Reserved<'_>],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reservations (order_id, customer_id, status, total_cents, currency)
         VALUES ($1, $2, 'RESERVED', $3, $4)",
    )
    .bind(order_id)
    .bind(customer_id)
    .bind(total_cents)
    .bind(currency)
    .execute(&mut *conn)
    .await?;
    for line in lines {
        sqlx::query(
            "INSERT INTO reservation_lines (order_id, sku, quantity, unit_price_cents) VALUES ($1, $2, $3, $4)",
        )
        .bind(order_id)
        .bind(line.sku)
        .bind(line.quantity)
        .bind(line.unit_price_cents)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE products SET available = available - $2, reserved = reserved + $2, updated_at = now()
             WHERE sku = $1",
        )
        .bind(line.sku)
        .bind(line.quantity)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
