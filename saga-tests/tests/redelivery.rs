//! Kafka delivers at least once: a redelivered event must change nothing.

use choreo_events::Topic;
use choreo_saga_tests::{Platform, order_body};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_of_a_saga_redelivered_is_applied_once() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 1_000, 10).await?;
    platform.edge.set_wallet("bob", 5_000).await?;
    let placed: Value = platform
        .edge
        .admin()
        .post(platform.edge.url("/v1/orders"))
        .json(&order_body("bob", &[("TEA-01", 3)]))
        .send()
        .await?
        .json()
        .await?;
    let id = placed["id"].as_str().expect("order id").to_owned();
    platform.wait_for_status(&id, "CONFIRMED").await?;
    platform.wait_until_consumed().await?;
    // Read once every event is consumed: the order can be CONFIRMED before
    // its timeline has recorded PaymentCompleted, which crosses with the
    // shipment on another topic.
    let before = platform.edge.order(&id, 0).await?;

    // Every event of the saga, on every topic, delivered a second time
    // (the topics also carry the catalog set-up, `ProductSet`, keyed by
    // the change rather than an order).
    let of_order =
        |m: &rdkafka::message::OwnedMessage| rdkafka::Message::key(m) == Some(id.as_bytes());
    let mut copies = Vec::new();
    for topic in Topic::ALL {
        copies.extend(
            platform
                .read_topic(topic)
                .await?
                .into_iter()
                .filter(of_order),
        );
    }
    assert_eq!(copies.len(), 5, "one event per saga step");
    platform.republish(&copies).await?;
    platform.wait_until_consumed().await?;

    let after = platform.edge.order(&id, 0).await?;
    assert_eq!(after["status"], "CONFIRMED");
    assert_eq!(
        after["timeline"], before["timeline"],
        "no step appears twice"
    );
    let tea = platform.edge.product("TEA-01").await?;
    assert_eq!(
        (
            tea["available"].as_i64(),
            tea["reserved"].as_i64(),
            tea["shipped"].as_i64()
        ),
        (Some(7), Some(0), Some(3)),
        "stock reserved and shipped once"
    );
    assert_eq!(
        platform.wallet("bob").await?["balance_cents"],
        2_000,
        "charged once"
    );
    for topic in Topic::ALL {
        let events: Vec<_> = platform
            .read_topic(topic)
            .await?
            .into_iter()
            .filter(of_order)
            .collect();
        let originals = copies
            .iter()
            .filter(|m| rdkafka::Message::topic(*m) == platform.kafka.topics().name(topic))
            .count();
        assert_eq!(
            events.len(),
            originals * 2,
            "nothing new emitted on {topic:?}"
        );
    }
    platform.assert_audit_clean().await?;
    platform.stop().await
}
