//! Payment against a real provider (the stand-in, on its own ledger): a
//! charge whose answer was lost is never kept when the retry declines.

mod support;

use choreo_kit::internal_auth::{self, Signer};
use choreo_messaging::{HandlerError, apply};
use choreo_payment::ProviderSettings;
use choreo_testkit::TestDatabase;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};
use support::reserved;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_whose_answer_was_lost_is_given_back_when_the_retry_declines() -> anyhow::Result<()>
{
    let ledger = TestDatabase::create("provider_ledger").await?;
    let shutdown = choreo_provider::CancellationToken::new();
    let keys = internal_auth::generate();
    let provider = choreo_provider::start(
        choreo_provider::Settings {
            http_addr: "127.0.0.1:0".parse()?,
            database_url: ledger.url.clone(),
            internal_auth: keys.clone(),
            ..Default::default()
        },
        shutdown.clone(),
    )
    .await?;
    let base = format!("http://{}", provider.addr);
    let (db, pool) =
        TestDatabase::migrated("payment_provider", choreo_payment::migrations()).await?;
    sqlx::query("INSERT INTO wallets (customer_id, balance_cents) VALUES ('alice', 1000)")
        .execute(&pool)
        .await?;
    let handler = choreo_payment::handler_with_provider(
        &ProviderSettings {
            url: Some(base.clone()),
            timeout_ms: 300,
        },
        Signer::service(&keys, "payment")?,
    )?;
    // The test's drills, as an operator's tool makes them.
    let operator = Signer::admin(&keys, "test")?;
    let http = reqwest::Client::new();

    // The provider takes the first charge but answers after payment gave up.
    http.put(format!("{base}/admin/faults/timeout"))
        .header(
            AUTHORIZATION,
            operator.authorization(internal_auth::PROVIDER),
        )
        .json(&json!({"share": 1.0, "hold_ms": 2000}))
        .send()
        .await?
        .error_for_status()?;
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let lost = apply(&pool, &handler, &reserved(first, "alice", 800)).await;
    assert!(
        matches!(lost, Err(HandlerError::Transient(_))),
        "a lost answer is retried: {lost:?}"
    );
    http.delete(format!("{base}/admin/faults/timeout"))
        .header(
            AUTHORIZATION,
            operator.authorization(internal_auth::PROVIDER),
        )
        .send()
        .await?
        .error_for_status()?;

    // Before the retry, another order of alice's takes most of her money.
    assert!(apply(&pool, &handler, &reserved(second, "alice", 800)).await?);
    // The retry declines on the wallet, and gives the lost charge back.
    assert!(apply(&pool, &handler, &reserved(first, "alice", 800)).await?);
    let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1")
        .bind(first)
        .fetch_one(&pool)
        .await?;
    assert_eq!(status, "DECLINED");
    let key = Uuid::new_v5(&first, b"payment");
    let charge: Value = http
        .get(format!("{base}/v1/charges/{key}"))
        .header(
            AUTHORIZATION,
            operator.authorization(internal_auth::PROVIDER),
        )
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(charge["status"], "REFUNDED", "{charge}");
    assert_eq!(charge["captured_cents"], charge["refunded_cents"]);

    pool.close().await;
    db.drop_db().await?;
    shutdown.cancel();
    provider.task.await??;
    ledger.drop_db().await
}
