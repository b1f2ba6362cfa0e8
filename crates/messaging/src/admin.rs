//! Topic administration: explicit creation, reading a topic to its end and
//! a consumer group's lag, for operator tools.
//!
//! Explicit topic creation. Neither the local broker nor a well-run
//! production cluster creates topics on first use, so Choreo creates its
//! topics, with several partitions, before anything produces.

use crate::{KafkaSettings, MessagingError};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    error::RDKafkaErrorCode,
    message::OwnedMessage,
};
use std::{collections::BTreeMap, sync::Arc, time::Duration};

/// How long reading the cluster's metadata may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates each topic that does not exist yet; existing topics are left as
/// they are. The cluster's metadata is read first and only missing topics are
/// asked for: where the platform team creates the topics, a service needs
/// no right to create them, and a broker without CreateTopics (librdkafka's
/// mock cluster) serves a service whose topics exist.
///
/// # Errors
/// When the broker cannot be reached or refuses a creation for another reason
/// than the topic already existing.
#[tracing::instrument(skip_all, fields(topics = ?names), err)]
pub async fn ensure_topics(
    settings: &KafkaSettings,
    names: &[String],
) -> Result<(), MessagingError> {
    let existing = existing_topics(settings).await?;
    let dead_letter_topics: Vec<String> = choreo_events::SAGA_SERVICES
        .iter()
        .map(|s| settings.topics().dead_letters(s))
        .collect();
    let min_insync = settings
        .min_insync_replicas
        .clamp(1, settings.replication_factor.max(1))
        .to_string();
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .filter(|n| !existing.contains(*n))
        .map(|n| {
            let mut topic = NewTopic::new(
                n,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            );
            if dead_letter_topics.contains(n) {
                // A dead letter waits for an operator, however long that
                // takes: the broker's default retention (a week) would
                // delete it unseen.
                topic = topic.set("retention.ms", "-1");
            }
            if settings.replication_factor > 1 {
                topic = topic.set("min.insync.replicas", &min_insync);
            }
            topic
        })
        .collect();
    if topics.is_empty() {
        tracing::debug!("every topic exists");
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = settings
        .client_config_with_overrides()
        .create()
        .map_err(MessagingError::kafka("creating admin client"))?;
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

/// Each topic's `retention.ms` as the cluster reports it (-1: forever);
/// `None` where it does not say.
///
/// # Errors
/// When the broker cannot be reached or does not describe topic configs.
pub async fn topic_retention(
    settings: &KafkaSettings,
    names: &[String],
) -> Result<BTreeMap<String, Option<i64>>, MessagingError> {
    let admin: AdminClient<DefaultClientContext> = settings
        .client_config_with_overrides()
        .create()
        .map_err(MessagingError::kafka("creating admin client"))?;
    let resources: Vec<ResourceSpecifier<'_>> =
        names.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin
        .describe_configs(&resources, &options)
        .await
        .map_err(MessagingError::kafka("describing topic configs"))?;
    let mut retention = BTreeMap::new();
    for (name, result) in names.iter().zip(described) {
        let resource = result.map_err(|code| MessagingError::Kafka {
            context: format!("describing topic {name}"),
            source: rdkafka::error::KafkaError::AdminOp(code),
        })?;
        let ms = resource
            .get("retention.ms")
            .and_then(|entry| entry.value.as_deref()?.parse::<i64>().ok());
        retention.insert(name.clone(), ms);
    }
    Ok(retention)
}

/// The topics the cluster holds.
async fn existing_topics(
    settings: &KafkaSettings,
) -> Result<std::collections::HashSet<String>, MessagingError> {
    let config = settings.client_config_with_overrides();
    // A metadata read blocks for up to its timeout while the broker is away.
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config
            .create()
            .map_err(MessagingError::kafka("creating a metadata client"))?;
        let metadata = consumer
            .fetch_metadata(None, METADATA_TIMEOUT)
            .map_err(MessagingError::kafka("reading the cluster's topics"))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| t.name().to_owned())
            .collect())
    })
    .await
    .map_err(|e| MessagingError::Blocking(e.to_string()))?
}

