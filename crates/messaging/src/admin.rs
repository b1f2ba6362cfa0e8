//! Topic administration: explicit creation, and reading a topic to its end
//! for operator tools.
//!
//! Explicit topic creation. Neither the local broker nor a well-run
//! production cluster creates topics on first use, so Choreo creates its
//! topics, with several partitions, before anything produces.

use crate::{KafkaSettings, MessagingError};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    error::RDKafkaErrorCode,
    message::OwnedMessage,
};
use std::{sync::Arc, time::Duration};

/// Creates each topic that does not exist yet; existing topics are left as
/// they are.
///
/// # Errors
/// When the broker cannot be reached or refuses a creation for another reason
/// than the topic already existing.
#[tracing::instrument(skip_all, fields(topics = ?names), err)]
pub async fn ensure_topics(
    settings: &KafkaSettings,
    names: &[String],
) -> Result<(), MessagingError> {
    let mut config = settings.client_config();
    settings.apply_overrides(&mut config);
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(MessagingError::kafka("creating admin client"))?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| {
            NewTopic::new(
                n,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(MessagingError::kafka("creating topics"))?;
    for result in results {
        match result {
            Ok(name) => {
                tracing::info!(topic = %name, partitions = settings.partitions, "topic created")
            }
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "topic exists")
            }
            Err((name, code)) => {
                return Err(MessagingError::Kafka {
                    context: format!("creating topic {name}"),
                    source: rdkafka::error::KafkaError::AdminOp(code),
                });
            }
        }
    }
    Ok(())
}

/// Every message on `topic` from the beginning up to its end as of the
/// call, for operator tools (dead letters, replay). A topic that does not
/// exist reads as empty.
///
/// # Errors
/// When the broker cannot be reached or a fetch fails.
pub async fn read_to_end(
    settings: &KafkaSettings,
    topic: &str,
) -> Result<Vec<OwnedMessage>, MessagingError> {
    let settings = settings.clone();
    let topic = topic.to_owned();
    // The base consumer's calls block; keep them off the async workers.
    tokio::task::spawn_blocking(move || read_to_end_blocking(&settings, &topic))
        .await
        .map_err(|e| MessagingError::Blocking(e.to_string()))?
}

fn read_to_end_blocking(
    settings: &KafkaSettings,
    topic: &str,
) -> Result<Vec<OwnedMessage>, MessagingError> {
    const TIMEOUT: Duration = Duration::from_secs(10);
    let mut config = settings.client_config();
    config
        .set(
            "group.id",
            format!("choreo-reader-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    settings.apply_overrides(&mut config);
    let consumer: BaseConsumer = config
        .create()
        .map_err(MessagingError::kafka("creating reader"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(MessagingError::kafka(format!(
            "reading metadata of {topic}"
        )))?;
    let Some(partitions) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len() as i32)
    else {
        return Ok(Vec::new());
    };
    let mut assignment = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for partition in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, TIMEOUT)
            .map_err(MessagingError::kafka(format!(
                "reading the end of {topic}/{partition}"
            )))?;
        if high > low {
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(low))
                .map_err(MessagingError::kafka("building an assignment"))?;
            ends.insert(partition, high);
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer
        .assign(&assignment)
        .map_err(MessagingError::kafka(format!("assigning {topic}")))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(MessagingError::Kafka {
                context: format!("reading {topic}: the broker stopped answering before its end"),
                source: rdkafka::error::KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                ),
            });
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.map_err(MessagingError::kafka(format!("reading {topic}")))?;
        let partition = message.partition();
        if let Some(&high) = ends.get(&partition) {
            if message.offset() < high {
                out.push(message.detach());
            }
            if message.offset() + 1 >= high {
                ends.remove(&partition);
            }
        }
    }
    Ok(out)
}

/// Asks the broker for its metadata, for readiness probes.
pub struct BrokerProbe {
    client: Arc<AdminClient<DefaultClientContext>>,
}

impl BrokerProbe {
    /// # Errors
    /// When librdkafka rejects the configuration.
    pub fn new(settings: &KafkaSettings) -> Result<Self, MessagingError> {
        let mut config = settings.client_config();
        settings.apply_overrides(&mut config);
        Ok(Self {
            client: Arc::new(
                config
                    .create()
                    .map_err(MessagingError::kafka("creating the broker probe"))?,
            ),
        })
    }

    /// Whether a broker answers a metadata request within `timeout`.
    ///
    /// # Errors
    /// When no broker answers in time.
    pub async fn check(&self, timeout: Duration) -> Result<(), MessagingError> {
        let client = self.client.clone();
        tokio::task::spawn_blocking(move || {
            client
                .inner()
                .fetch_metadata(None, timeout)
                .map(|_| ())
                .map_err(MessagingError::kafka("asking the broker for metadata"))
        })
        .await
        .map_err(|e| MessagingError::Blocking(e.to_string()))?
    }
}
