//! The Confluent wire format and Avro encoding of Choreo's records.
//!
//! Producers encode a record's datum with its own schema and frame it with the
//! id the registry gave that schema. Consumers look the writer's schema up by
//! that id and resolve the datum into the schema they were built with, which
//! is what lets a producer add a field with a default without breaking anyone.

use crate::{Event, EventMeta, RegistryClient, RegistryError};
use apache_avro::Schema;
use std::sync::Arc;

const MAGIC: u8 = 0;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("message is {len} bytes, too short for the Confluent wire format")]
    TooShort { len: usize },
    #[error("message starts with byte {0}, not the Confluent magic byte 0")]
    BadMagic(u8),
    #[error("could not encode {record} as Avro")]
    Encode {
        record: &'static str,
        #[source]
        source: Box<apache_avro::Error>,
    },
    #[error("could not decode schema id {schema_id} datum as {record}")]
    Decode {
        schema_id: u32,
        record: String,
        #[source]
        source: Box<apache_avro::Error>,
    },
    #[error("writer schema {schema_id} is {found}, not {expected}")]
    WrongRecord {
        schema_id: u32,
        expected: String,
        found: String,
    },
    #[error("writer schema {schema_id} is not a named record")]
    Unnamed { schema_id: u32 },
    #[error("record {record} (schema id {schema_id}) has no readable `meta` envelope")]
    NoEnvelope { schema_id: u32, record: String },
    #[error("message is {len} bytes; the most this consumer decodes is {max}")]
    TooLarge { len: usize, max: usize },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The most bytes one Avro value being decoded may claim (a string's, an
/// array's length), for the whole process: a datum that claims more is an
/// error instead of an allocation. Set once, by the first caller; returns
/// the limit in force.
pub fn limit_allocations(bytes: usize) -> usize {
    apache_avro::util::max_allocation_bytes(bytes)
}

/// What [`Decoder`] decodes at most when not told otherwise: Apache Kafka's
/// own default message size (`message.max.bytes`).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// Encodes `event` as an Avro binary datum (no framing) with its own schema.
///
/// # Errors
/// [`CodecError::Encode`] when the value does not match the schema, which
/// means the Rust type and its `.avsc` have drifted apart.
pub fn encode_datum<E: Event>(event: &E) -> Result<Vec<u8>, CodecError> {
    let wrap = |e: apache_avro::Error| CodecError::Encode {
        record: E::NAME,
        source: Box::new(e),
    };
    let value = apache_avro::to_value(event).map_err(wrap)?;
    let value = value.resolve(E::schema()).map_err(wrap)?;
    apache_avro::to_avro_datum(E::schema(), value).map_err(wrap)
}

/// Prepends the magic byte and the schema id.
pub fn frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(datum.len() + 5);
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Splits a framed message into its schema id and datum.
///
/// # Errors
/// When the message is shorter than the header or does not start with the
/// magic byte: bytes that did not come from a Confluent serializer.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), CodecError> {
    match bytes {
        [MAGIC, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [first, _, _, _, _, ..] => Err(CodecError::BadMagic(*first)),
        _ => Err(CodecError::TooShort { len: bytes.len() }),
    }
}

/// A framed message whose writer schema is known but whose datum is not yet
/// turned into a Rust type: a consumer first looks at [`Decoded::name`] to
/// choose the handler, then [`Decoded::parse`]s into that handler's record.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub schema_id: u32,
    writer: Arc<Schema>,
    full_name: String,
    /// Which of Choreo's records `full_name` names, looked up once.
    record: Option<crate::Record>,
    datum: Vec<u8>,
    meta: EventMeta,
}

impl Decoded {
    /// The writer record's full name, e.g. `io.choreo.events.OrderPlaced`.
    pub fn full_name(&self) -> &str {
        &self.full_name
    }

    /// The message a producer of `event` would have sent, decoded as a
    /// consumer would see it, without a registry: for tests that feed
    /// handlers directly. The writer schema is the record's own.
    ///
    /// # Errors
    /// When the event does not match its schema.
    pub fn from_event<E: Event>(event: &E) -> Result<Self, CodecError> {
        Ok(Self {
            schema_id: 0,
            writer: Arc::new(E::schema().clone()),
            record: crate::Record::from_full_name(&E::full_name()),
            full_name: E::full_name(),
            datum: encode_datum(event)?,
            meta: event.meta().clone(),
        })
    }

