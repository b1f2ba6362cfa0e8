//! Every process's `/metrics` counts the saga as a scraper reads it.

use crate::helpers::*;
use anyhow::Context;
use choreo_testkit::{
    metrics::{Exposition, sample, scrape},
    wait_until,
};
use std::sync::{Arc, Mutex};

/// The `/metrics` URL of every saga process, by kind: the edge, then each
/// of the four services with all its replicas, as `/v1/admin/platform`
/// lists them once each replica answers.
pub(crate) async fn metrics_targets(
    edge: &str,
    admin_token: &str,
) -> anyhow::Result<Vec<Vec<String>>> {
    let admin = bearer_client(admin_token)?;
    wait_until("every replica to answer", DEADLINE, || async {
        let platform = get_json(&admin, format!("{edge}/v1/admin/platform")).await?;
        let listed = platform["services"].as_array()?;
        if !listed.iter().all(|s| s["reachable"] == true) {
            return None;
        }
        let mut targets = vec![vec![format!("{edge}/metrics")]];
        for service in &SAGA_PROCESSES[1..] {
            let urls: Vec<String> = listed
                .iter()
                .filter(|s| s["service"] == *service)
                .filter_map(|s| Some(format!("{}/metrics", s["url"].as_str()?)))
                .collect();
            if urls.is_empty() {
                return None;
            }
            targets.push(urls);
        }
        Some(targets)
    })
    .await
}

/// `/metrics` of each target, parsed as a scraper parses it.
pub(crate) async fn scrape_all(targets: &[Vec<String>]) -> anyhow::Result<Vec<Vec<Exposition>>> {
    let mut all = Vec::new();
    for replicas in targets {
        let mut parsed = Vec::new();
        for url in replicas {
            parsed.push(scrape(url).await?);
        }
        all.push(parsed);
    }
    Ok(all)
}

/// [`sample`] summed over the replicas of a service.
pub(crate) fn sample_replicas(
    replicas: &[Exposition],
    family: &str,
    labels: &[(&str, &str)],
) -> f64 {
    replicas.iter().map(|e| sample(e, family, labels)).sum()
}

/// The order's saga moved each process's counters by exactly its share:
/// one saga started and confirmed, two events published by the order
/// service, one event applied by each service's step; one `POST
/// /v1/orders` answered 201 by the edge, which called the order service
/// once for it. Returns the scrape that showed it.
pub(crate) async fn metrics_count_the_saga(
    targets: &[Vec<String>],
    before: &[Vec<Exposition>],
) -> anyhow::Result<Vec<Vec<Exposition>>> {
    type Check = (
        usize,
        &'static str,
        &'static [(&'static str, &'static str)],
        f64,
    );
    const MOVES: [Check; 10] = [
        (
            0,
            "http_server_request_duration_seconds",
            &[
                ("http_request_method", "POST"),
                ("http_route", "/v1/orders"),
                ("http_response_status_code", "201"),
            ],
            1.0,
        ),
        (
            0,
            "http_client_request_duration_seconds",
            &[
                ("peer_service", "order"),
                ("http_request_method", "POST"),
                ("http_response_status_code", "201"),
                ("outcome", "ok"),
            ],
            1.0,
        ),
        (
            1,
            "http_server_request_duration_seconds",
            &[
                ("http_request_method", "POST"),
                ("http_route", "/orders"),
                ("http_response_status_code", "201"),
            ],
            1.0,
        ),
        (1, "choreo_sagas_started", &[], 1.0),
        (1, "choreo_sagas_finished", &[("outcome", "confirmed")], 1.0),
        (
            1,
            "choreo_saga_duration_seconds",
            &[("outcome", "confirmed")],
            1.0,
        ),
        (
            1,
            "choreo_events_published",
            &[("topic", "order.events")],
            2.0,
        ),
        (
            2,
            "choreo_handler_duration_seconds",
            &[("event_type", "OrderPlaced"), ("outcome", "applied")],
            1.0,
        ),
        (
            3,
            "choreo_handler_duration_seconds",
            &[("event_type", "StockReserved"), ("outcome", "applied")],
            1.0,
        ),
        (
            4,
            "choreo_handler_duration_seconds",
            &[("event_type", "PaymentCompleted"), ("outcome", "applied")],
            1.0,
        ),
    ];
    let last = Arc::new(Mutex::new(String::new()));
    let moved = wait_until("the saga's metrics", DEADLINE, || {
        let last = last.clone();
        let note = move |seen: String| {
            if let Ok(mut l) = last.lock() {
                *l = seen;
            }
        };
        async move {
            let after = match scrape_all(targets).await {
                Ok(after) => after,
                Err(e) => {
                    note(e.to_string());
                    return None;
                }
            };
            let deltas: Vec<f64> = MOVES
                .iter()
                .map(|(p, family, labels, _)| {
                    sample_replicas(&after[*p], family, labels)
                        - sample_replicas(&before[*p], family, labels)
                })
                .collect();
            note(format!("{deltas:?}"));
            let counted = MOVES
                .iter()
                .zip(&deltas)
                .all(|((.., want), got)| got == want);
            // Lag is the group watch's reading, every 5 s.
            let lag = after[1]
                .iter()
                .all(|e| e.families.contains_key("choreo_consumer_lag"));
            (counted && lag).then_some(after)
        }
    })
    .await
    .with_context(|| {
        format!(
            "moves wanted {MOVES:?}, last seen {:?}",
            last.lock().map(|l| l.clone())
        )
    })?;
    let edge = &moved[0][0];
    for upstream in ["order", "inventory", "payment"] {
        let state = |s| {
            sample(
                edge,
                "choreo_circuit_breaker_state",
                &[("upstream", upstream), ("state", s)],
            )
        };
        assert_eq!(
            (state("closed"), state("open"), state("half_open")),
            (1.0, 0.0, 0.0),
            "{upstream}"
        );
    }
    // The test's order without a token, before the saga's.
    assert_eq!(
        sample(
            edge,
            "choreo_http_refusals",
            &[("http_route", "/v1/orders"), ("reason", "unauthenticated")]
        ),
        1.0
    );
    for service in moved[1..].iter().flatten() {
        assert!(service.families.contains_key("choreo_outbox_backlog"));
        assert!(
            service
                .families
                .contains_key("choreo_outbox_oldest_age_seconds")
        );
        assert_eq!(sample(service, "choreo_ready", &[]), 1.0);
    }
    let order = &moved[1];
    assert_eq!(
        sample_replicas(order, "choreo_saga_deadline_seconds", &[]),
        30.0 * order.len() as f64,
        "the default deadline, from each replica"
    );
    Ok(moved)
}
