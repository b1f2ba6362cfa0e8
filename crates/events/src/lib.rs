//! Choreo's event vocabulary and how it travels.
//!
//! `schemas/*.avsc` is the single source of truth: each record here embeds its
//! `.avsc` and is checked against it by the round-trip tests. On the wire every
//! message uses the Confluent format (magic byte 0, a 4-byte big-endian schema
//! id, the Avro binary datum) and registers under the TopicRecordNameStrategy
//! subject `<topic>-<record full name>`, so any Confluent-compatible consumer
//! can read Choreo's topics.

pub mod choreography;
mod codec;
pub mod graph;
mod meta;
mod records;
mod registry;
mod topic;
mod typed;
mod uuid_text;

pub use codec::{
    CodecError, DEFAULT_MAX_MESSAGE_BYTES, Decoded, Decoder, encode_datum, frame,
    limit_allocations, unframe,
};
pub use meta::EventMeta;
pub use records::*;
pub use registry::{RegistryClient, RegistryError};
pub use topic::{SAGA_SERVICES, SUBSCRIPTIONS, Topic, Topics};
pub use typed::{Input, InventoryEvent, OrderEvent, PaymentEvent, Record, ShippingEvent, inputs};

/// The Avro namespace of every Choreo record.
pub const NAMESPACE: &str = "io.choreo.events";

/// A record that travels on a Choreo topic.
pub trait Event: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {
    /// The record's simple name, which is also `meta.event_type`.
    const NAME: &'static str;
    /// The topic the record is published on.
    const TOPIC: Topic;
    /// The parsed `.avsc`.
    fn schema() -> &'static apache_avro::Schema;
    /// The `.avsc` text exactly as it is in `schemas/`.
    fn schema_text() -> &'static str;
    fn meta(&self) -> &EventMeta;

    /// `io.choreo.events.<NAME>`.
    fn full_name() -> String {
        format!("{NAMESPACE}.{}", Self::NAME)
    }
}

/// The registry subject of a record on a topic (TopicRecordNameStrategy).
pub fn subject(topic_name: &str, record_full_name: &str) -> String {
    format!("{topic_name}-{record_full_name}")
}
