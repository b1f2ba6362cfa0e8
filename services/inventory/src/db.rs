//! The inventory service's products, as its API and admin changes read and
//! write them. Reservations, and the stock they move, are `stock`'s.

use choreo_events::EventMeta;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row, postgres::PgRow};

pub use choreo_contract::catalog::Product;

fn product(row: PgRow) -> Result<Product, sqlx::Error> {
    Ok(Product {
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        price_cents: row.try_get("price_cents")?,
        currency: row.try_get("currency")?,
        available: row.try_get("available")?,
        reserved: row.try_get("reserved")?,
        shipped: row.try_get("shipped")?,
    })
}

const COLUMNS: &str = "sku, name, price_cents, currency, available, reserved, shipped";

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
/// reservations is not touched; the change in free stock is counted as stock
/// put on (or taken off) the shelf, and returned with the product. `at` is
/// the time of the `ProductSet` that publishes the change.
pub(crate) async fn set_product(
    conn: &mut PgConnection,
    sku: &str,
    name: &str,
    price_cents: i64,
    available: i32,
    at: DateTime<Utc>,
) -> Result<(Product, i32), sqlx::Error> {
    // A new product starts empty, so that the change is always "from the
    // locked row's free stock to `available`", whoever created it first.
    ensure_product(conn, sku, name, price_cents, at).await?;
    let before: i32 =
        sqlx::query_scalar("SELECT available FROM products WHERE sku = $1 FOR UPDATE")
            .bind(sku)
            .fetch_one(&mut *conn)
            .await?;
    let delta = available - before;
    let product = update_product(conn, sku, name, price_cents, delta, at).await?;
    Ok((product, delta))
}

async fn ensure_product(
    conn: &mut PgConnection,
    sku: &str,
    name: &str,
    price_cents: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO products (sku, name, price_cents, available, stocked_total, updated_at)
         VALUES ($1, $2, $3, 0, 0, $4)
         ON CONFLICT (sku) DO NOTHING",
    )
    .bind(sku)
    .bind(name)
    .bind(price_cents)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets name and price and moves `delta` onto (or off) the shelf.
///
/// Every change to a row of this service is stamped with the time of the
/// event that tells of it (its own, or the input it answers), never the
/// clock's, so that a replay after a restore writes the very same rows. A
/// product's `updated_at` is its latest change's, whatever order a replay
/// applies them in (they come from several partitions).
async fn update_product(
    conn: &mut PgConnection,
    sku: &str,
    name: &str,
    price_cents: i64,
    delta: i32,
    at: DateTime<Utc>,
) -> Result<Product, sqlx::Error> {
    let row = sqlx::query(&format!(
        "UPDATE products SET name = $2, price_cents = $3, available = available + $4,
             stocked_total = stocked_total + $4, updated_at = GREATEST(updated_at, $5)
         WHERE sku = $1 RETURNING {COLUMNS}"
    ))
    .bind(sku)
    .bind(name)
    .bind(price_cents)
    .bind(delta)
    .bind(at)
    .fetch_one(conn)
    .await?;
    product(row)
}

/// Records the admin change `change` (its `ProductSet`'s envelope); `false`
/// when it is recorded already.
pub(crate) async fn record_product_change(
    conn: &mut PgConnection,
    change: &EventMeta,
    sku: &str,
    stock_delta: i32,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO product_changes (event_id, sku, stock_delta, applied_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(change.event_id)
    .bind(sku)
    .bind(stock_delta)
    .bind(change.occurred_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Re-applies a published admin change: its name and price, and its stock
/// as the delta it moved (reservations and releases interleave with it).
pub(crate) async fn reapply_product_change(
    conn: &mut PgConnection,
    sku: &str,
    name: &str,
    price_cents: i64,
    stock_delta: i32,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    ensure_product(conn, sku, name, price_cents, at).await?;
    update_product(conn, sku, name, price_cents, stock_delta, at).await?;
    Ok(())
}
