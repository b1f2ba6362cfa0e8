//! The inventory service's HTTP API, called by the edge: the catalog, and
//! the admin route that sets a product (and publishes `ProductSet`).

use crate::db::{self, Product};
use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};
use choreo_contract::catalog::ProductUpdate;
use choreo_events::{EventMeta, ProductSet};
use choreo_kit::HttpError;
use choreo_messaging::outbox;
use sqlx::PgPool;
use uuid::Uuid;

pub(crate) fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/products", get(list_products))
        .route("/products/{sku}", get(get_product).put(put_product))
        .with_state(pool)
}

async fn list_products(State(pool): State<PgPool>) -> Result<Json<Vec<Product>>, HttpError> {
    let mut conn = pool.acquire().await?;
    Ok(Json(db::list_products(&mut conn).await?))
}

async fn get_product(
    State(pool): State<PgPool>,
    Path(sku): Path<String>,
) -> Result<Json<Product>, HttpError> {
    let mut conn = pool.acquire().await?;
    db::get_product(&mut conn, &sku)
        .await?
        .map(Json)
        .ok_or_else(|| HttpError::not_found(format!("no product {sku}")))
}

#[tracing::instrument(skip_all, fields(sku = %sku), err(Debug))]
async fn put_product(
    State(pool): State<PgPool>,
    Path(sku): Path<String>,
    Json(body): Json<ProductUpdate>,
) -> Result<Json<Product>, HttpError> {
    // The change and its event commit together: a replay of the inventory
    // topic after a restore re-derives it (see `recovery`).
    let mut tx = pool.begin().await?;
    // The change happens as of its event, which a replay reads back.
    let meta = EventMeta::first::<ProductSet>(Uuid::new_v4(), "inventory");
    let (product, stock_delta) = db::set_product(
        &mut tx,
        &sku,
        body.name.trim(),
        body.price_cents.get(),
        body.available.get(),
        meta.occurred_at,
    )
    .await?;
    let event = ProductSet {
        meta,
        sku: product.sku.clone(),
        name: product.name.clone(),
        price_cents: product.price_cents,
        currency: product.currency.clone(),
        available: product.available,
        stock_delta,
    };
    db::record_product_change(&mut tx, &event.meta, &sku, stock_delta).await?;
    outbox::enqueue(&mut tx, &event).await?;
    tx.commit().await?;
    tracing::info!(sku = %sku, available = product.available, stock_delta, price_cents = product.price_cents, "product set");
    Ok(Json(product))
}
