//! Broker connection settings shared by producers, consumers and admin.

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    /// The `client.id` every request to the broker names, so that the
    /// broker's logs, quotas and any proxy tell the processes apart. Empty:
    /// a saga service names itself by its consumer's instance id, or its
    /// service name ([`KafkaSettings::identified_as`]).
    pub client_id: String,
    /// Prepended to every topic and consumer group name.
    pub topic_prefix: String,
    /// Partitions for topics this process creates.
    pub partitions: i32,
    pub replication_factor: i32,
    /// With a replication factor above 1, the replicas that must hold a
    /// write before the broker acknowledges it (`min.insync.replicas` of the
    /// topics this process creates; at most the replication factor), so
    /// that an acknowledged event survives the loss of a broker.
    pub min_insync_replicas: i32,
    /// Extra librdkafka properties (SASL, TLS, tuning), applied last; `_`
    /// in a key stands for `.`. Numbers and booleans (`linger_ms = 5` in a
    /// TOML file) are taken as their text; from the environment
    /// (`CHOREO_KAFKA__PROPERTIES__LINGER_MS=5`) each value is taken
    /// verbatim (`choreo_kit::load_config`).
    #[serde(deserialize_with = "as_text")]
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            client_id: String::new(),
            topic_prefix: String::new(),
            partitions: 4,
            replication_factor: 1,
            min_insync_replicas: 2,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaSettings {
    pub fn topics(&self) -> choreo_events::Topics {
        choreo_events::Topics::new(self.topic_prefix.clone())
    }

    /// The bootstrap servers and every override: the configuration of a
    /// client that sets no properties of its own (which would go before
    /// the overrides), here or in a tool.
    pub fn client_config_with_overrides(&self) -> ClientConfig {
        let mut config = self.client_config();
        self.apply_overrides(&mut config);
        config
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        if !self.client_id.is_empty() {
            config.set("client.id", &self.client_id);
        }
        config
    }

    /// These settings with `client_id` set to `name`, unless one was
    /// configured.
    #[must_use]
    pub fn identified_as(&self, name: &str) -> Self {
        let mut settings = self.clone();
        if settings.client_id.is_empty() {
            name.clone_into(&mut settings.client_id);
        }
        settings
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

/// A map of scalars, each as its text.
fn as_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Integer(i64),
        Float(f64),
        Bool(bool),
    }
    let map = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
    Ok(map
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                Scalar::Text(t) => t,
                Scalar::Integer(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (key, text)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Service {
        kafka: KafkaSettings,
    }

    /// The environment layer types what it reads (`..._LINGER_MS=5` as a
    /// number, `..._ENABLE_IDEMPOTENCE=true` as a boolean): each is still a
    /// property (a service refused to start on the number), exactly as
    /// written (`0042` is not 42, `2.0` not 2).
    #[test]
    // The closure's error type is figment's own, fixed by `Jail`.
    #[allow(clippy::result_large_err)]
    fn properties_from_the_environment_take_numbers_and_booleans_as_text() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CHOREO_KAFKA__PROPERTIES__LINGER_MS", "5");
            jail.set_env("CHOREO_KAFKA__PROPERTIES__ENABLE_IDEMPOTENCE", "true");
            jail.set_env("CHOREO_KAFKA__PROPERTIES__DEBUG", "cgrp");
            jail.set_env("CHOREO_KAFKA__PROPERTIES__SASL_PASSWORD", "0042");
            jail.set_env("CHOREO_KAFKA__PROPERTIES__X_RATIO", "2.0");
            let loaded: Service = choreo_kit::load_config().map_err(|e| e.to_string())?;
            let expected: BTreeMap<String, String> = [
                ("debug", "cgrp"),
                ("enable_idempotence", "true"),
                ("linger_ms", "5"),
                ("sasl_password", "0042"),
                ("x_ratio", "2.0"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            assert_eq!(loaded.kafka.properties, expected);
            assert_eq!(loaded.kafka.bootstrap_servers, "127.0.0.1:9092");
            Ok(())
        });
    }

    /// A managed cluster (the Helm chart's `kafka.sasl` and `kafka.tls`)
    /// takes SASL over TLS: librdkafka refuses those properties at client
    /// creation unless it was built with OpenSSL (rdkafka's `ssl` feature).
    #[test]
    fn a_secured_cluster_s_properties_are_accepted() {
        let settings = KafkaSettings {
            properties: [
                ("security_protocol", "SASL_SSL"),
                ("sasl_mechanism", "SCRAM-SHA-512"),
                ("sasl_username", "choreo"),
                ("sasl_password", "secret"),
                ("ssl_endpoint_identification_algorithm", "https"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            ..Default::default()
        };
        let created: Result<rdkafka::producer::BaseProducer, _> =
            settings.client_config_with_overrides().create();
        if let Err(e) = created {
            panic!("librdkafka refused the SASL_SSL properties: {e}");
        }
    }
}
