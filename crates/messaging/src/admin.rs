//! Explicit topic creation. Neither the local broker nor a well-run
//! production cluster creates topics on first use, so Choreo creates its
//! topics, with several partitions, before anything produces.

use crate::{KafkaSettings, MessagingError};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::RDKafkaErrorCode,
};
use std::time::Duration;

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
