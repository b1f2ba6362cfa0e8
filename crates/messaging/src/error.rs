//! Errors of the messaging runtime.

use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error("kafka: {context}")]
    Kafka {
        context: String,
        #[source]
        source: KafkaError,
    },
    #[error("database: {context}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("codec")]
    Codec(#[from] choreo_events::CodecError),
    #[error("schema registry")]
    Registry(#[from] choreo_events::RegistryError),
    #[error("a blocking task failed: {0}")]
    Blocking(String),
    #[error("the outbox holds {record}, which is not in Choreo's event catalog")]
    UnknownRecord { record: String },
}

impl MessagingError {
    pub(crate) fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> Self {
        let context = context.into();
        move |source| Self::Kafka { context, source }
    }

    pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { context, source }
    }
}
