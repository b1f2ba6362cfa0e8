//! The payment service's HTTP API, called by the edge: reading and setting
//! wallets.

use crate::db::{self, Wallet};
use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};
use choreo_kit::HttpError;
use serde::Deserialize;
use sqlx::PgPool;

pub(crate) fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/wallets/{customer_id}", get(get_wallet).put(put_wallet))
        .with_state(pool)
}

async fn get_wallet(
    State(pool): State<PgPool>,
    Path(customer_id): Path<String>,
) -> Result<Json<Wallet>, HttpError> {
    let mut conn = pool.acquire().await.map_err(|e| HttpError::internal(&e))?;
    db::get_wallet(&mut conn, &customer_id)
        .await
        .map_err(|e| HttpError::internal(&e))?
        .map(Json)
        .ok_or_else(|| HttpError::not_found(format!("no wallet for customer {customer_id}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutWallet {
    balance_cents: i64,
}

#[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
async fn put_wallet(
    State(pool): State<PgPool>,
    Path(customer_id): Path<String>,
    Json(body): Json<PutWallet>,
) -> Result<Json<Wallet>, HttpError> {
    if body.balance_cents < 0 {
        return Err(HttpError::invalid("balance_cents must not be negative"));
    }
    let mut conn = pool.acquire().await.map_err(|e| HttpError::internal(&e))?;
    let wallet = db::set_wallet(&mut conn, &customer_id, body.balance_cents)
        .await
        .map_err(|e| HttpError::internal(&e))?;
    tracing::info!(customer_id = %customer_id, balance_cents = wallet.balance_cents, "wallet set");
    Ok(Json(wallet))
}
