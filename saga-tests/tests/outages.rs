//! A service's database goes away mid-stream and comes back: the service
//! says it is not ready meanwhile, recovers by itself without a restart, and
//! no event is lost or applied twice.

use choreo_saga_tests::{Platform, SAGA_DEADLINE};
use choreo_testkit::wait_until;
use serde_json::Value;

/// The service's readiness: its HTTP status and body.
async fn readiness(platform: &Platform, base: &str) -> Option<(u16, Value)> {
    let response = platform
        .edge
        .admin()
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
    platform.edge.set_product("TEA-01", 500, 100).await?;
    platform.edge.set_wallet("alice", 1_000_000).await?;
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
        .edge
        .admin()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_registry_down_services_are_degraded_yet_ready_and_orders_are_taken()
-> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 500, 100).await?;
    platform.edge.set_wallet("alice", 100_000).await?;
    platform.stop_registry();

    // Ready (its database answers) but degraded, naming the registry.
    let (status, body) = wait_until("payment to report the registry", SAGA_DEADLINE, || async {
        readiness(&platform, &platform.payment)
            .await
            .filter(|(_, body)| body["checks"]["registry"]["error"].is_string())
    })
    .await?;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("degraded")),
        "{body}"
    );
    assert!(body["stalled"]["registry"].is_string(), "{body}");
    let metrics = platform
        .edge
        .admin()
        .get(format!("{}/metrics", platform.payment))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("choreo_stalled{component=\"registry\"} 1"),
        "{metrics}"
    );

    // The edge still takes an order: the order service's outbox holds it.
    let placed = platform
        .edge
        .admin()
        .post(platform.edge.url("/v1/orders"))
        .json(&choreo_saga_tests::order_body("alice", &[("TEA-01", 1)]))
        .send()
        .await?;
    assert_eq!(placed.status(), 201);
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_refuses_a_pool_that_its_partitions_could_exhaust() -> anyhow::Result<()> {
    let platform = choreo_saga_tests::Platform::start_with(choreo_saga_tests::Options {
        down: vec!["payment"],
        ..Default::default()
    })
    .await?;
    // Two input topics of three partitions: a replica holding all six
    // keeps six connections through provider calls.
    let settings = |pool: u32| choreo_payment::Settings {
        service: choreo_service::ServiceSettings {
            http_addr: "127.0.0.1:0".parse().expect("an address"),
            database_url: platform.databases.payment.url.clone(),
            database_max_connections: pool,
            registry_url: platform.registry.clone(),
            kafka: platform.kafka.clone(),
            internal_auth: platform.internal_auth.clone(),
            ..choreo_service::ServiceSettings::local("payment", 0)
        },
        provider: Default::default(),
    };
    let shutdown = choreo_kit::CancellationToken::new();
    let Err(refused) = choreo_payment::start(settings(6), shutdown.clone()).await else {
        anyhow::bail!("a pool of 6 started");
    };
    let error = choreo_telemetry::error_chain(&refused);
    assert!(
        error.contains("database_max_connections is 6") && error.contains("all 6 partitions"),
        "{error}"
    );
    let started = choreo_payment::start(settings(7), shutdown.clone()).await?;
    shutdown.cancel();
    started.wait().await?;
    platform.stop().await
}
