//! W3C trace context across process boundaries: the `traceparent` a request,
//! a Kafka message or an outbox row carries, and the spans that continue it.
//!
//! The receiving side calls [`continue_trace`] on its span before entering
//! it; the sending side asks [`traceparent`] (or [`current_traceparent`])
//! for the value to send, which names the sending span as the parent of
//! whatever the receiver does. Chained this way the spans of one saga form
//! one tree, from the edge's request to the last consumer.

use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{TraceContextExt, TraceId},
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header, in HTTP and in Kafka, and the outbox column that carry the
/// trace context.
pub const TRACEPARENT: &str = "traceparent";

/// Makes `span`, which must not have been entered yet, a child of the span
/// that `traceparent` names, and records the trace id in the span's
/// `trace_id` field (declared `Empty` by the caller), so that every log line
/// inside the span carries it. A missing or malformed value starts a new
/// trace rather than failing the request or the message.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(value) = traceparent {
        let carrier = HashMap::from([(TRACEPARENT.to_owned(), value.to_owned())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        if parent.span().span_context().is_valid() {
            // Fails only when no OpenTelemetry layer is installed (a test
            // without telemetry), where there is no trace to continue.
            let _ = span.set_parent(parent);
        }
    }
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// The `traceparent` naming `span`, for a request or an event it causes;
/// `None` when there is no trace (no telemetry installed, or a disabled
/// span).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Sets an OpenTelemetry attribute on `span` without making it a `tracing`
/// field: exported with the span, but kept out of every log line inside it
/// (a consumer's dozen `messaging.*` attributes would bury the message).
pub fn attribute(span: &tracing::Span, key: &'static str, value: impl Into<opentelemetry::Value>) {
    span.set_attribute(key, value);
}

/// The span of one database transaction (OpenTelemetry's database
/// conventions), for the consumers' and the APIs' transactions alike.
pub fn db_transaction_span() -> tracing::Span {
    let span = tracing::info_span!("transaction", otel.name = "db.transaction");
    attribute(&span, "db.system.name", "postgresql");
    span
}

/// [`traceparent`] of the span the caller runs in.
pub fn current_traceparent() -> Option<String> {
    traceparent(&tracing::Span::current())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::prelude::*;

    fn with_telemetry(f: impl FnOnce()) {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f);
    }

    fn parts(traceparent: &str) -> Vec<String> {
        traceparent.split('-').map(str::to_owned).collect()
    }

    #[test]
    fn a_continued_span_keeps_the_callers_trace_and_names_itself_as_the_next_parent() {
        with_telemetry(|| {
            let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
            let span = tracing::info_span!("work", trace_id = tracing::field::Empty);
            continue_trace(&span, Some(caller));
            let next = traceparent(&span).expect("a traceparent for the span");
            let (caller, next) = (parts(caller), parts(&next));
            assert_eq!(next[1], caller[1], "same trace id");
            assert_ne!(next[2], caller[2], "the span's own id, not the caller's");
            assert_eq!(next[3], "01", "still sampled");

            let child = span.in_scope(|| {
                let child = tracing::info_span!("child");
                traceparent(&child).expect("a traceparent for the child")
            });
            assert_eq!(parts(&child)[1], caller[1], "children stay in the trace");
        });
    }

    #[test]
    fn a_missing_or_malformed_traceparent_starts_a_new_trace() {
        with_telemetry(|| {
            for header in [None, Some("garbage"), Some("00-abc-def-01")] {
                let span = tracing::info_span!("work", trace_id = tracing::field::Empty);
                continue_trace(&span, header);
                let started = traceparent(&span).expect("a new trace");
                assert_eq!(parts(&started)[1].len(), 32, "{header:?}");
                assert_ne!(
                    parts(&started)[1],
                    "0af7651916cd43dd8448eb211c80319c",
                    "{header:?}"
                );
            }
            let a = tracing::info_span!("a");
            let b = tracing::info_span!("b");
            assert_ne!(
                parts(&traceparent(&a).expect("a"))[1],
                parts(&traceparent(&b).expect("b"))[1],
                "two roots, two traces"
            );
        });
    }

    #[test]
    fn without_telemetry_there_is_nothing_to_send() {
        let span = tracing::info_span!("work");
        assert_eq!(traceparent(&span), None);
    }
}
