//! How the edge treats a service that fails on the way: a read is tried
//! again and succeeds; a write is sent once, since the edge cannot know
//! whether a write it did not hear back from was applied. With several
//! replicas, calls go to each in turn, and a call that could not reach its
//! replica (nothing was sent) goes to the next.

use axum::{Json, Router, http::StatusCode, routing::get};
use choreo_kit::CancellationToken;
use serde_json::{Value, json};
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

const SECRET: &str = "upstreams-test-secret-of-32-bytes-or-more";

/// A stand-in inventory service whose every route fails with 503 for its
/// first `failures` requests and then answers; it counts what it received.
async fn flaky_inventory(failures: usize) -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    let answer = move || {
        let count = count.clone();
        async move {
            if count.fetch_add(1, Ordering::SeqCst) < failures {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"error": {"code": "unavailable", "message": "warming up"}})),
                )
            } else {
                (
                    StatusCode::OK,
                    Json(
                        json!({"sku": "TEA-01", "name": "Tea", "price_cents": 500, "currency": "EUR", "available": 1, "reserved": 0, "shipped": 0}),
                    ),
                )
            }
        }
    };
    let router = Router::new().route("/products/{sku}", get(answer.clone()).put(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((url, received))
}

async fn edge_before(inventory: &str, shutdown: &CancellationToken) -> anyhow::Result<String> {
    let edge = choreo_edge::start(
        choreo_edge::Settings {
            http_addr: "127.0.0.1:0".parse()?,
            inventory_url: inventory.to_owned(),
            auth: choreo_edge::AuthSettings {
                hs256_secret: Some(SECRET.into()),
                ..Default::default()
            },
            internal_auth: choreo_kit::internal_auth::generate(),
            ..Default::default()
        },
        shutdown.clone(),
    )
    .await?;
    Ok(format!("http://{}", edge.addr))
}

fn admin() -> anyhow::Result<reqwest::Client> {
    let token = choreo_kit::customer_token::hs256_token(SECRET, "ops", true, 600)?;
    choreo_testkit::bearer_client(&token)
}

#[tokio::test]
async fn a_read_that_meets_a_passing_failure_is_tried_again() -> anyhow::Result<()> {
    let (inventory, received) = flaky_inventory(2).await?;
    let shutdown = CancellationToken::new();
    let edge = edge_before(&inventory, &shutdown).await?;
    let response = admin()?
        .get(format!("{edge}/v1/products/TEA-01"))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let product: Value = response.json().await?;
    assert_eq!(product["sku"], "TEA-01");
    assert_eq!(
        received.load(Ordering::SeqCst),
        3,
        "two failures, then the answer"
    );
    shutdown.cancel();
    Ok(())
}

#[tokio::test]
async fn a_write_that_meets_a_failure_is_sent_once() -> anyhow::Result<()> {
    let (inventory, received) = flaky_inventory(1).await?;
    let shutdown = CancellationToken::new();
    let edge = edge_before(&inventory, &shutdown).await?;
    let response = admin()?
        .put(format!("{edge}/v1/admin/products/TEA-01"))
        .json(&json!({"name": "Tea", "price_cents": 500, "available": 1}))
        .send()
        .await?;
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await?;
    assert_eq!(error["error"]["code"], "upstream_failed");
    assert_eq!(received.load(Ordering::SeqCst), 1);
    shutdown.cancel();
    Ok(())
}

/// A port nothing listens on: a replica that is down.
async fn dead_replica() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    drop(listener);
    Ok(url)
}

#[tokio::test]
async fn calls_go_to_each_replica_in_turn_and_a_write_skips_one_that_is_down() -> anyhow::Result<()>
{
    let (first, first_received) = flaky_inventory(0).await?;
    let (second, second_received) = flaky_inventory(0).await?;
    let down = dead_replica().await?;
    let shutdown = CancellationToken::new();
    let edge = edge_before(&format!("{first}, {down},{second}/"), &shutdown).await?;
    let admin = admin()?;
    for _ in 0..6 {
        // A write: the replica that is down received nothing, so the call
        // goes to the next one instead of failing.
        let response = admin
            .put(format!("{edge}/v1/admin/products/TEA-01"))
            .json(&json!({"name": "Tea", "price_cents": 500, "available": 1}))
            .send()
            .await?;
        assert_eq!(response.status(), 200, "{}", response.text().await?);
    }
    let (first, second) = (
        first_received.load(Ordering::SeqCst),
        second_received.load(Ordering::SeqCst),
    );
    assert_eq!(first + second, 6, "each write sent once");
    assert!(
        first >= 2 && second >= 2,
        "spread over both live replicas: {first} and {second}"
    );
    shutdown.cancel();
    Ok(())
}

#[tokio::test]
async fn an_upstream_setting_that_is_not_a_url_stops_the_edge_at_start() {
    let started = choreo_edge::start(
        choreo_edge::Settings {
            http_addr: "127.0.0.1:0".parse().expect("an address"),
            inventory_url: "http://127.0.0.1:8083,inventory:8083".to_owned(),
            auth: choreo_edge::AuthSettings {
                hs256_secret: Some(SECRET.into()),
                ..Default::default()
            },
            internal_auth: choreo_kit::internal_auth::generate(),
            ..Default::default()
        },
        CancellationToken::new(),
    )
    .await;
    let error = match started {
        Ok(_) => panic!("the edge started with a bad inventory URL"),
        Err(e) => format!("{:#}", anyhow::Error::from(e)),
    };
    assert!(
        error.contains("inventory") && error.contains("\"inventory:8083\" is not an http(s) URL"),
        "{error}"
    );
}
