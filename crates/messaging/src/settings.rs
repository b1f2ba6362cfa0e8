//! Broker connection settings shared by producers, consumers and admin.

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    /// Prepended to every topic and consumer group name.
    pub topic_prefix: String,
    /// Partitions for topics this process creates.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Extra librdkafka properties (SASL, TLS, tuning), applied last; `_`
    /// in a key stands for `.`.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic_prefix: String::new(),
            partitions: 4,
            replication_factor: 1,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaSettings {
    pub fn topics(&self) -> choreo_events::Topics {
        choreo_events::Topics::new(self.topic_prefix.clone())
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        config
    }

    /// Environment variable names cannot hold dots, so
    /// `CHOREO_KAFKA__PROPERTIES__SECURITY_PROTOCOL` arrives as
    /// `security_protocol`; librdkafka's property names use no underscores,
    /// so turning them into dots is unambiguous.
    pub(crate) fn apply_overrides(&self, config: &mut ClientConfig) {
        for (k, v) in &self.properties {
            config.set(k.replace('_', "."), v);
        }
    }
}