    /// The envelope, readable whatever the record.
    pub fn meta(&self) -> &EventMeta {
        &self.meta
    }

    /// Which of Choreo's records this is; `None` for a record Choreo does
    /// not know (a newer producer's).
    pub fn record(&self) -> Option<crate::Record> {
        self.record
    }

    /// The writer record's simple name, e.g. `OrderPlaced`.
    pub fn name(&self) -> &str {
        self.full_name.rsplit('.').next().unwrap_or(&self.full_name)
    }

    /// The datum as JSON, read with the writer's own schema: for operator
    /// tools showing a message whatever its record.
    ///
    /// # Errors
    /// [`CodecError::Decode`] when the bytes do not match the writer schema.
    pub fn to_json(&self) -> Result<serde_json::Value, CodecError> {
        let wrap = |e: apache_avro::Error| CodecError::Decode {
            schema_id: self.schema_id,
            record: self.full_name.clone(),
            source: Box::new(e),
        };
        let value =
            apache_avro::from_avro_datum(&self.writer, &mut &self.datum[..], None).map_err(wrap)?;
        serde_json::Value::try_from(value).map_err(wrap)
    }

    /// Resolves the datum from the writer's schema into `E`'s schema.
    ///
    /// # Errors
    /// [`CodecError::WrongRecord`] when the message is another record, and
    /// [`CodecError::Decode`] when the schemas cannot be resolved or the bytes
    /// are corrupt.
    pub fn parse<E: Event>(&self) -> Result<E, CodecError> {
        if self.full_name != E::full_name() {
            return Err(CodecError::WrongRecord {
                schema_id: self.schema_id,
                expected: E::full_name(),
                found: self.full_name.clone(),
            });
        }
        let wrap = |e: apache_avro::Error| CodecError::Decode {
            schema_id: self.schema_id,
            record: self.full_name.clone(),
            source: Box::new(e),
        };
        let value =
            apache_avro::from_avro_datum(&self.writer, &mut &self.datum[..], Some(E::schema()))
                .map_err(wrap)?;
        apache_avro::from_value::<E>(&value).map_err(wrap)
    }
}

/// Turns framed bytes into [`Decoded`] messages, fetching writer schemas from
/// the registry once per id.
#[derive(Debug, Clone)]
pub struct Decoder {
    registry: RegistryClient,
    max_message_bytes: usize,
}

impl Decoder {
    pub fn new(registry: RegistryClient) -> Self {
        Self {
            registry,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// Refuses messages longer than `bytes` before reading them.
    #[must_use]
    pub fn with_max_message_bytes(self, bytes: usize) -> Self {
        Self {
            max_message_bytes: bytes,
            ..self
        }
    }

    /// # Errors
    /// A message over the size limit, a framing error, an unknown schema
    /// id, or a registry that cannot be reached
    /// ([`RegistryError::is_transient`] tells those apart).
    pub async fn decode(&self, bytes: &[u8]) -> Result<Decoded, CodecError> {
        if bytes.len() > self.max_message_bytes {
            return Err(CodecError::TooLarge {
                len: bytes.len(),
                max: self.max_message_bytes,
            });
        }
        let (schema_id, datum) = unframe(bytes)?;
        let writer = self.registry.schema_by_id(schema_id).await?;
        let full_name = match writer.name() {
            Some(name) => name.fullname(None),
            None => return Err(CodecError::Unnamed { schema_id }),
        };
        let value = apache_avro::from_avro_datum(&writer, &mut &datum[..], None).map_err(|e| {
            CodecError::Decode {
                schema_id,
                record: full_name.clone(),
                source: Box::new(e),
            }
        })?;
        let meta = read_meta(value).ok_or_else(|| CodecError::NoEnvelope {
            schema_id,
            record: full_name.clone(),
        })?;
        Ok(Decoded {
            schema_id,
            writer,
            record: crate::Record::from_full_name(&full_name),
            full_name,
            datum: datum.to_vec(),
            meta,
        })
    }
}

/// The `meta` field of a datum read with the writer's own schema, so the
/// runtime can deduplicate and trace any record, including ones no handler
/// will parse.
fn read_meta(value: apache_avro::types::Value) -> Option<EventMeta> {
    let apache_avro::types::Value::Record(fields) = value else {
        return None;
    };
    let (_, meta) = fields.into_iter().find(|(name, _)| name == "meta")?;
    apache_avro::from_value::<EventMeta>(&meta).ok()
}
