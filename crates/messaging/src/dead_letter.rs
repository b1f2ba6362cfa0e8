//! Dead letters: events a service can never apply, kept on Kafka.
//!
//! When a message cannot be decoded (bad bytes, an unknown schema id, a
//! schema that does not match the record) or its handler rejects it as
//! invalid, the consumer publishes it to the service's dead-letter topic
//! `<service>.dlq`: the original key, value and headers, plus `choreo-dlq-*`
//! headers saying what failed, where the message came from and when. Only
//! once the broker has acknowledged the dead letter does the consumer move
//! past the original, so nothing is dropped silently.
//!
//! Once the cause is fixed, [`redrive`] puts a dead letter back on its source
//! topic, addressed to the one service that failed it (other consumers of
//! the topic skip it), and appends a marker to the dead-letter topic so that
//! [`list`] shows it as redriven. A redriven event carries its original event
//! id, so the inbox applies it once even if it is redriven twice.

use crate::{
    KafkaSettings, MessagingError, admin,
    headers::header_text,
    producer::{self, Producer},
};
use chrono::{DateTime, Utc};
use rdkafka::{
    Message,
    message::{Header, Headers, OwnedHeaders, OwnedMessage},
    producer::FutureRecord,
    util::Timeout,
};
use serde::Serialize;
use uuid::Uuid;

/// Headers the runtime adds to a dead letter.
pub mod header {
    pub const ID: &str = "choreo-dlq-id";
    pub const SERVICE: &str = "choreo-dlq-service";
    pub const ERROR: &str = "choreo-dlq-error";
    pub const SOURCE_TOPIC: &str = "choreo-dlq-source-topic";
    pub const SOURCE_PARTITION: &str = "choreo-dlq-source-partition";
    pub const SOURCE_OFFSET: &str = "choreo-dlq-source-offset";
    pub const FAILED_AT: &str = "choreo-dlq-failed-at";
    /// On a marker record: the dead letter that was redriven.
    pub const REDRIVE_OF: &str = "choreo-dlq-redrive-of";
    pub const REDRIVEN_AT: &str = "choreo-dlq-redriven-at";
    /// On a redriven event: the only service that should process it.
    pub const REDRIVE_FOR: &str = "choreo-redrive-for";
}

/// The dead letter's id: derived from the service and the source position,
/// so a consumer that crashes after dead-lettering a message and meets it
/// again dead-letters it under the same id, and [`list`] shows it once.
pub fn letter_id(service: &str, topic: &str, partition: i32, offset: i64) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("choreo:dlq:{service}:{topic}:{partition}:{offset}").as_bytes(),
    )
}

