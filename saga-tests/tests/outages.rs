//! A service's database goes away mid-stream and comes back: the service
//! says it is not ready meanwhile, recovers by itself without a restart, and
//! no event is lost or applied twice.

use choreo_saga_tests::{Platform, SAGA_DEADLINE};
use choreo_testkit::wait_until;
use serde_json::Value;

/// The service's readiness: its HTTP status and body.
async fn readiness(platform: &Platform, base: &str) -> Option<(u16, Value)> {
    let response = platform
        .http
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_database_outage_mid_stream_loses_nothing_and_recovers_without_restart()
-> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.set_product("TEA-01", 500, 100).await?;
    platform.set_wallet("alice", 1_000_000).await?;
    let (ready, _) = readiness(&platform, &platform.payment)
        .await
        .expect("payment answers");
    assert_eq!(ready, 200);

    // A stream of orders, with the payment database cut halfway through.
    let mut orders = Vec::new();
    for _ in 0..5 {
        orders.push(platform.place("alice", &[("TEA-01", 1)]).await?);
    }
    platform.databases.payment.take_down().await?;
    for _ in 0..5 {
        orders.push(platform.place("alice", &[("TEA-01", 1)]).await?);
    }

    // Payment says why it is not ready, and keeps answering liveness.
    let (_, body) = wait_until("payment to report not ready", SAGA_DEADLINE, || async {
        readiness(&platform, &platform.payment)
            .await
            .filter(|(status, _)| *status == 503)
    })
    .await?;
    assert_eq!(body["status"], "not_ready");
    assert!(body["checks"]["database"]["error"].is_string(), "{body}");
    let live = platform
        .http
        .get(format!("{}/health/live", platform.payment))
        .send()
        .await?;
    assert_eq!(live.status(), 200);

    platform.databases.payment.bring_back().await?;
    for id in &orders {
        platform.wait_for_status(id, "CONFIRMED").await?;
    }
    wait_until("payment to be ready again", SAGA_DEADLINE, || async {
        readiness(&platform, &platform.payment)
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await?;

    // Each order charged once: ten orders of 500 cents.
    let wallet = platform.wallet("alice").await?;
    assert_eq!(wallet["balance_cents"], 1_000_000 - 10 * 500);
    platform.assert_audit_clean().await?;
    platform.stop().await
}
