//! Logging and trace context for every Choreo process.
//!
//! Logs are structured `tracing` events, human-readable by default and JSON
//! when `log_format = "json"`. Trace context follows the W3C `traceparent`
//! format: the edge starts a trace per request, and the id travels in HTTP and
//! Kafka headers and through the outbox, so one saga shares one trace id
//! across every service. Exporting spans over OTLP is issue 8's work.

mod traceparent;

pub use traceparent::TraceParent;

use serde::{Deserialize, Serialize};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber. `RUST_LOG` overrides the default filter
/// (`info`, with the noisy HTTP and SQL internals at `warn`). Calling it twice
/// is harmless, which in-process tests rely on.
pub fn init(service: &str, format: LogFormat) {
    install(service, format, DEFAULT_FILTER, false);
}

const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn,rdkafka=warn,h2=warn";

/// For operator tools: text logs on stderr, so that stdout carries only
/// what the tool prints (a table, `--json`). `default_filter` (`RUST_LOG`
/// overrides it) lets a tool that prints its own progress keep per-event
/// lines out of it; `None`: the services' default.
pub fn init_tool(tool: &str, default_filter: Option<&str>) {
    install(
        tool,
        LogFormat::Text,
        default_filter.unwrap_or(DEFAULT_FILTER),
        true,
    );
}

fn install(service: &str, format: LogFormat, default_filter: &str, stderr: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match (format, stderr) {
        (LogFormat::Text, false) => registry.with(fmt::layer().with_target(false)).try_init(),
        (LogFormat::Text, true) => registry
            .with(fmt::layer().with_target(false).with_writer(std::io::stderr))
            .try_init(),
        (LogFormat::Json, _) => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
    };
    if result.is_ok() {
        tracing::debug!(service, "telemetry initialised");
    }
}

/// `error` and each of its sources, joined by `: `, for a log field or an
/// error body that must say the whole cause in one line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        // Some errors (apache-avro's) repeat their source in their message.
        if !out.contains(&next) {
            out.push_str(": ");
            out.push_str(&next);
        }
        source = s.source();
    }
    out
}
