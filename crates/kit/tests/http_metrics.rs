//! A server started with `choreo_kit::serve` measures its requests as a
//! scraper reads them: by route template (never a raw path), method and
//! status; the requests in flight; and refusals by reason.

use axum::{
    Router,
    http::StatusCode,
    routing::{get, post},
};
use choreo_kit::{CancellationToken, HttpError, HttpMetrics};
use choreo_testkit::metrics::{self, Exposition, label_values, sample};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};

async fn scrape(base: &str) -> Exposition {
    metrics::scrape(&format!("{base}/metrics"))
        .await
        .expect("a scrape that parses")
}

#[tokio::test]
async fn requests_are_counted_by_route_template_status_and_refusal_reason() {
    let (entered_tx, mut entered) = mpsc::unbounded_channel::<()>();
    let release = Arc::new(Notify::new());
    let held = release.clone();
    let metrics = HttpMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let router = Router::new()
        .route("/orders/{id}", get(|| async { "an order" }))
        .route(
            "/orders",
            post(|| async { HttpError::invalid("items: at least one") }),
        )
        .route(
            "/limited",
            get(|| async {
                HttpError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "slow down")
            }),
        )
        .route(
            "/slow",
            get(move || async move {
                let _ = entered_tx.send(());
                held.notified().await;
                "done"
            }),
        )
        .merge(choreo_kit::http::metrics_route(registry));
    let shutdown = CancellationToken::new();
    let (addr, server) = choreo_kit::serve(
        router,
        "127.0.0.1:0".parse().expect("address"),
        shutdown.clone(),
        metrics,
    )
    .await
    .expect("bind");
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    for path in ["/orders/a", "/orders/b", "/limited", "/nowhere/42"] {
        client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect(path);
    }
    let refused = client
        .post(format!("{base}/orders"))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let slow = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/slow");
        async move { client.get(url).send().await.map(|r| r.status()) }
    });
    entered.recv().await.expect("the slow request arrives");
    let during = scrape(&base).await;
    release.notify_one();
    assert_eq!(slow.await.expect("join").expect("slow"), StatusCode::OK);
    let after = scrape(&base).await;

    let duration = "http_server_request_duration_seconds";
    let get_order = [
        ("http_request_method", "GET"),
        ("http_route", "/orders/{id}"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(sample(&after, duration, &get_order), 2.0);
    assert_eq!(
        sample(
            &after,
            duration,
            &[
                ("http_request_method", "POST"),
                ("http_route", "/orders"),
                ("http_response_status_code", "422")
            ]
        ),
        1.0
    );
    // Routes are templates only: no order id, and an empty route (which
    // Prometheus takes as no label) for the path no route matched, whose
    // 404 is still counted.
    assert_eq!(
        label_values(&after, duration, "http_route"),
        [
            "",
            "/limited",
            "/metrics",
            "/orders",
            "/orders/{id}",
            "/slow"
        ]
    );
    assert_eq!(
        sample(&after, duration, &[("http_response_status_code", "404")]),
        1.0
    );

    let refusals = "choreo_http_refusals";
    assert_eq!(
        sample(
            &after,
            refusals,
            &[("http_route", "/orders"), ("reason", "validation")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            refusals,
            &[("http_route", "/limited"), ("reason", "rate_limited")]
        ),
        1.0
    );
    assert_eq!(sample(&after, refusals, &[]), 2.0, "a 404 is no refusal");

    // The scrape itself is in flight while it is answered.
    let active = "http_server_active_requests";
    let get = [("http_request_method", "GET"), ("url_scheme", "http")];
    assert_eq!(
        sample(&during, active, &get),
        2.0,
        "the slow one and the scrape"
    );
    assert_eq!(sample(&after, active, &get), 1.0, "the scrape alone");

    shutdown.cancel();
    server.await.expect("join").expect("served");
}
