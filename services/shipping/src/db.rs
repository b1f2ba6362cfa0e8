//! The shipping service's table: shipments.

use choreo_events::ShippingAddress;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, Row, postgres::PgRow};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct Shipment {
    pub order_id: Uuid,
    pub shipment_id: Uuid,
    pub status: String,
    pub country: Option<String>,
    pub paid: bool,
    pub scheduled_at: Option<DateTime<Utc>>,
}

fn shipment(row: PgRow) -> Result<Shipment, sqlx::Error> {
    Ok(Shipment {
        order_id: row.try_get("order_id")?,
        shipment_id: row.try_get("shipment_id")?,
        status: row.try_get("status")?,
        country: row.try_get("country")?,
        paid: row.try_get("paid")?,
        scheduled_at: row.try_get("scheduled_at")?,
    })
}

/// The shipment's id derives from its order, so re-deriving it after a
/// restore yields the same id.
fn shipment_id(order_id: Uuid) -> Uuid {
    Uuid::new_v5(&order_id, b"shipment")
}

/// Records that the order is paid and where it ships to, creating the
/// shipment row if needed, and returns the row locked for the rest of the
/// transaction. Without an address the one already stored stays: a row a
/// shipping service older than the carried address filled from
/// `OrderPlaced`.
///
/// Shipping publishes nothing a replay re-applies: after a restore it
/// re-derives its rows from its inputs. So its rows take their inputs'
/// times, never the clock's (a shipment is created and scheduled as of the
/// payment it answers), and a re-derived row is the very row that was lost.
pub(crate) async fn record_paid(
    conn: &mut PgConnection,
    order_id: Uuid,
    address: Option<&ShippingAddress>,
    at: DateTime<Utc>,
) -> Result<Shipment, sqlx::Error> {
    let json = address
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let row = sqlx::query(
        "INSERT INTO shipments (order_id, shipment_id, shipping_address, country, paid, status, created_at)
         VALUES ($1, $2, $3, $4, true, 'WAITING', $5)
         ON CONFLICT (order_id) DO UPDATE SET paid = true,
             shipping_address = COALESCE($3, shipments.shipping_address),
             country = COALESCE($4, shipments.country)
         RETURNING order_id, shipment_id, status, country, paid, scheduled_at",
    )
    .bind(order_id)
    .bind(shipment_id(order_id))
    .bind(json)
    .bind(address.map(|a| a.country.as_str()))
    .bind(at)
    .fetch_one(conn)
    .await?;
    shipment(row)
}

/// Sets the shipment's status; `SCHEDULED` also stamps `scheduled_at` with
/// `at`, the time of the payment it answers.
pub(crate) async fn set_status(
    conn: &mut PgConnection,
    order_id: Uuid,
    status: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE shipments SET status = $2,
             scheduled_at = CASE WHEN $2 = 'SCHEDULED' THEN $3 ELSE scheduled_at END
         WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(status)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The order's shipment, locked; created as CANCELLED if shipping never
/// heard of the order, so that nothing is scheduled for it later.
pub(crate) async fn lock_or_tombstone(
    conn: &mut PgConnection,
    order_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Shipment, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO shipments (order_id, shipment_id, status, created_at) VALUES ($1, $2, 'CANCELLED', $3)
         ON CONFLICT (order_id) DO UPDATE SET order_id = EXCLUDED.order_id
         RETURNING order_id, shipment_id, status, country, paid, scheduled_at",
    )
    .bind(order_id)
    .bind(shipment_id(order_id))
    .bind(at)
    .fetch_one(conn)
    .await?;
    shipment(row)
}

pub(crate) async fn get_shipment(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Shipment>, sqlx::Error> {
    sqlx::query("SELECT order_id, shipment_id, status, country, paid, scheduled_at FROM shipments WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(conn)
        .await?
        .map(shipment)
        .transpose()
}
