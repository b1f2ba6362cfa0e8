//! The order saga's happy path, through the edge, on a real broker and real
//! databases.

use choreo_saga_tests::{Platform, order_body};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_at_the_edge_is_confirmed_with_priced_lines_and_timeline()
-> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 1_250, 10).await?;
    platform.edge.set_product("CUP-02", 800, 5).await?;
    platform.edge.set_wallet("alice", 10_000).await?;

    let response = platform
        .edge
        .admin()
        .post(platform.edge.url("/v1/orders"))
        .json(&order_body("alice", &[("TEA-01", 2), ("CUP-02", 1)]))
        .send()
        .await?;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str()?.to_owned();
    let placed: serde_json::Value = response.json().await?;
    let id = placed["id"].as_str().expect("order id").to_owned();
    assert_eq!(location, format!("/v1/orders/{id}"));
    assert_eq!(placed["status"], "PENDING");

    platform.wait_for_status(&id, "CONFIRMED").await?;
    // The timeline is complete once every event has reached the order
    // service: payment's travels on its own topic and may arrive just after
    // the confirmation.
    platform.wait_until_consumed().await?;
    let order = platform.edge.order(&id, 0).await?;
    assert_eq!(order["total_cents"], 2 * 1_250 + 800);
    assert_eq!(order["currency"], "EUR");
    let lines = order["lines"].as_array().expect("lines");
    assert_eq!(lines[0]["sku"], "TEA-01");
    assert_eq!(lines[0]["unit_price_cents"], 1_250);
    assert_eq!(lines[0]["line_total_cents"], 2_500);
    assert_eq!(lines[1]["sku"], "CUP-02");
    assert_eq!(lines[1]["line_total_cents"], 800);

    let timeline: Vec<(String, String)> = order["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap_or("").to_owned(),
                e["service"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected = [
        ("OrderPlaced", "order"),
        ("StockReserved", "inventory"),
        ("PaymentCompleted", "payment"),
        ("ShipmentScheduled", "shipping"),
        ("OrderConfirmed", "order"),
    ];
    assert_eq!(
        timeline,
        expected.map(|(t, s)| (t.to_owned(), s.to_owned())).to_vec(),
        "the saga's events in order"
    );

    // The effects behind the confirmation (every service has seen the
    // outcome): the reserved stock has left the warehouse.
    let tea = platform.edge.product("TEA-01").await?;
    assert_eq!(
        (
            tea["available"].as_i64(),
            tea["reserved"].as_i64(),
            tea["shipped"].as_i64()
        ),
        (Some(8), Some(0), Some(2))
    );
    let wallet = platform.wallet("alice").await?;
    assert_eq!(wallet["balance_cents"], 10_000 - 3_300);

    platform.assert_audit_clean().await?;
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_order_is_rejected_with_what_to_fix_and_places_nothing() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    let mut body = order_body("alice", &[("TEA-01", 0)]);
    body["shipping_address"]["country"] = "Britain".into();
    let response = platform
        .edge
        .admin()
        .post(platform.edge.url("/v1/orders"))
        .json(&body)
        .send()
        .await?;
    assert_eq!(response.status(), 422);
    let error: serde_json::Value = response.json().await?;
    assert_eq!(error["error"]["code"], "invalid_request");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("items[0].quantity"), "{message}");
    assert!(message.contains("shipping_address.country"), "{message}");

    let response = platform
        .edge
        .admin()
        .post(platform.edge.url("/v1/orders"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await?;
    assert_eq!(response.status(), 415);

    let mut unknown = order_body("alice", &[("TEA-01", 1)]);
    unknown["coupon"] = "FREE".into();
    let response = platform
        .edge
        .admin()
        .post(platform.edge.url("/v1/orders"))
        .json(&unknown)
        .send()
        .await?;
    assert_eq!(response.status(), 422);

    // Each of these is refused, with its own status and the field to fix.
    let too_many_lines: Vec<(String, i32)> = (0..101).map(|i| (format!("SKU-{i}"), 1)).collect();
    let lines: Vec<(&str, i32)> = too_many_lines
        .iter()
        .map(|(s, q)| (s.as_str(), *q))
        .collect();
    let mut no_line1 = order_body("alice", &[("TEA-01", 1)]);
    no_line1["shipping_address"]
        .as_object_mut()
        .map(|a| a.remove("line1"));
    let mut unassigned_country = order_body("alice", &[("TEA-01", 1)]);
    unassigned_country["shipping_address"]["country"] = "XX".into();
    let cases = [
        (order_body("alice", &lines), 422, "at most 100"),
        (
            order_body("alice", &[("TEA-01", 1_001)]),
            422,
            "items[0].quantity",
        ),
        (order_body("alice", &[("tea 01", 1)]), 422, "items[0].sku"),
        (unassigned_country, 422, "shipping_address.country"),
        (no_line1, 422, "line1"),
    ];
    for (body, status, field) in cases {
        let response = platform
            .edge
            .admin()
            .post(platform.edge.url("/v1/orders"))
            .json(&body)
            .send()
            .await?;
        assert_eq!(response.status(), status, "{field}");
        let error: serde_json::Value = response.json().await?;
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{field} not in {message}");
    }
    let huge = "x".repeat(70 * 1024);
    let response = platform
        .edge
        .admin()
        .post(platform.edge.url("/v1/orders"))
        .header("content-type", "application/json")
        .body(format!("{{\"padding\": \"{huge}\"}}"))
        .send()
        .await?;
    assert_eq!(response.status(), 413);

    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&sqlx::PgPool::connect(&platform.databases.order.url).await?)
        .await?;
    assert_eq!(orders, 0, "nothing malformed reaches the order service");
    platform.assert_audit_clean().await?;
    platform.stop().await
}
