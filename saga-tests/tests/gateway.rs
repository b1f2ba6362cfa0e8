//! The edge as the platform's door: who may call it, and what each caller
//! may see and do.

use choreo_saga_tests::{Platform, bearer_client, order_body};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_decide_who_gets_in_and_customers_see_only_their_own_orders() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.set_product("TEA-01", 500, 100).await?;
    platform.set_wallet("alice", 100_000).await?;
    let alice = platform.customer("alice")?;
    let bob = platform.customer("bob")?;

    // No token, or one signed with another secret: 401 with a bearer
    // challenge, and nothing placed. (Expired tokens: the edge's unit tests.)
    let body = order_body("alice", &[("TEA-01", 1)]);
    let anonymous = reqwest::Client::new()
        .post(platform.url("/v1/orders"))
        .json(&body)
        .send()
        .await?;
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()?
            .starts_with("Bearer")
    );
    let error: Value = anonymous.json().await?;
    assert_eq!(error["error"]["code"], "unauthenticated");
    let forged = bearer_client(&choreo_edge::hs256_token(
        "not-the-platform-secret-but-long-enough",
        "alice",
        true,
        3600,
    )?)?;
    let refused = forged
        .post(platform.url("/v1/orders"))
        .json(&body)
        .send()
        .await?;
    assert_eq!(refused.status(), 401);
    // The health probes need no token.
    let live = reqwest::Client::new()
        .get(platform.url("/health/live"))
        .send()
        .await?;
    assert_eq!(live.status(), 200);

    // Alice places an order without naming herself: the token says who.
    let mut own = body.clone();
    own.as_object_mut().map(|o| o.remove("customer_id"));
    let placed = alice
        .post(platform.url("/v1/orders"))
        .json(&own)
        .send()
        .await?;
    assert_eq!(placed.status(), 201);
    let placed: Value = placed.json().await?;
    assert_eq!(placed["customer_id"], "alice");
    let id = placed["id"].as_str().expect("an order id").to_owned();

    // Bob cannot place an order for Alice...
    let for_alice = bob
        .post(platform.url("/v1/orders"))
        .json(&body)
        .send()
        .await?;
    assert_eq!(for_alice.status(), 403);
    // ...nor see or cancel hers: to him it does not exist, exactly like an
    // order that never did.
    let order_url = platform.url(&format!("/v1/orders/{id}"));
    let seen_by_bob = bob.get(&order_url).send().await?;
    assert_eq!(seen_by_bob.status(), 404);
    let missing = bob
        .get(platform.url(&format!("/v1/orders/{}", uuid::Uuid::new_v4())))
        .send()
        .await?;
    assert_eq!(missing.status(), 404);
    let seen_error: Value = seen_by_bob.json().await?;
    let missing_error: Value = missing.json().await?;
    assert_eq!(seen_error["error"]["code"], missing_error["error"]["code"]);
    let cancel = bob.post(format!("{order_url}/cancel")).send().await?;
    assert_eq!(cancel.status(), 404);

    // Alice sees it through to its end; an admin sees it too.
    let order = platform.wait_for_status(&id, "CONFIRMED").await?;
    assert_eq!(order["customer_id"], "alice");
    let hers = alice.get(&order_url).send().await?;
    assert_eq!(hers.status(), 200);

    // Customers read the catalog but cannot change it, or wallets.
    assert_eq!(
        alice
            .get(platform.url("/v1/products"))
            .send()
            .await?
            .status(),
        200
    );
    let restock = alice
        .put(platform.url("/v1/admin/products/TEA-01"))
        .json(&serde_json::json!({"name": "Tea", "price_cents": 1, "available": 1_000_000}))
        .send()
        .await?;
    assert_eq!(restock.status(), 403);
    let top_up = alice
        .put(platform.url("/v1/admin/customers/alice/wallet"))
        .json(&serde_json::json!({"balance_cents": 999_999_999}))
        .send()
        .await?;
    assert_eq!(top_up.status(), 403);
    let tea = platform.product("TEA-01").await?;
    assert_eq!(
        tea["price_cents"], 500,
        "the refused restock changed nothing"
    );
    let wallet = platform.wallet("alice").await?;
    assert_eq!(wallet["balance_cents"], 100_000 - 500);

    platform.assert_audit_clean().await?;
    platform.stop().await
}