/// How many partitions `topics` have together; a topic that does not
/// exist counts 0.
///
/// # Errors
/// When the broker cannot be reached.
pub async fn total_partitions(
    settings: &KafkaSettings,
    topics: &[String],
) -> Result<i32, MessagingError> {
    let config = settings.client_config_with_overrides();
    let topics = topics.to_vec();
    // A metadata read blocks for up to its timeout while the broker is away.
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config
            .create()
            .map_err(MessagingError::kafka("creating a metadata client"))?;
        topics.iter().try_fold(0, |sum, topic| {
            Ok(sum + partition_count(&consumer, topic, METADATA_TIMEOUT)?)
        })
    })
    .await
    .map_err(|e| MessagingError::Blocking(e.to_string()))?
}

/// How many partitions `topic` has; 0 when it does not exist.
pub(crate) fn partition_count<C: rdkafka::consumer::ConsumerContext>(
    consumer: &impl Consumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<i32, MessagingError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(MessagingError::kafka(format!(
            "reading metadata of {topic}"
        )))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len() as i32))
}

/// Where a consumer group stands on one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset (the next message it will read), if it
    /// has committed one.
    pub committed: Option<i64>,
    /// The partition's end (high watermark).
    pub end: i64,
}

impl PartitionLag {
    /// Messages between the committed offset and the end; everything when
    /// nothing is committed.
    pub fn lag(&self) -> i64 {
        (self.end - self.committed.unwrap_or(0)).max(0)
    }
}

/// The committed offset, end and lag of `group` on every partition of
/// `topics`. Reading committed offsets does not join the group.
///
/// # Errors
/// When the broker cannot be reached or answers with an error.
pub async fn group_lag(
    settings: &KafkaSettings,
    group: &str,
    topics: &[String],
) -> Result<Vec<PartitionLag>, MessagingError> {
    let (settings, group, topics) = (settings.clone(), group.to_owned(), topics.to_vec());
    tokio::task::spawn_blocking(move || group_lag_blocking(&settings, &group, &topics))
        .await
        .map_err(|e| MessagingError::Blocking(e.to_string()))?
}

fn group_lag_blocking(
    settings: &KafkaSettings,
    group: &str,
    topics: &[String],
) -> Result<Vec<PartitionLag>, MessagingError> {
    let mut config = settings.client_config();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    settings.apply_overrides(&mut config);
    let consumer: BaseConsumer = config
        .create()
        .map_err(MessagingError::kafka("creating an offset reader"))?;
    group_standing(&consumer, group, topics, Duration::from_secs(10))
}

/// A live member of a consumer group, as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Its client id: a saga service's replica names itself by its
    /// instance id (`inventory-1`).
    pub client_id: String,
    /// Where it connects from; empty where the broker does not say.
    pub host: String,
    /// The partitions assigned to it (none while the group rebalances).
    pub partitions: Vec<(String, i32)>,
}

/// Which member of `group` holds each partition, by the member's client id;
/// partitions no member holds (the group is rebalancing or stopped) are not
/// in it.
///
/// # Errors
/// When the broker cannot be reached or cannot describe the group.
pub async fn group_holders(
    settings: &KafkaSettings,
    group: &str,
) -> Result<BTreeMap<(String, i32), String>, MessagingError> {
    let mut holders = BTreeMap::new();
    for member in group_members(settings, group).await? {
        for partition in member.partitions {
            holders.insert(partition, member.client_id.clone());
        }
    }
    Ok(holders)
}

/// The live members of `group`; empty when none is (the service is
/// stopped). Describing a group does not join it.
///
/// # Errors
/// When the broker cannot be reached or cannot describe the group.
pub async fn group_members(
    settings: &KafkaSettings,
    group: &str,
) -> Result<Vec<GroupMember>, MessagingError> {
    let (settings, group) = (settings.clone(), group.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = settings
            .client_config_with_overrides()
            .create()
            .map_err(MessagingError::kafka("creating a group reader"))?;
        let list = consumer
            .fetch_group_list(Some(&group), Duration::from_secs(10))
            .map_err(MessagingError::kafka(format!(
                "describing the group {group}"
            )))?;
        Ok(list
            .groups()
            .iter()
            .filter(|g| g.name() == group)
            .flat_map(|g| g.members())
            .map(|m| GroupMember {
                client_id: m.client_id().to_owned(),
                host: m.client_host().to_owned(),
                partitions: m.assignment().map(assigned).unwrap_or_default(),
            })
            .collect())
    })
    .await
    .map_err(|e| MessagingError::Blocking(e.to_string()))?
}

