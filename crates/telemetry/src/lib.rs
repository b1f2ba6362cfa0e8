//! Logs, traces and trace context for every Choreo process.
//!
//! Logs are structured `tracing` events, one line each: human-readable by
//! default, JSON when `log_format = "json"`, where the fields of the spans
//! an event happened in (`trace_id`, `order_id`, `event_type`, …) sit at the
//! top level beside the event's own.
//!
//! Spans are OpenTelemetry spans (`tracing-opentelemetry`). They are
//! exported over OTLP (HTTP/protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, and dropped otherwise; the
//! exporter reads the rest of the standard `OTEL_*` variables itself. Trace
//! context travels as W3C `traceparent`, in HTTP headers, Kafka headers and
//! outbox rows ([`context`]), so one saga is one trace across every service.

#[cfg(feature = "collector")]
pub mod collector;
pub mod context;

pub use context::{
    TRACEPARENT, attribute, continue_trace, current_traceparent, db_transaction_span, traceparent,
};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, Layer, fmt, prelude::*, registry::LookupSpan};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Keeps the span exporter of a process. Dropping it (at the end of `main`)
/// exports the spans still buffered, so the last steps of a saga handled
/// before a shutdown are not lost from its trace.
#[must_use = "dropping it at once stops exporting spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("exporting the last spans failed: {e}");
            }
        }
    }
}

/// Installs the global subscriber for the service `service` (its OpenTelemetry
/// `service.name`). `RUST_LOG` overrides the default filter (`info`, with
/// the noisy HTTP and SQL internals at `warn`). Calling it twice is harmless,
/// which in-process tests rely on: the first call's set-up stays.
pub fn init(service: &str, format: LogFormat) -> Telemetry {
    install(service, format, DEFAULT_FILTER, false)
}

/// [`init`] for a test process that runs services in-process: set up once,
/// kept until the process exits (dropping a [`Telemetry`] would end every
/// later trace, and tests start many services).
pub fn init_for_tests(name: &str) {
    static KEPT: std::sync::OnceLock<Telemetry> = std::sync::OnceLock::new();
    KEPT.get_or_init(|| init(name, LogFormat::Text));
}

const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn,rdkafka=warn,h2=warn";

/// For operator tools: text logs on stderr, so that stdout carries only
/// what the tool prints (a table, `--json`). `default_filter` (`RUST_LOG`
/// overrides it) lets a tool that prints its own progress keep per-event
/// lines out of it; `None`: the services' default. A replay run by the tool
/// continues each event's trace like the service would.
pub fn init_tool(tool: &str, default_filter: Option<&str>) -> Telemetry {
    install(
        tool,
        LogFormat::Text,
        default_filter.unwrap_or(DEFAULT_FILTER),
        true,
    )
}

fn install(service: &str, format: LogFormat, default_filter: &str, stderr: bool) -> Telemetry {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let (provider, exporting) = tracer_provider(service);
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("choreo"))
        .with_location(false);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(spans)
        .with(log_layer(format, stderr))
        .try_init()
        .is_ok();
    if !installed {
        // Another set-up is in place (a second service in one test process).
        let _ = provider.shutdown();
        return Telemetry { provider: None };
    }
    match &exporting {
        Ok(true) => tracing::debug!(service, "exporting spans over OTLP"),
        Ok(false) => tracing::debug!(service, "no OTLP endpoint set; spans are not exported"),
        Err(e) => tracing::warn!(service, error = %e, "cannot export spans; carrying on without"),
    }
    Telemetry {
        provider: Some(provider),
    }
}

/// The provider every span goes through. Without an endpoint it has no
/// exporter: spans still get ids, so logs carry trace ids and the context
/// still travels to the next service, but nothing leaves the process.
fn tracer_provider(
    service: &str,
) -> (
    SdkTracerProvider,
    Result<bool, opentelemetry_otlp::ExporterBuildError>,
) {
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    if !endpoint_configured() {
        return (builder.build(), Ok(false));
    }
    match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => (builder.with_batch_exporter(exporter).build(), Ok(true)),
        Err(e) => (builder.build(), Err(e)),
    }
}

fn endpoint_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
}

fn log_layer<S>(format: LogFormat, stderr: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    match (format, stderr) {
        (LogFormat::Text, false) => fmt::layer().with_target(false).boxed(),
        (LogFormat::Text, true) => fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .boxed(),
        (LogFormat::Json, _) => json_layer(std::io::stdout).boxed(),
    }
}

/// One flat object per line, the event's fields and those of the spans it
/// happened in side by side, each key once: a log query for an order's id
/// or a trace id finds every line of that saga without knowing which span
/// recorded it.
fn json_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_flat_json::FlatJsonLayer::new(writer)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_json_line_carries_the_fields_of_its_spans_at_the_top_level() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(json_layer(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(
                "process",
                trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                order_id = "o-1"
            );
            let _outer = outer.enter();
            let inner = tracing::info_span!("handle", event_type = "OrderPlaced");
            let _inner = inner.enter();
            tracing::info!(order_id = "o-1", total_cents = 1200, "stock reserved");
        });
        let text = String::from_utf8(lines.0.lock().expect("lines").clone()).expect("utf-8");
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 1, "one line per event: {text}");
        let line: serde_json::Value = serde_json::from_str(rows[0]).expect("JSON");
        assert_eq!(line["message"], "stock reserved");
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["order_id"], "o-1");
        assert_eq!(line["event_type"], "OrderPlaced");
        assert_eq!(line["total_cents"], 1200);
        assert_eq!(line["level"], "INFO");
        assert_eq!(
            rows[0].matches("\"order_id\"").count(),
            1,
            "each key once: {}",
            rows[0]
        );
    }
}
