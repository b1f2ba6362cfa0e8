//! Reading the shipping service's table for its API; the handlers change
//! it through `shipments`.

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

/// The order's shipment, as the API shows it.
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