/// The partitions in a member's assignment, as the consumer protocol
/// encodes it (`ConsumerProtocolAssignment`, versions 0 to 3: a version,
/// then an array of topics, each a string and an array of partition
/// numbers, then user data); empty if it does not parse.
fn assigned(bytes: &[u8]) -> Vec<(String, i32)> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = tail;
        Some(head)
    }
    fn int16(bytes: &mut &[u8]) -> Option<i16> {
        Some(i16::from_be_bytes(take(bytes, 2)?.try_into().ok()?))
    }
    fn int32(bytes: &mut &[u8]) -> Option<i32> {
        Some(i32::from_be_bytes(take(bytes, 4)?.try_into().ok()?))
    }
    let parse = |mut bytes: &[u8]| -> Option<Vec<(String, i32)>> {
        let _version = int16(&mut bytes)?;
        let mut partitions = Vec::new();
        for _ in 0..int32(&mut bytes)?.max(0) {
            let length = usize::try_from(int16(&mut bytes)?).ok()?;
            let topic = String::from_utf8(take(&mut bytes, length)?.to_vec()).ok()?;
            for _ in 0..int32(&mut bytes)?.max(0) {
                partitions.push((topic.clone(), int32(&mut bytes)?));
            }
        }
        Some(partitions)
    };
    parse(bytes).unwrap_or_default()
}

/// Where the group of `consumer` stands on every partition of `topics`,
/// each question answered within `timeout`; it blocks.
pub(crate) fn group_standing<C: rdkafka::consumer::ConsumerContext>(
    consumer: &impl Consumer<C>,
    group: &str,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<PartitionLag>, MessagingError> {
    let mut list = TopicPartitionList::new();
    let mut ends = Vec::new();
    for topic in topics {
        for partition in 0..partition_count(consumer, topic, timeout)? {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, timeout)
                .map_err(MessagingError::kafka(format!(
                    "reading the end of {topic}/{partition}"
                )))?;
            list.add_partition(topic, partition);
            ends.push((topic.clone(), partition, high));
        }
    }
    let committed = consumer
        .committed_offsets(list, timeout)
        .map_err(MessagingError::kafka(format!(
            "reading the committed offsets of {group}"
        )))?;
    Ok(ends
        .into_iter()
        .map(|(topic, partition, end)| {
            let committed = match committed
                .find_partition(&topic, partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            };
            PartitionLag {
                topic,
                partition,
                committed,
                end,
            }
        })
        .collect())
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
    let partitions = partition_count(&consumer, topic, TIMEOUT)?;
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
    let mut last_error = None;
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(MessagingError::Kafka {
                context: format!(
                    "reading {topic}: the broker stopped answering before its end (last error: {})",
                    last_error
                        .as_ref()
                        .map_or("none".to_owned(), |e: &rdkafka::error::KafkaError| e
                            .to_string())
                ),
                source: rdkafka::error::KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                ),
            });
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        // What a consumer reports while the broker restarts (transport
        // failures, all brokers down) is informational: librdkafka
        // reconnects and fetches on, so the read goes on until its deadline.
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!(error = %e, topic, "reading to the end: a transient error");
                last_error = Some(e);
                continue;
            }
        };
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
        Ok(Self {
            client: Arc::new(
                settings
                    .client_config_with_overrides()
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

#[cfg(test)]
mod tests {
    use super::assigned;

    /// An assignment as librdkafka's and Java's consumers encode it.
    fn assignment(version: i16, topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut bytes = version.to_be_bytes().to_vec();
        bytes.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                bytes.extend(p.to_be_bytes());
            }
        }
        bytes.extend((-1i32).to_be_bytes()); // no user data
        bytes
    }

    #[test]
    fn a_member_s_assignment_lists_its_partitions() {
        let bytes = assignment(1, &[("order.events", &[0, 3]), ("payment.events", &[2])]);
        assert_eq!(
            assigned(&bytes),
            [
                ("order.events".to_owned(), 0),
                ("order.events".to_owned(), 3),
                ("payment.events".to_owned(), 2)
            ]
        );
        assert!(assigned(&assignment(0, &[])).is_empty());
        assert!(assigned(&bytes[..bytes.len() - 9]).is_empty(), "truncated");
        assert!(assigned(&[]).is_empty());
    }
}
