//! The payment service's HTTP API, called by the edge: reading and setting
//! wallets (a change is published as `WalletSet`).

use crate::db::{self, Wallet};
use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};
use choreo_contract::wallet::WalletUpdate;
use choreo_events::{EventMeta, WalletSet};
use choreo_kit::HttpError;
use choreo_messaging::outbox;
use sqlx::PgPool;
use uuid::Uuid;

pub(crate) fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/wallets/{customer_id}", get(get_wallet).put(put_wallet))
        .with_state(pool)
}

async fn get_wallet(
    State(pool): State<PgPool>,
    Path(customer_id): Path<String>,
) -> Result<Json<Wallet>, HttpError> {
    let mut conn = pool.acquire().await?;
    db::get_wallet(&mut conn, &customer_id)
        .await?
        .map(Json)
        .ok_or_else(|| HttpError::not_found(format!("no wallet for customer {customer_id}")))
}

#[tracing::instrument(skip_all, fields(customer_id = %customer_id))]
async fn put_wallet(
    State(pool): State<PgPool>,
    Path(customer_id): Path<String>,
    Json(body): Json<WalletUpdate>,
) -> Result<Json<Wallet>, HttpError> {
    // The change and its event commit together: a replay of the payment
    // topic after a restore re-derives it (see `recovery`).
    let mut tx = pool.begin().await?;
    // The change happens as of its event, which a replay reads back.
    let meta = EventMeta::first::<WalletSet>(Uuid::new_v4(), "payment");
    let (wallet, delta_cents) = db::set_wallet(
        &mut tx,
        &customer_id,
        body.balance_cents.get(),
        meta.occurred_at,
    )
    .await?;
    let event = WalletSet {
        meta,
        customer_id: wallet.customer_id.clone(),
        balance_cents: wallet.balance_cents,
        currency: wallet.currency.clone(),
        delta_cents,
    };
    db::record_wallet_change(&mut tx, &event.meta, &customer_id, delta_cents).await?;
    outbox::enqueue(&mut tx, &event).await?;
    tx.commit().await?;
    tracing::info!(customer_id = %customer_id, balance_cents = wallet.balance_cents, delta_cents, "wallet set");
    Ok(Json(wallet))
}
