//! A platform's edge as a test calls it, however the platform was started:
//! in one process (`saga-tests`' `Platform`) or as processes by `choreo up`
//! (the tool's tests). The calls a test makes to set a platform up and to
//! follow an order are written once, here.

use crate::wait_until;
use anyhow::Context;
use serde_json::{Value, json};
use std::time::Duration;

/// A client that sends `token` as its bearer token on every request.
pub fn bearer_client(token: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

/// A GET's JSON answer; `None` while there is none (for [`wait_until`]).
pub async fn get_json(client: &reqwest::Client, url: String) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// The edge at `base`, called as an operator: the tests' own set-up (the
/// catalog, wallets, orders for any customer) goes through the edge like an
/// operator's.
#[derive(Clone)]
pub struct Edge {
    base: String,
    admin: reqwest::Client,
}

impl Edge {
    /// The edge at `base` (`http://127.0.0.1:PORT`), with a client carrying
    /// `admin_token`.
    pub fn new(base: impl Into<String>, admin_token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.into(),
            admin: bearer_client(admin_token)?,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` (`/v1/orders`) on this edge.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The client carrying the admin token.
    pub fn admin(&self) -> &reqwest::Client {
        &self.admin
    }

    /// Creates or replaces product `sku` (named `Product <sku>`).
    pub async fn set_product(
        &self,
        sku: &str,
        price_cents: i64,
        available: impl Into<i64>,
    ) -> anyhow::Result<()> {
        let body = json!({"name": format!("Product {sku}"), "price_cents": price_cents, "available": available.into()});
        let response = self
            .admin
            .put(self.url(&format!("/v1/admin/products/{sku}")))
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "setting product {sku}: {}",
            response.text().await?
        );
        Ok(())
    }

    /// Sets `customer`'s wallet.
    pub async fn set_wallet(&self, customer: &str, balance_cents: i64) -> anyhow::Result<()> {
        let response = self
            .admin
            .put(self.url(&format!("/v1/admin/customers/{customer}/wallet")))
            .json(&json!({"balance_cents": balance_cents}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "setting {customer}'s wallet: {}",
            response.text().await?
        );
        Ok(())
    }

    pub async fn product(&self, sku: &str) -> anyhow::Result<Value> {
        Ok(self
            .admin
            .get(self.url(&format!("/v1/products/{sku}")))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Places `body` as `client` (a customer, or [`Edge::admin`]); the new
    /// order's id.
    pub async fn place_as(&self, client: &reqwest::Client, body: &Value) -> anyhow::Result<String> {
        let response = client
            .post(self.url("/v1/orders"))
            .json(body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 201,
            "placing an order: {}",
            response.status()
        );
        let order: Value = response.json().await?;
        order["id"]
            .as_str()
            .map(str::to_owned)
            .context("the order has an id")
    }

    /// Reads an order, waiting up to `wait` seconds for a terminal status.
    pub async fn order(&self, id: &str, wait: u64) -> anyhow::Result<Value> {
        let response = self
            .admin
            .get(self.url(&format!("/v1/orders/{id}?wait={wait}")))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "reading order {id}: {}",
            response.status()
        );
        Ok(response.json().await?)
    }

    /// Waits until the order reaches `status`, for at most `deadline`.
    pub async fn wait_for_status(
        &self,
        id: &str,
        status: &str,
        deadline: Duration,
    ) -> anyhow::Result<Value> {
        wait_until(&format!("order {id} to be {status}"), deadline, || async {
            let order = self.order(id, 5).await.ok()?;
            (order["status"] == status).then_some(order)
        })
        .await
    }
}
