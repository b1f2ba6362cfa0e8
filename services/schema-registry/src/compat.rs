//! Compatibility levels and the Avro reader/writer checks behind them.
//!
//! A level answers one question per registration: may producers switch to the
//! new schema without breaking consumers (BACKWARD: consumers upgrade first),
//! without breaking old consumers (FORWARD: producers upgrade first), or both
//! (FULL)? Plain levels compare with the latest version only; `_TRANSITIVE`
//! levels compare with every version, because old data in Kafka may be
//! replayed by a consumer at any time.

use crate::{avro::without_panics, error::error_chain};
use apache_avro::{Schema, schema_compatibility::SchemaCompatibility};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// A subject's (or the registry's) compatibility level, spelled as Confluent
/// spells it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub const ALL: [Self; 7] = [
        Self::None,
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// The new schema must read data written with the old ones.
    fn backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// The old schemas must read data written with the new one.
    fn forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the seven levels.
#[derive(Debug, thiserror::Error)]
#[error("unknown compatibility level {0:?}")]
pub struct UnknownCompatibility(pub String);

impl FromStr for Compatibility {
    type Err = UnknownCompatibility;

    /// Case-insensitive, as Confluent accepts `backward` as well as `BACKWARD`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownCompatibility(s.to_owned()))
    }
}

/// A registered version a candidate is checked against.
#[derive(Debug)]
pub(crate) struct Registered {
    pub(crate) version: i32,
    pub(crate) schema: Schema,
}

/// Checks `candidate` against `registered` (oldest first) under `level` and
/// returns one message per failed check; empty means compatible.
pub(crate) fn check(
    level: Compatibility,
    candidate: &Schema,
    registered: &[Registered],
) -> Vec<String> {
    let against: &[Registered] = match (level.transitive(), registered.split_last()) {
        (true, _) => registered,
        (false, Some((latest, _))) => std::slice::from_ref(latest),
        (false, None) => &[],
    };
    let mut messages = Vec::new();
    for old in against {
        if level.backward() {
            // Reader is the new schema, writer the old one.
            if let Err(e) = can_read(&old.schema, candidate) {
                messages.push(format!(
                    "{level}: the new schema cannot read data written with version {}: {e}",
                    old.version,
                ));
            }
        }
        if level.forward() {
            if let Err(e) = can_read(candidate, &old.schema) {
                messages.push(format!(
                    "{level}: version {} cannot read data written with the new schema: {e}",
                    old.version,
                ));
            }
        }
    }
    messages
}

/// Whether data written with `writer` can be read with `reader`. A panic in
/// the checker counts as incompatible: refusing a schema is recoverable,
/// admitting one consumers cannot read is not.
fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    without_panics(|| SchemaCompatibility::can_read(writer, reader))?.map_err(|e| error_chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &str) -> Schema {
        let text = format!(r#"{{"type":"record","name":"Order","fields":[{fields}]}}"#);
        Schema::parse_str(&text).expect("test schema parses")
    }

    fn registered(schemas: &[&str]) -> Vec<Registered> {
        schemas
            .iter()
            .zip(1..)
            .map(|(fields, version)| Registered {
                version,
                schema: schema(fields),
            })
            .collect()
    }

    const ID: &str = r#"{"name":"id","type":"string"}"#;
    const QTY_DEFAULT: &str = r#"{"name":"qty","type":"int","default":1}"#;
    const QTY: &str = r#"{"name":"qty","type":"int"}"#;

    #[test]
    fn adding_a_field_with_a_default_is_fully_compatible() {
        let old = registered(&[ID]);
        let new = schema(&format!("{ID},{QTY_DEFAULT}"));
        for level in Compatibility::ALL {
            assert!(check(level, &new, &old).is_empty(), "{level}");
        }
    }

    #[test]
    fn adding_a_field_without_a_default_is_only_forward_compatible() {
        let old = registered(&[ID]);
        let new = schema(&format!("{ID},{QTY}"));
        assert!(!check(Compatibility::Backward, &new, &old).is_empty());
        assert!(!check(Compatibility::Full, &new, &old).is_empty());
        assert!(check(Compatibility::Forward, &new, &old).is_empty());
        assert!(check(Compatibility::None, &new, &old).is_empty());
    }

    #[test]
    fn removing_a_field_without_a_default_is_only_backward_compatible() {
        let old = registered(&[&format!("{ID},{QTY}")]);
        let new = schema(ID);
        assert!(check(Compatibility::Backward, &new, &old).is_empty());
        assert!(!check(Compatibility::Forward, &new, &old).is_empty());
    }

    #[test]
    fn transitive_levels_compare_with_every_version_and_plain_ones_with_the_latest() {
        // v1 has no qty; v2 added it with a default; the candidate makes it
        // required, which v2's data satisfies but v1's does not.
        let old = registered(&[ID, &format!("{ID},{QTY_DEFAULT}")]);
        let new = schema(&format!("{ID},{QTY}"));
        assert!(check(Compatibility::Backward, &new, &old).is_empty());
        let messages = check(Compatibility::BackwardTransitive, &new, &old);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("version 1"), "{messages:?}");
    }

    #[test]
    fn levels_parse_case_insensitively_and_reject_unknown_names() {
        assert_eq!(
            "full_transitive".parse::<Compatibility>().ok(),
            Some(Compatibility::FullTransitive)
        );
        assert!("SIDEWAYS".parse::<Compatibility>().is_err());
    }
}
