//! The shipping service's HTTP API: a shipment by order id.

use crate::db::{self, Shipment};
use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};
use choreo_kit::HttpError;
use sqlx::PgPool;
use uuid::Uuid;

pub(crate) fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/shipments/{order_id}", get(get_shipment))
        .with_state(pool)
}

async fn get_shipment(
    State(pool): State<PgPool>,
    Path(order_id): Path<Uuid>,
) -> Result<Json<Shipment>, HttpError> {
    let mut conn = pool.acquire().await?;
    db::get_shipment(&mut conn, order_id)
        .await?
        .map(Json)
        .ok_or_else(|| HttpError::not_found(format!("no shipment for order {order_id}")))
}
