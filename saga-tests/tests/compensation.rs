//! Every way the order saga can fail ends consistent: the order is
//! CANCELLED with its reason and every step already taken is compensated.

use choreo_saga_tests::{Options, Platform, order_body, timeline};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_is_reserved_until_it_runs_out_and_the_next_order_is_cancelled_out_of_stock()
-> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("A", 100, 75).await?;
    platform.edge.set_product("B", 200, 1).await?;
    platform.edge.set_wallet("erin", 100_000).await?;

    let first = platform.place("erin", &[("A", 3)]).await?;
    assert_eq!(
        platform.wait_for_status(&first, "CONFIRMED").await?["status"],
        "CONFIRMED"
    );
    let second = platform.place("erin", &[("B", 1)]).await?;
    platform.wait_for_status(&second, "CONFIRMED").await?;
    let third = platform.place("erin", &[("B", 1)]).await?;
    let cancelled = platform.wait_for_status(&third, "CANCELLED").await?;
    assert_eq!(cancelled["cancel_reason"], "OUT_OF_STOCK");
    assert!(
        cancelled["cancel_detail"]
            .as_str()
            .unwrap_or_default()
            .contains("B: 1 wanted, 0 available")
    );
    assert_eq!(
        timeline(&cancelled),
        ["OrderPlaced", "StockRejected", "OrderCancelled"]
    );

    platform.wait_until_consumed().await?;
    let a = platform.edge.product("A").await?;
    let b = platform.edge.product("B").await?;
    assert_eq!(a["available"], 72);
    assert_eq!(b["available"], 0);
    assert_eq!(
        (a["reserved"].as_i64(), b["reserved"].as_i64()),
        (Some(0), Some(0)),
        "nothing stays reserved"
    );
    assert_eq!(
        platform.wallet("erin").await?["balance_cents"],
        100_000 - 300 - 200,
        "the rejected order charged nothing"
    );
    platform.assert_audit_clean().await?;
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_releases_the_stock_and_cancels_the_order() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 1_000, 10).await?;
    platform.edge.set_wallet("frank", 500).await?;

    let poor = platform.place("frank", &[("TEA-01", 2)]).await?;
    let order = platform.wait_for_status(&poor, "CANCELLED").await?;
    assert_eq!(order["cancel_reason"], "PAYMENT_DECLINED");
    let order = platform.wait_for_event(&poor, "StockReleased").await?;
    assert_eq!(
        timeline(&order),
        [
            "OrderPlaced",
            "StockReserved",
            "PaymentFailed",
            "OrderCancelled",
            "StockReleased"
        ]
    );

    let stranger = platform.place("nobody", &[("TEA-01", 1)]).await?;
    assert_eq!(
        platform.wait_for_status(&stranger, "CANCELLED").await?["cancel_reason"],
        "PAYMENT_DECLINED"
    );
    platform.wait_for_event(&stranger, "StockReleased").await?;

    platform.wait_until_consumed().await?;
    let tea = platform.edge.product("TEA-01").await?;
    assert_eq!(
        (tea["available"].as_i64(), tea["reserved"].as_i64()),
        (Some(10), Some(0))
    );
    assert_eq!(
        platform.wallet("frank").await?["balance_cents"],
        500,
        "nothing was charged"
    );
    platform.assert_audit_clean().await?;
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unserved_country_refunds_the_payment_and_releases_the_stock() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 1_000, 10).await?;
    platform.edge.set_wallet("gina", 5_000).await?;

    let mut body = order_body("gina", &[("TEA-01", 2)]);
    body["shipping_address"]["country"] = "AQ".into();
    let id = platform.place_body(body).await?;
    let order = platform.wait_for_status(&id, "CANCELLED").await?;
    assert_eq!(order["cancel_reason"], "SHIPPING_UNAVAILABLE");
    platform.wait_for_event(&id, "PaymentRefunded").await?;
    let order = platform.wait_for_event(&id, "StockReleased").await?;
    let events = timeline(&order);
    assert_eq!(
        events[..5],
        [
            "OrderPlaced",
            "StockReserved",
            "PaymentCompleted",
            "ShipmentFailed",
            "OrderCancelled"
        ]
    );

    platform.wait_until_consumed().await?;
    assert_eq!(
        platform.wallet("gina").await?["balance_cents"],
        5_000,
        "the charge was refunded"
    );
    let tea = platform.edge.product("TEA-01").await?;
    assert_eq!(
        (tea["available"].as_i64(), tea["reserved"].as_i64()),
        (Some(10), Some(0))
    );
    platform.assert_audit_clean().await?;
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_cancel_compensates_every_step_taken_and_a_decided_order_answers_409()
-> anyhow::Result<()> {
    // With shipping down the saga stops after payment, so the cancel is
    // certain to find the order PENDING with stock reserved and money taken.
    let platform = Platform::start_with(Options {
        down: vec!["shipping"],
        ..Default::default()
    })
    .await?;
    platform.edge.set_product("TEA-01", 1_000, 10).await?;
    platform.edge.set_wallet("hana", 5_000).await?;

    let id = platform.place("hana", &[("TEA-01", 3)]).await?;
    // The money is taken; the order's timeline shows the payment only with
    // the event that answers it, and shipping is down.
    choreo_testkit::wait_until("hana to be charged", Duration::from_secs(60), || async {
        let wallet = platform.wallet("hana").await.ok()?;
        (wallet["balance_cents"] == 2_000).then_some(())
    })
    .await?;
    assert!(
        !timeline(&platform.edge.order(&id, 0).await?).contains(&"PaymentCompleted".to_owned())
    );
    let (status, body) = platform.cancel(&id).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "CANCELLED");
    assert_eq!(body["cancel_reason"], "CUSTOMER_CANCELLED");
    platform.wait_for_event(&id, "PaymentRefunded").await?;
    let order = platform.wait_for_event(&id, "StockReleased").await?;
    assert_eq!(platform.wallet("hana").await?["balance_cents"], 5_000);
    // The refund brought the payment it gives back into the timeline, ahead
    // of itself.
    let steps = timeline(&order);
    let at = |step: &str| steps.iter().position(|s| s == step);
    assert!(
        matches!((at("PaymentCompleted"), at("PaymentRefunded")), (Some(paid), Some(refunded)) if paid < refunded),
        "{steps:?}"
    );
    let tea = platform.edge.product("TEA-01").await?;
    assert_eq!(
        (tea["available"].as_i64(), tea["reserved"].as_i64()),
        (Some(10), Some(0))
    );

    let (again, error) = platform.cancel(&id).await?;
    assert_eq!(again, 409);
    assert_eq!(error["error"]["code"], "conflict");
    let (unknown, _) = platform
        .cancel("00000000-0000-4000-8000-000000000000")
        .await?;
    assert_eq!(unknown, 404);
    platform.assert_audit_clean().await?;
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_order_cannot_be_cancelled() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 1_000, 10).await?;
    platform.edge.set_wallet("ivan", 5_000).await?;
    let id = platform.place("ivan", &[("TEA-01", 1)]).await?;
    platform.wait_for_status(&id, "CONFIRMED").await?;
    let (status, error) = platform.cancel(&id).await?;
    assert_eq!(status, 409);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("CONFIRMED")
    );
    assert_eq!(platform.edge.order(&id, 0).await?["status"], "CONFIRMED");
    platform.assert_audit_clean().await?;
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_stuck_behind_a_down_service_is_cancelled_at_the_deadline() -> anyhow::Result<()> {
    let platform = Platform::start_with(Options {
        down: vec!["payment"],
        saga_deadline: Duration::from_secs(2),
        ..Options::default()
    })
    .await?;
    platform.edge.set_product("TEA-01", 1_000, 10).await?;
    let id = platform.place("judy", &[("TEA-01", 4)]).await?;
    // With payment down, the edge still takes the order and answers reads:
    // the order waits (here, for its deadline) rather than failing at the
    // door, and only payment's own route is unavailable.
    let judy = platform.customer("judy")?;
    let pending = judy
        .get(platform.edge.url(&format!("/v1/orders/{id}")))
        .send()
        .await?;
    assert_eq!(pending.status(), 200);
    assert_eq!(
        judy.get(platform.edge.url("/v1/products"))
            .send()
            .await?
            .status(),
        200
    );
    let wallet = platform
        .edge
        .admin()
        .put(platform.edge.url("/v1/admin/customers/judy/wallet"))
        .json(&serde_json::json!({"balance_cents": 1}))
        .send()
        .await?;
    assert_eq!(wallet.status(), 503);
    let order = platform.wait_for_status(&id, "CANCELLED").await?;
    assert_eq!(order["cancel_reason"], "TIMEOUT");
    platform.wait_for_event(&id, "StockReleased").await?;
    // The timeout joins the order's trace: its OrderCancelled goes out in
    // the trace the OrderPlaced did, so every compensation sits under the
    // order's request too.
    let order_db = sqlx::PgPool::connect(&platform.databases.order.url).await?;
    let traces: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT record_name, traceparent FROM outbox WHERE message_key = $1 ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&order_db)
    .await?;
    let trace_of = |record: &str| {
        traces
            .iter()
            .find(|(r, _)| r.ends_with(record))
            .and_then(|(_, tp)| tp.as_deref())
            .and_then(|tp| tp.split('-').nth(1))
            .map(str::to_owned)
    };
    let placed = trace_of(".OrderPlaced");
    assert!(placed.is_some(), "{traces:?}");
    assert_eq!(trace_of(".OrderCancelled"), placed, "{traces:?}");
    let tea = platform.edge.product("TEA-01").await?;
    assert_eq!(
        (tea["available"].as_i64(), tea["reserved"].as_i64()),
        (Some(10), Some(0))
    );
    platform.assert_audit_clean().await?;
    platform.stop().await
}
