//! The demo catalog and wallets `choreo up` seeds, through the edge's admin
//! API like any operator would. Products that exist keep their stock from an
//! earlier run; demo wallets are set back to their demo balance, so the
//! printed `curl` keeps working.

use anyhow::Context;
use serde_json::json;

pub(crate) const DEMO_CUSTOMER: &str = "alice";

const PRODUCTS: &[(&str, &str, i64, i32)] = &[
    ("TEA-01", "Sencha green tea, 100 g", 1_250, 500),
    ("CUP-02", "Stoneware cup", 800, 200),
    ("POT-03", "Cast-iron teapot", 4_500, 50),
];

const WALLETS: &[(&str, i64)] = &[(DEMO_CUSTOMER, 100_000), ("bob", 50_000), ("carol", 1_000)];

pub(crate) async fn seed(edge: &str, admin_token: &str) -> anyhow::Result<()> {
    let http = crate::token::bearer(admin_token)?.build()?;
    for (sku, name, price_cents, available) in PRODUCTS {
        let existing = http.get(format!("{edge}/v1/products/{sku}")).send().await?;
        if existing.status().is_success() {
            continue;
        }
        let response = http
            .put(format!("{edge}/v1/admin/products/{sku}"))
            .json(&json!({"name": name, "price_cents": price_cents, "available": available}))
            .send()
            .await
            .with_context(|| format!("seeding product {sku}"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "seeding {sku}: {}",
            response.text().await?
        );
    }
    for (customer, balance_cents) in WALLETS {
        let response = http
            .put(format!("{edge}/v1/admin/customers/{customer}/wallet"))
            .json(&json!({"balance_cents": balance_cents}))
            .send()
            .await
            .with_context(|| format!("seeding wallet {customer}"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "seeding {customer}: {}",
            response.text().await?
        );
    }
    Ok(())
}
