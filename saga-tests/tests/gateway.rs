//! The edge as the platform's door: who may call it, and what each caller
//! may see and do.

use choreo_saga_tests::{Options, Platform, bearer_client, order_body};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_decide_who_gets_in_and_customers_see_only_their_own_orders() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 500, 100).await?;
    platform.edge.set_wallet("alice", 100_000).await?;
    let alice = platform.customer("alice")?;
    let bob = platform.customer("bob")?;

    // No token, or one signed with another secret: 401 with a bearer
    // challenge, and nothing placed. (Expired tokens: the edge's unit tests.)
    let body = order_body("alice", &[("TEA-01", 1)]);
    let anonymous = reqwest::Client::new()
        .post(platform.edge.url("/v1/orders"))
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
    let forged = bearer_client(&choreo_kit::customer_token::hs256_token(
        "not-the-platform-secret-but-long-enough",
        "alice",
        true,
        3600,
    )?)?;
    let refused = forged
        .post(platform.edge.url("/v1/orders"))
        .json(&body)
        .send()
        .await?;
    assert_eq!(refused.status(), 401);
    // The health probes need no token.
    let live = reqwest::Client::new()
        .get(platform.edge.url("/health/live"))
        .send()
        .await?;
    assert_eq!(live.status(), 200);

    // Alice places an order without naming herself: the token says who.
    let mut own = body.clone();
    own.as_object_mut().map(|o| o.remove("customer_id"));
    let placed = alice
        .post(platform.edge.url("/v1/orders"))
        .json(&own)
        .send()
        .await?;
    assert_eq!(placed.status(), 201);
    let placed: Value = placed.json().await?;
    assert_eq!(placed["customer_id"], "alice");
    let id = placed["id"].as_str().expect("an order id").to_owned();

    // Bob cannot place an order for Alice...
    let for_alice = bob
        .post(platform.edge.url("/v1/orders"))
        .json(&body)
        .send()
        .await?;
    assert_eq!(for_alice.status(), 403);
    // ...nor see or cancel hers: to him it does not exist, exactly like an
    // order that never did.
    let order_url = platform.edge.url(&format!("/v1/orders/{id}"));
    let seen_by_bob = bob.get(&order_url).send().await?;
    assert_eq!(seen_by_bob.status(), 404);
    let missing = bob
        .get(
            platform
                .edge
                .url(&format!("/v1/orders/{}", uuid::Uuid::new_v4())),
        )
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
            .get(platform.edge.url("/v1/products"))
            .send()
            .await?
            .status(),
        200
    );
    let restock = alice
        .put(platform.edge.url("/v1/admin/products/TEA-01"))
        .json(&serde_json::json!({"name": "Tea", "price_cents": 1, "available": 1_000_000}))
        .send()
        .await?;
    assert_eq!(restock.status(), 403);
    let top_up = alice
        .put(platform.edge.url("/v1/admin/customers/alice/wallet"))
        .json(&serde_json::json!({"balance_cents": 999_999_999}))
        .send()
        .await?;
    assert_eq!(top_up.status(), 403);
    let tea = platform.edge.product("TEA-01").await?;
    assert_eq!(
        tea["price_cents"], 500,
        "the refused restock changed nothing"
    );
    let wallet = platform.wallet("alice").await?;
    assert_eq!(wallet["balance_cents"], 100_000 - 500);

    platform.assert_audit_clean().await?;
    platform.stop().await
}

