//! Idempotency keys on `POST /v1/orders`: a retry returns the order the key
//! placed, however many retries race; the key with another body is refused;
//! keys are per customer and expire.

use choreo_saga_tests::{Options, Platform, SAGA_DEADLINE, order_body};
use choreo_testkit::wait_until;
use serde_json::Value;
use std::{collections::BTreeSet, time::Duration};

/// Places `body` as `client` with `key`: the status, the replay header and
/// the answer's body.
async fn place(
    client: &reqwest::Client,
    platform: &Platform,
    key: &str,
    body: &Value,
) -> anyhow::Result<(u16, Option<String>, Value)> {
    let response = client
        .post(platform.edge.url("/v1/orders"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((status, replayed, response.json().await?))
}

/// How many orders the order service holds for `customer`.
async fn orders_of(platform: &Platform, customer: &str) -> anyhow::Result<i64> {
    let pool = sqlx::PgPool::connect(&platform.databases.order.url).await?;
    let count = sqlx::query_scalar("SELECT count(*) FROM orders WHERE customer_id = $1")
        .bind(customer)
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_retries_of_one_keyed_post_place_one_order() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 500, 1_000).await?;
    platform.edge.set_wallet("alice", 100_000).await?;
    platform.edge.set_wallet("bob", 100_000).await?;
    let alice = platform.customer("alice")?;
    let body = order_body("alice", &[("TEA-01", 3)]);

    let mut retries = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (alice, body, url) = (alice.clone(), body.clone(), platform.edge.url("/v1/orders"));
        retries.spawn(async move {
            let response = alice
                .post(url)
                .header("idempotency-key", "checkout-42")
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(
                response.status() == 201,
                "retry answered {}",
                response.status()
            );
            let order: Value = response.json().await?;
            anyhow::Ok(order["id"].as_str().unwrap_or_default().to_owned())
        });
    }
    let mut ids = BTreeSet::new();
    while let Some(id) = retries.join_next().await {
        ids.insert(id??);
    }
    assert_eq!(ids.len(), 1, "every retry names the same order: {ids:?}");
    assert_eq!(orders_of(&platform, "alice").await?, 1);
    let id = ids.pop_first().expect("one id");

    // One more retry, after the fact: a replay, marked as such, showing the
    // order as it is now.
    platform.wait_for_status(&id, "CONFIRMED").await?;
    let (status, replayed, order) = place(&alice, &platform, "checkout-42", &body).await?;
    assert_eq!((status, replayed.as_deref()), (201, Some("true")));
    assert_eq!(
        (order["id"].as_str(), order["status"].as_str()),
        (Some(id.as_str()), Some("CONFIRMED"))
    );

    // Through another edge (as after a restart of the first, or on another
    // replica): the key lives with the order, not in the edge.
    let shutdown = choreo_kit::CancellationToken::new();
    let other_edge = choreo_edge::start(
        choreo_edge::Settings {
            http_addr: "127.0.0.1:0".parse()?,
            order_url: platform.order.clone(),
            inventory_url: platform.inventory.clone(),
            payment_url: platform.payment.clone(),
            auth: choreo_edge::AuthSettings {
                hs256_secret: Some(platform.token_secret.clone()),
                ..Default::default()
            },
            internal_auth: platform.internal_auth.clone(),
            ..Default::default()
        },
        shutdown.clone(),
    )
    .await?;
    let retried = alice
        .post(format!("http://{}/v1/orders", other_edge.addr))
        .header("idempotency-key", "checkout-42")
        .json(&body)
        .send()
        .await?;
    assert_eq!(retried.status(), 201);
    assert_eq!(retried.headers()["idempotent-replayed"], "true");
    let retried: Value = retried.json().await?;
    assert_eq!(retried["id"].as_str(), Some(id.as_str()));
    shutdown.cancel();

    // The key with another body is a mistake, refused, and changes nothing.
    let other = order_body("alice", &[("TEA-01", 4)]);
    let (status, _, error) = place(&alice, &platform, "checkout-42", &other).await?;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["code"], "idempotency_key_reused");
    // A malformed key never reaches the order service.
    let (status, _, error) = place(&alice, &platform, "bad key with spaces", &body).await?;
    assert_eq!(status, 422, "{error}");
    assert_eq!(orders_of(&platform, "alice").await?, 1);

    // Keys are per customer: Bob's "checkout-42" is his own.
    let bob = platform.customer("bob")?;
    let (status, replayed, bobs) = place(
        &bob,
        &platform,
        "checkout-42",
        &order_body("bob", &[("TEA-01", 3)]),
    )
    .await?;
    assert_eq!((status, replayed.as_deref()), (201, Some("false")));
    assert_ne!(bobs["id"].as_str(), Some(id.as_str()));

    // Charged once: one order of 3 × 500.
    platform.wait_until_consumed().await?;
    assert_eq!(
        platform.wallet("alice").await?["balance_cents"],
        100_000 - 1_500
    );
    platform.assert_audit_clean().await?;
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_places_a_new_order() -> anyhow::Result<()> {
    let platform = Platform::start_with(Options {
        idempotency_key_lifetime: Duration::from_secs(2),
        ..Options::default()
    })
    .await?;
    platform.edge.set_product("TEA-01", 500, 100).await?;
    platform.edge.set_wallet("alice", 100_000).await?;
    let alice = platform.customer("alice")?;
    let body = order_body("alice", &[("TEA-01", 1)]);

    let (status, _, first) = place(&alice, &platform, "weekly-tea", &body).await?;
    assert_eq!(status, 201);
    // Retried until the key has expired: every answer before that is the
    // first order again, and the first one after it a new order.
    let second = wait_until("the key to expire", SAGA_DEADLINE, || async {
        let (status, replayed, order) = place(&alice, &platform, "weekly-tea", &body).await.ok()?;
        assert_eq!(status, 201);
        if replayed.as_deref() == Some("true") {
            assert_eq!(order["id"], first["id"], "a replay is the first order");
            return None;
        }
        Some(order)
    })
    .await?;
    assert_ne!(second["id"], first["id"]);
    assert_eq!(orders_of(&platform, "alice").await?, 2);
    platform.stop().await
}
