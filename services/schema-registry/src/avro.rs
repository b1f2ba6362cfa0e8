//! Turning submitted schema text into a parsed Avro schema and the identity
//! the registry deduplicates on.
//!
//! Identity is the parsed schema serialised back to JSON by apache-avro, not
//! Avro's Parsing Canonical Form: the canonical form drops defaults, so two
//! schemas that differ only in a field default (which changes what readers
//! see) would collapse into one id. Serialising the parsed schema removes
//! what does not change the data (whitespace, key order, how a namespace was
//! spelled, and, because apache-avro 0.21 does not serialise them, field
//! docs) and keeps defaults, logical types and record docs.
//!
//! The form is apache-avro's, so an upgrade that changes its serialiser
//! changes identities: recompute `normalized` and `fingerprint` for stored
//! schemas when upgrading, or re-registering a known schema adds a version.

use crate::error::error_chain;
use apache_avro::Schema;
use std::panic::UnwindSafe;

/// A schema that parsed, with the text it was submitted as.
#[derive(Debug, Clone)]
pub(crate) struct ParsedSchema {
    /// Exactly as the client sent it; what `GET /schemas/ids/{id}` returns.
    pub(crate) text: String,
    pub(crate) schema: Schema,
    /// What two registrations must share to be the same schema.
    pub(crate) normalized: String,
}

/// Why a submitted schema was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct InvalidSchema(String);

/// Parses Avro schema JSON text.
///
/// # Errors
/// [`InvalidSchema`] with apache-avro's explanation when the text is not JSON
/// or not a valid Avro schema.
pub(crate) fn parse(text: &str) -> Result<ParsedSchema, InvalidSchema> {
    let (schema, normalized) = without_panics(|| {
        let schema = Schema::parse_str(text).map_err(|e| InvalidSchema(error_chain(&e)))?;
        let normalized = serde_json::to_string(&schema)
            .map_err(|e| InvalidSchema(format!("schema cannot be normalised: {e}")))?;
        Ok((schema, normalized))
    })
    .map_err(InvalidSchema)??;
    Ok(ParsedSchema {
        text: text.to_owned(),
        schema,
        normalized,
    })
}

/// Runs apache-avro code on client input, turning a panic into an error.
///
/// apache-avro 0.21 `unwrap`s in places reachable from `Schema::parse_str`
/// (a record named `1A` panics in `Name::parse`) and in its `Serialize`
/// impls, so a malformed schema would otherwise kill the request's task and
/// leave the client without an answer. The panic hook still prints the
/// panic once; the client gets a 422. Relies on `panic = "unwind"` (the
/// default; do not set `abort` in a release profile).
pub(crate) fn without_panics<T>(f: impl FnOnce() -> T + UnwindSafe) -> Result<T, String> {
    std::panic::catch_unwind(f).map_err(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no detail".to_owned());
        format!("apache-avro failed on this schema: {detail}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_and_key_order_do_not_change_identity() {
        let a = parse(r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#);
        let b = parse(
            r#"{ "fields": [ {"type": "int", "name": "x"} ],
                 "name": "A", "type": "record" }"#,
        );
        assert_eq!(a.map(|p| p.normalized).ok(), b.map(|p| p.normalized).ok());
    }

    #[test]
    fn a_changed_default_is_a_different_schema() {
        let a = parse(
            r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int","default":0}]}"#,
        );
        let b = parse(
            r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int","default":1}]}"#,
        );
        let (a, b) = (a.map(|p| p.normalized).ok(), b.map(|p| p.normalized).ok());
        assert!(a.is_some());
        assert_ne!(a, b);
    }

    #[test]
    fn text_that_is_not_an_avro_schema_is_invalid() {
        assert!(parse("{\"type\":\"recrd\"}").is_err());
        assert!(parse("not json").is_err());
    }

    #[test]
    fn a_schema_apache_avro_panics_on_is_invalid_rather_than_fatal() {
        let result = parse(r#"{"type":"record","name":"1A","fields":[]}"#);
        assert!(result.is_err_and(|e| e.to_string().contains("1A")));
    }
}
