//! The saga's live flow, as an operator reads it at `GET /v1/admin/saga`
//! (the dashboard's graph): per step, the orders that reached it in the
//! last minute, the median time it took, and the orders waiting there now.

use choreo_saga_tests::{Options, Platform, bearer_client};
use serde_json::Value;

fn step<'a>(flow: &'a Value, record: &str) -> &'a Value {
    flow["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["record"] == record))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_shows_where_pending_sagas_wait() -> anyhow::Result<()> {
    // Payment is down: a reserved order waits at StockReserved, longer than
    // the test (the deadline would cancel it).
    let platform = Platform::start_with(Options {
        down: vec!["payment"],
        saga_deadline: std::time::Duration::from_secs(600),
        ..Options::default()
    })
    .await?;
    platform.edge.set_product("TEA-01", 1_250, 10).await?;
    let waiting = platform.place("alice", &[("TEA-01", 1)]).await?;
    platform.wait_for_event(&waiting, "StockReserved").await?;
    // One more, refused for stock, which ends and waits nowhere.
    let refused = platform.place("alice", &[("TEA-01", 50)]).await?;
    platform.wait_for_status(&refused, "CANCELLED").await?;

    let response = platform
        .edge
        .admin()
        .get(platform.edge.url("/v1/admin/saga"))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let flow: Value = response.json().await?;
    let pending = platform.edge.order(&waiting, 0).await?;
    assert_eq!(pending["status"], "PENDING", "{pending:#}");
    assert_eq!(flow["window_seconds"], 60);
    let records: Vec<&str> = flow["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["record"].as_str())
        .collect();
    assert_eq!(
        records.len(),
        12,
        "every saga step, no admin record: {records:?}"
    );
    assert!(!records.contains(&"ProductSet"), "{records:?}");

    let placed = step(&flow, "OrderPlaced");
    assert_eq!(placed["events"], 2, "{flow:#}");
    assert_eq!(placed["topic"], "order.events");
    assert_eq!(placed["service"], "order");
    assert!(
        placed["p50_ms"].is_null(),
        "no step comes before a placement"
    );
    for (record, events) in [
        ("StockReserved", 1),
        ("StockRejected", 1),
        ("OrderCancelled", 1),
    ] {
        let s = step(&flow, record);
        assert_eq!(s["events"], events, "{record}: {flow:#}");
        assert!(
            s["p50_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{record} took a measured time: {s}"
        );
    }
    assert_eq!(step(&flow, "PaymentCompleted")["events"], 0);
    assert!(step(&flow, "PaymentCompleted")["p50_ms"].is_null());
    // Where the pending saga is stuck, and nowhere else.
    for s in flow["steps"].as_array().into_iter().flatten() {
        let expected = i64::from(s["record"] == "StockReserved");
        assert_eq!(s["waiting"], expected, "{s}");
    }
    // The choreography beside the figures: who turns the step into what.
    let payment = flow["reactions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["service"] == "payment" && r["on"] == "StockReserved")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        payment["emits"],
        serde_json::json!(["PaymentCompleted", "PaymentFailed"])
    );
    assert!(
        flow["commands"].as_array().into_iter().flatten().any(
            |c| c["name"] == "POST /orders" && c["emits"] == serde_json::json!(["OrderPlaced"])
        ),
        "{flow:#}"
    );

    // Admins only.
    let customer = bearer_client(&platform.token("alice", false)?)?;
    let refused = customer
        .get(platform.edge.url("/v1/admin/saga"))
        .send()
        .await?;
    assert_eq!(refused.status(), 403);
    Ok(())
}
