//! Serde adapters that carry a [`Uuid`] as its hyphenated text.
//!
//! Avro's `uuid` logical type annotates a `string`, but apache-avro's
//! serializer is not human-readable, so `Uuid`'s own `Serialize` would write
//! 16 raw bytes that the schema rejects. Every `uuid` field uses these.

use serde::{Deserialize, Deserializer, Serializer};
use uuid::Uuid;

pub(crate) fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    let text = String::deserialize(d)?;
    Uuid::parse_str(&text).map_err(serde::de::Error::custom)
}

pub(crate) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(id: &Option<Uuid>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => s.serialize_some(id.hyphenated().encode_lower(&mut Uuid::encode_buffer())),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| Uuid::parse_str(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}
