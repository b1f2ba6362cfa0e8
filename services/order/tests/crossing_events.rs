//! Events on different topics have no order between them. The order service
//! must reach the same outcome whichever arrives first.

use choreo_events::*;
use choreo_kit::CancellationToken;
use choreo_messaging::KafkaSettings;
use choreo_service::ServiceSettings;
use choreo_testkit::{Broker, TestDatabase, publish_event, unique_name, wait_until};
use serde_json::{Value, json};
use std::{net::SocketAddr, time::Duration};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_shipment_is_seen_before_its_prices_is_confirmed_with_its_total()
-> anyhow::Result<()> {
    let broker = Broker::from_env().await?;
    let registry_db = TestDatabase::create("registry").await?;
    let order_db = TestDatabase::create("order").await?;
    let shutdown = CancellationToken::new();
    let registry = choreo_schema_registry::start(
        choreo_schema_registry::Settings {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: registry_db.url.clone(),
            internal_auth: choreo_testkit::internal_auth(),
            ..Default::default()
        },
        shutdown.clone(),
    )
    .await?;
    let registry_url = format!("http://{}", registry.addr);
    let kafka = KafkaSettings {
        bootstrap_servers: broker.bootstrap(),
        topic_prefix: format!("{}.", unique_name("t")),
        partitions: 2,
        ..Default::default()
    };
    let topics = kafka.topics();
    // The dead-letter topics too: on the mock cluster, which cannot create
    // topics, the consumer waits for its own before it reads anything.
    let names = topics.all();
    match broker.mock() {
        Some(mock) => mock.create_topics(&names, kafka.partitions)?,
        None => choreo_messaging::admin::ensure_topics(&kafka, &names).await?,
    }
    let order_service = choreo_order::start(
        choreo_order::Settings {
            service: ServiceSettings {
                http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                database_url: order_db.url.clone(),
                database_max_connections: 5,
                registry_url: registry_url.clone(),
                kafka: kafka.clone(),
                internal_auth: choreo_testkit::internal_auth(),
                ..ServiceSettings::local("order", 0)
            },
            max_wait_seconds: 30,
            saga_deadline_seconds: 300.0,
            idempotency_key_hours: 24.0,
        },
        shutdown.clone(),
    )
    .await?;
    let base = format!("http://{}", order_service.addr);
    let http = choreo_testkit::operator_client("order");

    let placed: Value = http
        .post(format!("{base}/orders"))
        .json(&json!({
            "customer_id": "dora",
            "items": [{"sku": "TEA-01", "quantity": 2}],
            "shipping_address": {"name": "Dora", "line1": "1 Rue", "city": "Paris", "postal_code": "75001", "country": "FR"}
        }))
        .send()
        .await?
        .json()
        .await?;
    let order_id = Uuid::parse_str(placed["id"].as_str().unwrap_or_default())?;
    let first = placed["timeline"][0]["event_id"]
        .as_str()
        .unwrap_or_default();
    let placed_meta = EventMeta {
        event_id: Uuid::parse_str(first)?,
        ..EventMeta::first::<OrderPlaced>(order_id, "order")
    };

    // The saga's later events, delivered last step first.
    let reserved = StockReserved {
        meta: EventMeta::caused_by::<StockReserved>(&placed_meta, "inventory"),
        order_id,
        customer_id: "dora".into(),
        lines: vec![PricedLine {
            sku: "TEA-01".into(),
            quantity: 2,
            unit_price_cents: 700,
            line_total_cents: 1_400,
        }],
        total_cents: 1_400,
        currency: "EUR".into(),
        shipping_address: None,
    };
    let paid = PaymentCompleted {
        meta: EventMeta::caused_by::<PaymentCompleted>(&reserved.meta, "payment"),
        order_id,
        payment_id: Uuid::new_v4(),
        customer_id: "dora".into(),
        amount_cents: 1_400,
        currency: "EUR".into(),
        shipping_address: None,
    };
    let shipped = ShipmentScheduled {
        meta: EventMeta::caused_by::<ShipmentScheduled>(&paid.meta, "shipping"),
        order_id,
        shipment_id: Uuid::new_v4(),
        country: "FR".into(),
        payment: Some(paid.meta.clone()),
    };
    let client = RegistryClient::new(&registry_url, choreo_testkit::operator());
    publish_event(&kafka.bootstrap_servers, &topics, &client, &shipped).await?;
    wait_until(
        "the shipment to reach the timeline",
        Duration::from_secs(60),
        || async {
            let order: Value = http
                .get(format!("{base}/orders/{order_id}"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let seen = order["timeline"]
                .as_array()?
                .iter()
                .any(|e| e["event_type"] == "ShipmentScheduled");
            seen.then_some(())
        },
    )
    .await?;
    let early: Value = http
        .get(format!("{base}/orders/{order_id}"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        early["status"], "PENDING",
        "no confirmation without the prices"
    );

    publish_event(&kafka.bootstrap_servers, &topics, &client, &paid).await?;
    publish_event(&kafka.bootstrap_servers, &topics, &client, &reserved).await?;
    let order = wait_until(
        "the order to be confirmed",
        Duration::from_secs(60),
        || async {
            let order: Value = http
                .get(format!("{base}/orders/{order_id}?wait=5"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (order["status"] == "CONFIRMED").then_some(order)
        },
    )
    .await?;
    assert_eq!(order["total_cents"], 1_400);
    assert_eq!(order["lines"][0]["unit_price_cents"], 700);
    let confirmations = order["timeline"].as_array().map_or(0, |t| {
        t.iter()
            .filter(|e| e["event_type"] == "OrderConfirmed")
            .count()
    });
    assert_eq!(confirmations, 1);
    // The payment is in the timeline once, from the envelope the shipment
    // carried, ahead of it; the PaymentCompleted itself was passed over.
    let steps: Vec<(&str, &str)> = order["timeline"].as_array().map_or(Vec::new(), |t| {
        t.iter()
            .map(|e| {
                (
                    e["event_type"].as_str().unwrap_or_default(),
                    e["event_id"].as_str().unwrap_or_default(),
                )
            })
            .collect()
    });
    let paid_id = paid.meta.event_id.to_string();
    let payments: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i].0 == "PaymentCompleted")
        .collect();
    assert_eq!(payments.len(), 1, "one payment step: {steps:?}");
    assert_eq!(steps[payments[0]].1, paid_id);
    assert_eq!(steps[payments[0] + 1].0, "ShipmentScheduled", "{steps:?}");

    shutdown.cancel();
    let _ = order_service.wait().await;
    let _ = registry.task.await;
    order_db.drop_db().await?;
    registry_db.drop_db().await?;
    Ok(())
}
