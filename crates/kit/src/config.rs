//! Typed, layered configuration: defaults, then an optional TOML file, then
//! `CHOREO_`-prefixed environment variables (`__` separates nested keys, so
//! `CHOREO_KAFKA__BOOTSTRAP_SERVERS` sets `kafka.bootstrap_servers`).
//!
//! The same variables work locally, under compose and under Helm, which is why
//! there is exactly one way to configure a process.

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Serialize, de::DeserializeOwned};
use std::path::Path;

/// Configuration could not be assembled from its layers.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

/// Loads `T` from its defaults, the optional TOML file at `CHOREO_CONFIG`, and
/// the `CHOREO_` environment.
///
/// # Errors
/// Returns [`ConfigError`] when a layer cannot be parsed or a value has the
/// wrong type; the message names the offending key.
pub fn load_config<T>() -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Ok(file) = std::env::var("CHOREO_CONFIG") {
        figment = figment.merge(Toml::file(Path::new(&file)));
    }
    figment = figment.merge(Env::prefixed("CHOREO_").split("__").ignore(&["config"]));
    // librdkafka's properties are text, and the environment layer reads a
    // value that looks like a number as one (`0042` as 42): they are taken
    // again, verbatim.
    let properties: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter_map(|(key, value)| {
            key.strip_prefix(KAFKA_PROPERTIES)
                .map(|name| (name.to_ascii_lowercase(), value))
        })
        .collect();
    if !properties.is_empty() {
        figment = figment.merge(Serialized::default("kafka.properties", properties));
    }
    figment.extract().map_err(|e| ConfigError(Box::new(e)))
}

/// The environment prefix of the librdkafka properties (`kafka.properties`).
const KAFKA_PROPERTIES: &str = "CHOREO_KAFKA__PROPERTIES__";

/// Renders a configuration as pretty JSON with secrets redacted: any key whose
/// name contains `password`, `secret`, `token`, `key` (TLS keys), `sasl` or
/// `credential`, and the password of any URL-looking string value, in its
/// user part or its query (`?password=`, `&sslpassword=`).
pub fn print_config<T: Serialize>(config: &T) -> String {
    let mut value = serde_json::to_value(config).unwrap_or(serde_json::Value::Null);
    redact(&mut value, "");
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

fn redact(value: &mut serde_json::Value, key: &str) {
    use serde_json::Value;
    let sensitive = ["password", "secret", "token", "key", "sasl", "credential"]
        .iter()
        .any(|s| key.to_ascii_lowercase().contains(s));
    match value {
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| redact(v, k)),
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, key)),
        Value::String(s) if sensitive => *s = "[redacted]".into(),
        Value::String(s) => *s = redact_url_password(s),
        _ => {}
    }
}

/// `postgres://user:pw@host/db` becomes `postgres://user:[redacted]@host/db`,
/// and `…/db?password=pw` `…/db?password=[redacted]`.
fn redact_url_password(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_owned();
    };
    if let Some(query) = s.find('?') {
        let redacted: Vec<String> = s[query + 1..]
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                    format!("{name}=[redacted]")
                }
                _ => pair.to_owned(),
            })
            .collect();
        return format!(
            "{}?{}",
            redact_url_password(&s[..query]),
            redacted.join("&")
        );
    }
    let rest = &s[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return s.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:[redacted]{}",
            &s[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted_and_other_urls_kept() {
        assert_eq!(
            redact_url_password("postgres://app:hunter2@db:5432/order"),
            "postgres://app:[redacted]@db:5432/order"
        );
        assert_eq!(
            redact_url_password("postgres://app@db/order"),
            "postgres://app@db/order"
        );
        assert_eq!(redact_url_password("127.0.0.1:9092"), "127.0.0.1:9092");
        assert_eq!(
            redact_url_password("postgres://app@db/order?sslmode=require&password=hunter2"),
            "postgres://app@db/order?sslmode=require&password=[redacted]"
        );
        assert_eq!(
            redact_url_password("postgres://app:pw@db/order?sslmode=verify-full"),
            "postgres://app:[redacted]@db/order?sslmode=verify-full"
        );
    }

    #[test]
    fn tls_keys_and_sasl_settings_are_redacted() {
        let settings = serde_json::json!({
            "kafka": {"properties": {
                "ssl.key.pem": "-----BEGIN PRIVATE KEY-----",
                "sasl.username": "svc",
                "sasl.oauthbearer.client.secret": "s3",
                "linger.ms": "5",
            }},
        });
        let out = print_config(&settings);
        for hidden in ["BEGIN PRIVATE", "\"svc\"", "s3"] {
            assert!(!out.contains(hidden), "{hidden} shown in {out}");
        }
        assert!(out.contains("\"5\""), "{out}");
    }

    #[test]
    fn secret_keys_are_redacted() {
        #[derive(Serialize)]
        struct S {
            jwt_secret: String,
            name: String,
        }
        let out = print_config(&S {
            jwt_secret: "x".into(),
            name: "order".into(),
        });
        assert!(out.contains("[redacted]"));
        assert!(!out.contains("\"x\""));
        assert!(out.contains("order"));
    }
}
