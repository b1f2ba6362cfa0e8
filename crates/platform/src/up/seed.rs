//! The demo catalog and wallets `choreo up` seeds, through the edge's admin
//! API like any operator would. Products that exist keep their stock from an
//! earlier run; demo wallets are set back to their demo balance, so the
//! printed `curl` keeps working.

use anyhow::Context;

pub const DEMO_CUSTOMER: &str = "alice";

const PRODUCTS: &[(&str, &str, i64, i32)] = &[
    ("TEA-01", "Sencha green tea, 100 g", 1_250, 500),
    ("CUP-02", "Stoneware cup", 800, 200),
    ("POT-03", "Cast-iron teapot", 4_500, 50),
];

const WALLETS: &[(&str, i64)] = &[(DEMO_CUSTOMER, 100_000), ("bob", 50_000), ("carol", 1_000)];

pub async fn seed(edge: &str, admin_token: &str) -> anyhow::Result<()> {
    let http = crate::client::bearer(admin_token)?;
    for (sku, name, price_cents, available) in PRODUCTS {
        let existing = http
            .get(format!("{edge}/v1/products/{sku}"))
            .send()
            .await
            .with_context(|| format!("looking up product {sku}"))?;
        if existing.status().is_success() {
            continue;
        }
        crate::client::put_product(&http, edge, sku, name, *price_cents, (*available).into())
            .await?;
    }
    for (customer, balance_cents) in WALLETS {
        crate::client::put_wallet(&http, edge, customer, *balance_cents).await?;
    }
    Ok(())
}
