//! Publishing straight to a topic, as another service's relay would (or as a
//! broken producer would), for tests that need messages the saga would
//! rarely produce by itself.

use anyhow::Context;
use choreo_events::{Event, RegistryClient, Topics, encode_datum, frame, subject};
use rdkafka::{
    ClientConfig,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use std::time::Duration;

/// `event` in the Confluent wire format, its schema registered under its
/// topic's subject.
pub async fn framed<E: Event>(
    topics: &Topics,
    registry: &RegistryClient,
    event: &E,
) -> anyhow::Result<Vec<u8>> {
    let topic = topics.name(E::TOPIC);
    let id = registry
        .register(&subject(&topic, &E::full_name()), E::schema_text())
        .await?;
    Ok(frame(id, &encode_datum(event)?))
}

/// Encodes `event` (registering its schema) and publishes it to its topic,
/// keyed by its order id.
pub async fn publish_event<E: Event>(
    bootstrap: &str,
    topics: &Topics,
    registry: &RegistryClient,
    event: &E,
) -> anyhow::Result<()> {
    let value = framed(topics, registry, event).await?;
    let key = event.meta().correlation_id.to_string();
    RawProducer::new(bootstrap)?
        .send(&topics.name(E::TOPIC), None, &key, &value, &[])
        .await
}

/// A plain producer of raw bytes: another team's service, or a broken one.
pub struct RawProducer(FutureProducer);

impl RawProducer {
    pub fn new(bootstrap: &str) -> anyhow::Result<Self> {
        Ok(Self(
            ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .create()
                .context("creating a producer")?,
        ))
    }

    /// Publishes `value` under `key` with `headers` to `topic`, on
    /// `partition` or wherever the key hashes to, and waits for the broker's
    /// acknowledgement.
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &str,
        value: &[u8],
        headers: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let mut list = OwnedHeaders::new();
        for (key, value) in headers {
            list = list.insert(Header {
                key,
                value: Some(*value),
            });
        }
        let mut record = FutureRecord::to(topic)
            .key(key)
            .payload(value)
            .headers(list);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        self.0
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("publishing to {topic}: {e}"))?;
        Ok(())
    }
}
