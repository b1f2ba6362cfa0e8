//! Publishing a Choreo event straight to its topic, as another service's
//! relay would, for tests that need events in an order the saga would rarely
//! produce by itself.

use anyhow::Context;
use choreo_events::{Event, RegistryClient, Topics, encode_datum, frame, subject};
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use std::time::Duration;

/// Encodes `event` in the Confluent wire format (registering its schema) and
/// publishes it to its topic, keyed by its order id.
pub async fn publish_event<E: Event>(
    bootstrap: &str,
    topics: &Topics,
    registry: &RegistryClient,
    event: &E,
) -> anyhow::Result<()> {
    let topic = topics.name(E::TOPIC);
    let id = registry
        .register(&subject(&topic, &E::full_name()), E::schema_text())
        .await?;
    let value = frame(id, &encode_datum(event)?);
    let key = event.meta().correlation_id.to_string();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating a producer")?;
    producer
        .send(
            FutureRecord::to(&topic).key(&key).payload(&value),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("publishing {} to {topic}: {e}", E::NAME))?;
    Ok(())
}
