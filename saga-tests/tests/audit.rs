//! The auditor finds what is wrong, naming what it concerns.

use choreo_saga_tests::Platform;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditor_finds_stock_and_money_planted_in_the_databases() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 1_000, 10).await?;
    platform.edge.set_wallet("nina", 5_000).await?;
    let id = platform.place("nina", &[("TEA-01", 2)]).await?;
    platform.wait_for_status(&id, "CONFIRMED").await?;
    platform.assert_audit_clean().await?;

    // Stock that appeared from nowhere, and a refund nobody asked for.
    let inventory = sqlx::PgPool::connect(&platform.databases.inventory.url).await?;
    sqlx::query("UPDATE products SET available = available + 5 WHERE sku = 'TEA-01'")
        .execute(&inventory)
        .await?;
    let payment = sqlx::PgPool::connect(&platform.databases.payment.url).await?;
    sqlx::query("UPDATE payments SET refunded_cents = 500 WHERE order_id = $1::uuid")
        .bind(&id)
        .execute(&payment)
        .await?;

    let report = platform.audit().await?;
    let stock = report
        .violations
        .iter()
        .find(|v| v.invariant == "stock" && v.sku.as_deref() == Some("TEA-01"))
        .expect("a stock violation for TEA-01");
    assert!(stock.detail.contains("were stocked"), "{}", stock.detail);
    let money = report
        .violations
        .iter()
        .find(|v| v.invariant == "money")
        .expect("a money violation");
    assert_eq!(money.order_id.map(|o| o.to_string()), Some(id.clone()));
    assert_eq!(report.violations.len(), 2, "{:?}", report.violations);
    platform.stop().await
}