/// The message's headers minus the runtime's own dead-letter and redrive
/// headers, which describe one trip through the dead-letter topic and are
/// replaced on the next.
fn original_headers(message: &OwnedMessage) -> OwnedHeaders {
    let mut out = OwnedHeaders::new();
    if let Some(headers) = message.headers() {
        for h in headers.iter() {
            if !h.key.starts_with("choreo-dlq-") && h.key != header::REDRIVE_FOR {
                out = out.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
    }
    out
}

/// Publishes one service's dead letters.
pub(crate) struct DeadLetters {
    pub(crate) service: String,
    pub(crate) topic: String,
    producer: Producer,
}

impl DeadLetters {
    pub(crate) fn new(settings: &KafkaSettings, service: &str) -> Result<Self, MessagingError> {
        Ok(Self {
            service: service.to_owned(),
            topic: settings.topics().dead_letters(service),
            producer: producer::idempotent(settings)?,
        })
    }

    /// Publishes `message` with `error` and waits for the broker's
    /// acknowledgement (the producer never times out a message, so this
    /// waits out a broker outage; the caller races it with shutdown).
    pub(crate) async fn publish(
        &self,
        message: &OwnedMessage,
        error: &str,
    ) -> Result<Uuid, MessagingError> {
        let id = letter_id(
            &self.service,
            message.topic(),
            message.partition(),
            message.offset(),
        );
        let id_text = id.to_string();
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let failed_at = Utc::now().to_rfc3339();
        let fields = [
            (header::ID, id_text.as_str()),
            (header::SERVICE, self.service.as_str()),
            (header::ERROR, error),
            (header::SOURCE_TOPIC, message.topic()),
            (header::SOURCE_PARTITION, partition.as_str()),
            (header::SOURCE_OFFSET, offset.as_str()),
            (header::FAILED_AT, failed_at.as_str()),
        ];
        let mut headers = original_headers(message);
        for (key, value) in fields {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(value) = message.payload() {
            record = record.payload(value);
        }
        self.producer
            .send(record, Timeout::Never)
            .await
            .map_err(|source| MessagingError::Kafka {
                context: format!("publishing dead letter {id} to {}", self.topic),
                source,
            })?;
        Ok(id)
    }
}

/// A dead letter as read back from a dead-letter topic.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: Uuid,
    pub service: String,
    pub error: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub failed_at: Option<DateTime<Utc>>,
    /// The original key (an order id), as text.
    pub key: Option<String>,
    /// The original value, hex-encoded (it may not be valid Avro at all).
    pub value_hex: Option<String>,
    /// The original headers, values as text.
    pub headers: Vec<(String, Option<String>)>,
    /// Where the dead letter sits in the dead-letter topic.
    pub dlq_partition: i32,
    pub dlq_offset: i64,
    /// When it was redriven, if it was.
    pub redriven_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    message: OwnedMessage,
}

impl DeadLetter {
    fn parse(message: OwnedMessage) -> Option<Self> {
        let id = header_text(&message, header::ID)?.parse().ok()?;
        let text = |name| header_text(&message, name).unwrap_or_default().to_owned();
        let headers = original_headers(&message)
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    h.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect();
        Some(Self {
            id,
            service: text(header::SERVICE),
            error: text(header::ERROR),
            source_topic: text(header::SOURCE_TOPIC),
            source_partition: text(header::SOURCE_PARTITION).parse().ok()?,
            source_offset: text(header::SOURCE_OFFSET).parse().ok()?,
            failed_at: DateTime::parse_from_rfc3339(&text(header::FAILED_AT))
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            value_hex: message.payload().map(hex),
            headers,
            dlq_partition: message.partition(),
            dlq_offset: message.offset(),
            redriven_at: None,
            message,
        })
    }

    /// The original value.
    pub fn value(&self) -> Option<&[u8]> {
        self.message.payload()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every dead letter of `service`, oldest first per partition, each with its
/// redrive state. A service whose dead-letter topic does not exist has none.
///
/// # Errors
/// When the broker cannot be reached.
pub async fn list(
    settings: &KafkaSettings,
    service: &str,
) -> Result<Vec<DeadLetter>, MessagingError> {
    let topic = settings.topics().dead_letters(service);
    let messages = admin::read_to_end(settings, &topic).await?;
    let mut letters = Vec::new();
    let mut redriven = std::collections::HashMap::new();
    for message in messages {
        if let Some(of) =
            header_text(&message, header::REDRIVE_OF).and_then(|t| t.parse::<Uuid>().ok())
        {
            let at = header_text(&message, header::REDRIVEN_AT)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            redriven.insert(of, at);
        } else if let Some(letter) = DeadLetter::parse(message) {
            // The same id twice: a consumer dead-lettered the message, then
            // crashed before moving past it. Keep the first.
            if !letters.iter().any(|l: &DeadLetter| l.id == letter.id) {
                letters.push(letter);
            }
        }
    }
    for letter in &mut letters {
        if let Some(at) = redriven.get(&letter.id) {
            letter.redriven_at = at.or(Some(DateTime::<Utc>::UNIX_EPOCH));
        }
    }
    Ok(letters)
}

/// Puts each dead letter back on its source topic and partition, with its
/// original key, value and headers, addressed to the service that failed
/// it; then marks it redriven in the dead-letter topic.
///
/// # Errors
/// When the broker refuses or cannot be reached; letters redriven before the
/// failure stay redriven.
pub async fn redrive(
    settings: &KafkaSettings,
    letters: &[DeadLetter],
) -> Result<(), MessagingError> {
    let producer = producer::idempotent(settings)?;
    let timeout = Timeout::After(std::time::Duration::from_secs(30));
    for letter in letters {
        let headers = original_headers(&letter.message).insert(Header {
            key: header::REDRIVE_FOR,
            value: Some(letter.service.as_str()),
        });
        let mut record = FutureRecord::<[u8], [u8]>::to(&letter.source_topic)
            .partition(letter.source_partition)
            .headers(headers);
        if let Some(key) = letter.message.key() {
            record = record.key(key);
        }
        if let Some(value) = letter.message.payload() {
            record = record.payload(value);
        }
        producer
            .send(record, timeout)
            .await
            .map_err(|source| MessagingError::Kafka {
                context: format!("redriving {} to {}", letter.id, letter.source_topic),
                source,
            })?;

        let id = letter.id.to_string();
        let at = Utc::now().to_rfc3339();
        let dead_letter_topic = settings.topics().dead_letters(&letter.service);
        let marker = FutureRecord::<str, [u8]>::to(&dead_letter_topic)
            .key(&id)
            .headers(
                OwnedHeaders::new()
                    .insert(Header {
                        key: header::REDRIVE_OF,
                        value: Some(id.as_str()),
                    })
                    .insert(Header {
                        key: header::REDRIVEN_AT,
                        value: Some(at.as_str()),
                    }),
            );
        producer
            .send(marker, timeout)
            .await
            .map_err(|source| MessagingError::Kafka {
                context: format!("marking {} redriven", letter.id),
                source,
            })?;
        tracing::info!(id = %letter.id, service = %letter.service, topic = %letter.source_topic, "dead letter redriven");
    }
    Ok(())
}