/// Status, `Retry-After` and error message of `GET /v1/products` as `client`.
async fn products(
    platform: &Platform,
    client: &reqwest::Client,
) -> anyhow::Result<(u16, Option<u64>, String)> {
    let response = client.get(platform.edge.url("/v1/products")).send().await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body: Value = response.json().await?;
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((status, retry_after, message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_or_an_address_over_its_limit_is_told_when_to_retry() -> anyhow::Result<()> {
    // One request a minute sustained, so no bucket refills during the test;
    // bursts of 3 per customer and 6 per address (every client here shares
    // 127.0.0.1).
    let platform = Platform::start_with(Options {
        rate_limit: choreo_edge::RateLimitSettings {
            customer_per_minute: 1,
            customer_burst: 3,
            address_per_minute: 1,
            address_burst: 6,
            ..Default::default()
        },
        ..Options::default()
    })
    .await?;
    let alice = platform.customer("alice")?;
    let bob = platform.customer("bob")?;

    for _ in 0..3 {
        assert_eq!(products(&platform, &alice).await?.0, 200);
    }
    let (status, retry_after, message) = products(&platform, &alice).await?;
    assert_eq!(status, 429);
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    assert!(message.contains("customer"), "{message}");

    // Bob has a bucket of his own, but shares the address's: four requests
    // so far leave it two.
    for _ in 0..2 {
        assert_eq!(products(&platform, &bob).await?.0, 200);
    }
    let (status, retry_after, message) = products(&platform, &bob).await?;
    assert_eq!(status, 429);
    assert!(retry_after.is_some_and(|s| s >= 1));
    assert!(message.contains("client address"), "{message}");
    // The address limit comes before authentication: a flood without
    // tokens is stopped too.
    let anonymous = products(&platform, &reqwest::Client::new()).await?;
    assert_eq!(anonymous.0, 429);
    // Claiming another address is no way out: no proxy is trusted here.
    let claimed = alice
        .get(platform.edge.url("/v1/products"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await?;
    assert_eq!(claimed.status(), 429);
    // Health probes are never limited.
    let live = reqwest::Client::new()
        .get(platform.edge.url("/health/live"))
        .send()
        .await?;
    assert_eq!(live.status(), 200);
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() -> anyhow::Result<()> {
    // The test's requests come from 127.0.0.1, here the ingress.
    let platform = Platform::start_with(Options {
        rate_limit: choreo_edge::RateLimitSettings {
            address_per_minute: 1,
            address_burst: 2,
            trusted_proxies: "127.0.0.1/32".into(),
            ..Options::default().rate_limit
        },
        ..Options::default()
    })
    .await?;
    let alice = platform.customer("alice")?;
    let from = |client: &'static str| {
        alice
            .get(platform.edge.url("/v1/products"))
            // What the client claimed, then what the ingress appended.
            .header("x-forwarded-for", format!("198.51.100.1, {client}"))
    };
    for _ in 0..2 {
        assert_eq!(from("203.0.113.7").send().await?.status(), 200);
    }
    assert_eq!(from("203.0.113.7").send().await?.status(), 429);
    // Another client behind the same proxy is not held back.
    assert_eq!(from("203.0.113.8").send().await?.status(), 200);
    platform.stop().await
}

/// A service that accepts connections and never answers: the worst kind of
/// down, which only a timeout notices.
async fn black_hole() -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok((url, task))
}

/// An edge of its own in front of the platform's services, with `hanging`
/// replaced by a black hole, short timeouts and a breaker that opens after
/// two failures and stays open for the test.
async fn edge_with_hanging(
    platform: &Platform,
    hanging: &str,
    hole: &str,
    shutdown: &choreo_kit::CancellationToken,
) -> anyhow::Result<String> {
    edge_with(
        platform,
        |service, real| {
            if service == hanging {
                hole.to_owned()
            } else {
                real.to_owned()
            }
        },
        shutdown,
    )
    .await
}

/// [`edge_with_hanging`]'s edge, with each service's URL setting made by
/// `url` from the service's name and its real URL.
async fn edge_with(
    platform: &Platform,
    url: impl Fn(&str, &str) -> String,
    shutdown: &choreo_kit::CancellationToken,
) -> anyhow::Result<String> {
    let edge = choreo_edge::start(
        choreo_edge::Settings {
            http_addr: "127.0.0.1:0".parse()?,
            order_url: url("order", &platform.order),
            inventory_url: url("inventory", &platform.inventory),
            payment_url: url("payment", &platform.payment),
            upstream_timeout_ms: 300,
            breaker: choreo_edge::BreakerSettings {
                failures: 2,
                cooldown_ms: 600_000,
            },
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
    Ok(format!("http://{}", edge.addr))
}

async fn status_and_code(response: reqwest::Response) -> anyhow::Result<(u16, String)> {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    Ok((
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

/// A platform with one order of alice's, and a black hole to put in place
/// of a service.
struct Hanging {
    platform: Platform,
    id: String,
    alice: reqwest::Client,
    hole: String,
    hole_task: tokio::task::JoinHandle<()>,
    shutdown: choreo_kit::CancellationToken,
}

impl Hanging {
    async fn start() -> anyhow::Result<Self> {
        let platform = Platform::start().await?;
        platform.edge.set_product("TEA-01", 500, 100).await?;
        platform.edge.set_wallet("alice", 100_000).await?;
        let id = platform.place("alice", &[("TEA-01", 1)]).await?;
        let alice = platform.customer("alice")?;
        let (hole, hole_task) = black_hole().await?;
        Ok(Self {
            platform,
            id,
            alice,
            hole,
            hole_task,
            shutdown: choreo_kit::CancellationToken::new(),
        })
    }

    /// What a test works with: the platform, alice's order and her client,
    /// the black hole's URL, and the shutdown of the edges it starts.
    fn parts(
        &self,
    ) -> (
        &Platform,
        &str,
        &reqwest::Client,
        &str,
        &choreo_kit::CancellationToken,
    ) {
        (
            &self.platform,
            &self.id,
            &self.alice,
            &self.hole,
            &self.shutdown,
        )
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.hole_task.abort();
        self.platform.stop().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_service_trips_its_breaker_and_the_others_keep_answering() -> anyhow::Result<()> {
    let hanging = Hanging::start().await?;
    let (platform, id, alice, hole, shutdown) = hanging.parts();

    // The order service hangs: two reads time out (504), then the breaker
    // answers at once, for reads and writes alike, while the catalog,
    // through the same edge, answers as before.
    let edge = edge_with_hanging(platform, "order", hole, shutdown).await?;
    let order_url = format!("{edge}/v1/orders/{id}");
    for _ in 0..2 {
        let timed_out = status_and_code(alice.get(&order_url).send().await?).await?;
        assert_eq!(timed_out, (504, "outcome_unknown".to_owned()));
    }
    let refused = status_and_code(alice.get(&order_url).send().await?).await?;
    assert_eq!(refused, (503, "circuit_open".to_owned()));
    let body = order_body("alice", &[("TEA-01", 1)]);
    let refused = alice
        .post(format!("{edge}/v1/orders"))
        .json(&body)
        .send()
        .await?;
    assert_eq!(
        status_and_code(refused).await?,
        (503, "circuit_open".to_owned())
    );
    let products = alice.get(format!("{edge}/v1/products")).send().await?;
    assert_eq!(products.status(), 200);
    let ready: Value = reqwest::get(format!("{edge}/health/ready"))
        .await?
        .json()
        .await?;
    assert_eq!(ready["breakers"]["order"], "open", "{ready}");
    assert_eq!(ready["breakers"]["inventory"], "closed", "{ready}");

    // The other way round: the catalog hangs, orders answer.
    let edge = edge_with_hanging(platform, "inventory", hole, shutdown).await?;
    for _ in 0..2 {
        let timed_out = alice.get(format!("{edge}/v1/products")).send().await?;
        assert_eq!(timed_out.status(), 504);
    }
    let refused = alice
        .get(format!("{edge}/v1/products/TEA-01"))
        .send()
        .await?;
    assert_eq!(
        status_and_code(refused).await?,
        (503, "circuit_open".to_owned())
    );
    let order = alice.get(format!("{edge}/v1/orders/{id}")).send().await?;
    assert_eq!(order.status(), 200);

    hanging.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_replica_is_passed_over_while_the_others_answer() -> anyhow::Result<()> {
    let hanging = Hanging::start().await?;
    let (platform, id, alice, hole, shutdown) = hanging.parts();

    // Two replicas of the order service, the first one hanging: calls take
    // turns, so the hanging one times out twice (its breaker's threshold)
    // and is passed over from then on, while the other answers every call.
    let edge = edge_with(
        platform,
        |service, real| {
            if service == "order" {
                format!("{hole},{real}")
            } else {
                real.to_owned()
            }
        },
        shutdown,
    )
    .await?;
    let order_url = format!("{edge}/v1/orders/{id}");
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(alice.get(&order_url).send().await?.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 504).count(),
        2,
        "{statuses:?}"
    );
    assert!(statuses[4..].iter().all(|s| *s == 200), "{statuses:?}");
    let placed = alice
        .post(format!("{edge}/v1/orders"))
        .json(&order_body("alice", &[("TEA-01", 1)]))
        .send()
        .await?;
    assert_eq!(
        placed.status(),
        201,
        "a write goes to the replica that answers"
    );
    let ready: Value = reqwest::get(format!("{edge}/health/ready"))
        .await?
        .json()
        .await?;
    assert_eq!(ready["breakers"]["order"], "closed", "{ready}");

    hanging.stop().await
}

/// Every order `client` can list at `query`, page by page (`limit` 2), and
/// the number of pages.
async fn list_all(
    platform: &Platform,
    client: &reqwest::Client,
    query: &str,
) -> anyhow::Result<(Vec<Value>, usize)> {
    let mut orders = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = platform.edge.url(&format!("/v1/orders?limit=2{query}"));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let response = client.get(url).send().await?;
        anyhow::ensure!(response.status() == 200, "listing: {}", response.status());
        let page: Value = response.json().await?;
        pages += 1;
        orders.extend(page["orders"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok((orders, pages)),
        }
    }
}

fn ids(orders: &[Value]) -> Vec<String> {
    orders
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_list_their_own_orders_newest_first_a_page_at_a_time() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 500, 100).await?;
    platform.edge.set_wallet("alice", 100_000).await?;
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(platform.place("alice", &[("TEA-01", 1)]).await?);
    }
    // Bob has no wallet: his order is cancelled.
    let bobs = platform.place("bob", &[("TEA-01", 1)]).await?;
    let alice = platform.customer("alice")?;
    let bob = platform.customer("bob")?;

    let (orders, pages) = list_all(&platform, &alice, "").await?;
    let newest_first: Vec<String> = placed.iter().rev().cloned().collect();
    assert_eq!(ids(&orders), newest_first);
    assert_eq!(pages, 3, "5 orders, 2 a page");
    assert!(orders.iter().all(|o| o["customer_id"] == "alice"));

    // Filtered by status, once the sagas are over.
    for id in &placed {
        platform.wait_for_status(id, "CONFIRMED").await?;
    }
    platform.wait_for_status(&bobs, "CANCELLED").await?;
    let (confirmed, _) = list_all(&platform, &alice, "&status=CONFIRMED").await?;
    assert_eq!(confirmed.len(), 5);
    let (cancelled, _) = list_all(&platform, &alice, "&status=CANCELLED").await?;
    assert!(cancelled.is_empty());

    // Bob sees his own only, and may not ask for Alice's; an admin may.
    let (his, _) = list_all(&platform, &bob, "").await?;
    assert_eq!(ids(&his), std::slice::from_ref(&bobs));
    let asked = bob
        .get(platform.edge.url("/v1/orders?customer_id=alice"))
        .send()
        .await?;
    assert_eq!(asked.status(), 403);
    let (alices, _) = list_all(&platform, platform.edge.admin(), "&customer_id=alice").await?;
    assert_eq!(alices.len(), 5);
    let (everyone, _) = list_all(&platform, platform.edge.admin(), "").await?;
    assert_eq!(everyone.len(), 6);

    // Bad queries say what is wrong.
    for query in [
        "limit=0",
        "limit=101",
        "status=SHIPPED",
        "cursor=not-ours",
        // A time PostgreSQL cannot hold: refused, not passed on to fail.
        "cursor=-300000000000000000_00000000-0000-0000-0000-000000000000",
        "colour=red",
    ] {
        let response = alice
            .get(platform.edge.url(&format!("/v1/orders?{query}")))
            .send()
            .await?;
        assert_eq!(response.status(), 422, "{query}");
    }
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_the_callers_mistake_and_never_open_a_breaker() -> anyhow::Result<()>
{
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 500, 100).await?;
    platform.edge.set_wallet("mallory", 100_000).await?;
    platform.edge.set_wallet("alice", 100_000).await?;
    let mallory = platform.customer("mallory")?;

    // More bad orders than the breaker's failure threshold: each is a 422
    // naming its field, and none reaches a service.
    let mut bad = order_body("mallory", &[("TEA-01", 1)]);
    bad["shipping_address"]["line1"] = Value::from("1 Main St\u{0}");
    bad["shipping_address"]["city"] = Value::from("Ber\u{1b}lin");
    for _ in 0..8 {
        let refused = mallory
            .post(platform.edge.url("/v1/orders"))
            .json(&bad)
            .send()
            .await?;
        assert_eq!(refused.status(), 422);
        let error: Value = refused.json().await?;
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("shipping_address.line1") && message.contains("shipping_address.city"),
            "{message}"
        );
    }
    // Everyone else still orders: the order breaker is closed.
    let id = platform.place("alice", &[("TEA-01", 1)]).await?;
    platform.wait_for_status(&id, "CONFIRMED").await?;
    let ready: Value = reqwest::get(platform.edge.url("/health/ready"))
        .await?
        .json()
        .await?;
    assert_eq!(ready["breakers"]["order"], "closed", "{ready}");

    // Behind the edge, a value the database cannot store is a 422 too, not
    // a 500 that a breaker would count.
    let nul_wallet = platform
        .service_client("payment")?
        .put(format!("{}/wallets/mal%00lory", platform.payment))
        .json(&serde_json::json!({"balance_cents": 1}))
        .send()
        .await?;
    let (status, code) = status_and_code(nul_wallet).await?;
    assert_eq!((status, code.as_str()), (422, "invalid_request"));
    platform.assert_audit_clean().await?;
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_behind_the_edge_take_only_signed_calls() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 500, 100).await?;
    let anonymous = reqwest::Client::new();
    let mint = serde_json::json!({"balance_cents": 999_999_999});

    // Whoever reaches a service without a credential gets nothing: no
    // money, no prices, no one's orders.
    let wallet = format!("{}/wallets/mallory", platform.payment);
    let refused = [
        anonymous.put(&wallet).json(&mint),
        anonymous
            .put(format!("{}/products/TEA-01", platform.inventory))
            .json(&serde_json::json!({"name": "Tea", "price_cents": 1, "available": 1})),
        anonymous.get(format!("{}/orders", platform.order)),
        anonymous.get(format!("{}/stats", platform.shipping)),
    ];
    for request in refused {
        let (status, code) = status_and_code(request.send().await?).await?;
        assert_eq!((status, code.as_str()), (401, "unauthenticated"));
    }
    // A credential made for another service, or signed with another key,
    // is no credential.
    let for_inventory = platform.service_client("inventory")?;
    assert_eq!(
        for_inventory
            .put(&wallet)
            .json(&mint)
            .send()
            .await?
            .status(),
        401
    );
    let stranger =
        choreo_kit::internal_auth::Signer::service(&choreo_kit::internal_auth::generate(), "edge")?;
    let forged = anonymous
        .put(&wallet)
        .header("authorization", stranger.authorization("payment"))
        .json(&mint)
        .send()
        .await?;
    assert_eq!(forged.status(), 401);
    let unminted = platform
        .service_client("payment")?
        .get(&wallet)
        .send()
        .await?;
    assert_eq!(unminted.status(), 404, "no refused call made a wallet");
    assert_eq!(platform.edge.product("TEA-01").await?["price_cents"], 500);

    // The edge's key calls the API but cannot arm a fail point, which
    // kills the process; the operator's admin key can.
    let points = format!("{}/admin/fail-points", platform.payment);
    let arm = platform
        .service_client("payment")?
        .put(format!("{points}/relay.after-publish"))
        .body("1*return")
        .send()
        .await?;
    assert_eq!(arm.status(), 403);
    let operator = choreo_testkit::operator_client("payment");
    let listed: Value = operator.get(&points).send().await?.json().await?;
    assert_eq!(listed["configured"], serde_json::json!([]), "{listed}");

    // Probes and the scrape stay open.
    for open in ["/health/live", "/health/ready", "/metrics"] {
        let answer = anonymous
            .get(format!("{}{open}", platform.payment))
            .send()
            .await?;
        assert_eq!(answer.status(), 200, "{open}");
    }
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_holds_only_so_many_long_polls_and_plain_reads_always_pass() -> anyhow::Result<()>
{
    // Payment is down: the order stays pending, and every long-poll on it
    // waits its whole time.
    let platform = Platform::start_with(Options {
        down: vec!["payment"],
        waits: choreo_edge::WaitSettings {
            per_customer: 1,
            total: 8,
        },
        ..Options::default()
    })
    .await?;
    platform.edge.set_product("TEA-01", 500, 100).await?;
    let id = platform.place("alice", &[("TEA-01", 1)]).await?;
    let alice = platform.customer("alice")?;
    let order = platform.edge.url(&format!("/v1/orders/{id}"));
    let hold = || tokio::spawn(alice.get(format!("{order}?wait=10")).send());
    let held = std::sync::Mutex::new(hold());

    // Once it is held, alice's next long-poll is refused at once...
    let refused = choreo_testkit::wait_until(
        "alice's second long-poll to be refused",
        std::time::Duration::from_secs(10),
        || async {
            {
                // The held poll is sent from a task of its own: a probe sent
                // first takes the one slot, and the held poll is the one
                // refused. Then it is sent again.
                let mut held = held.lock().ok()?;
                if held.is_finished() {
                    *held = hold();
                }
            }
            let answer = alice.get(format!("{order}?wait=0.2")).send().await.ok()?;
            (answer.status() == 429).then_some(answer)
        },
    )
    .await?;
    let held = held
        .into_inner()
        .map_err(|_| anyhow::anyhow!("the held poll's lock"))?;
    assert_eq!(refused.headers()["retry-after"], "1");
    let (_, code) = status_and_code(refused).await?;
    assert_eq!(code, "too_many_waits");
    // ...while she may still read it plainly, and others may wait.
    assert_eq!(alice.get(&order).send().await?.status(), 200);
    let admin = platform
        .edge
        .admin()
        .get(format!("{order}?wait=0.2"))
        .send()
        .await?;
    assert_eq!(admin.status(), 200);
    // Her held poll answers in the end, and makes room again.
    assert_eq!(held.await??.status(), 200);
    assert_eq!(
        alice
            .get(format!("{order}?wait=0.2"))
            .send()
            .await?
            .status(),
        200
    );
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_traceparent_does_not_graft_its_order_onto_another_trace() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 500, 100).await?;
    // A trace id someone else's requests use: the internet must not be
    // able to add spans to it (or force sampling) through the edge.
    let foreign = "4bf92f3577b34da6a3ce929d0e0e4736";
    let placed = platform
        .customer("alice")?
        .post(platform.edge.url("/v1/orders"))
        .header("traceparent", format!("00-{foreign}-00f067aa0ba902b7-01"))
        .json(&order_body("alice", &[("TEA-01", 1)]))
        .send()
        .await?;
    assert_eq!(placed.status(), 201);
    let placed: Value = placed.json().await?;
    let id = placed["id"].as_str().unwrap_or_default().to_owned();
    // The OrderPlaced the order service wrote carries the trace it went out
    // in: the edge's own, not the client's.
    let order_db = sqlx::PgPool::connect(&platform.databases.order.url).await?;
    let traces: Vec<Option<String>> =
        sqlx::query_scalar("SELECT traceparent FROM outbox WHERE message_key = $1")
            .bind(&id)
            .fetch_all(&order_db)
            .await?;
    order_db.close().await;
    assert!(!traces.is_empty(), "no outbox row for {id}");
    for trace in &traces {
        let trace = trace.as_deref().unwrap_or_default();
        assert!(
            trace.starts_with("00-") && !trace.contains(foreign),
            "{trace}"
        );
    }
    platform.stop().await
}
