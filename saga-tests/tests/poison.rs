//! Poison on every input topic of every service: each consumer of the topic
//! dead-letters it with its metadata and goes on, so orders placed after it
//! still complete.

use choreo_events::{SAGA_SERVICES, Topic};
use choreo_messaging::dead_letter;
use choreo_saga_tests::{Platform, SAGA_DEADLINE};
use choreo_testkit::{RawProducer, wait_until};
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_every_input_topic_is_dead_lettered_by_each_consumer_and_orders_go_on()
-> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 500, 100).await?;
    platform.edge.set_wallet("alice", 100_000).await?;

    // Bytes that are no event, on every partition of every saga topic, so
    // that whatever partition the next order lands on, poison is ahead of it.
    let topics = platform.kafka.topics();
    let producer = RawProducer::new(&platform.kafka.bootstrap_servers)?;
    for topic in Topic::ALL {
        for partition in 0..platform.kafka.partitions {
            producer
                .send(
                    &topics.name(topic),
                    Some(partition),
                    &format!("poison-{partition}"),
                    b"\x00not an event",
                    &[("origin", "saga-test")],
                )
                .await?;
        }
    }

    let id = platform.place("alice", &[("TEA-01", 2)]).await?;
    platform.wait_for_status(&id, "CONFIRMED").await?;
    platform.wait_until_consumed().await?;

    // Who reads what: a letter per consumer of each topic and partition.
    let expected: BTreeSet<(String, String, i32)> = [
        ("inventory", Topic::Order),
        ("payment", Topic::Order),
        ("shipping", Topic::Order),
        ("order", Topic::Inventory),
        ("payment", Topic::Inventory),
        ("order", Topic::Payment),
        ("shipping", Topic::Payment),
        ("order", Topic::Shipping),
    ]
    .into_iter()
    .flat_map(|(service, topic)| {
        let name = topics.name(topic);
        (0..platform.kafka.partitions).map(move |p| (service.to_owned(), name.clone(), p))
    })
    .collect();
    let letters = wait_until(
        "every consumer to dead-letter its poison",
        SAGA_DEADLINE,
        || async {
            let mut letters = Vec::new();
            for service in SAGA_SERVICES {
                letters.extend(dead_letter::list(&platform.kafka, service).await.ok()?);
            }
            (letters.len() >= expected.len()).then_some(letters)
        },
    )
    .await?;
    let found: BTreeSet<(String, String, i32)> = letters
        .iter()
        .map(|l| {
            (
                l.service.clone(),
                l.source_topic.clone(),
                l.source_partition,
            )
        })
        .collect();
    assert_eq!(found, expected);
    assert_eq!(
        letters.len(),
        expected.len(),
        "one letter each: {letters:#?}"
    );
    for letter in &letters {
        assert_eq!(letter.value(), Some(b"\x00not an event".as_slice()));
        assert_eq!(
            letter.key.as_deref(),
            Some(format!("poison-{}", letter.source_partition).as_str())
        );
        assert!(
            letter
                .headers
                .contains(&("origin".to_owned(), Some("saga-test".to_owned()))),
            "{letter:#?}"
        );
        assert!(!letter.error.is_empty() && letter.failed_at.is_some());
    }

    platform.assert_audit_clean().await?;
    platform.stop().await
}
