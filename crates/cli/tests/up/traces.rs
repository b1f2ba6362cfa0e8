//! The saga is one trace across the five processes.

use crate::helpers::*;
use anyhow::Context;
use choreo_testkit::{OtlpReceiver, ReceivedSpan, wait_until};
use std::collections::{BTreeMap, BTreeSet};

/// The spans of one order's saga, as a tracing backend receives them: from
/// all five processes, in one trace, forming one tree under the client's
/// span, with a producer span before every consumer span.
pub(crate) async fn the_saga_is_one_trace(
    otlp: &OtlpReceiver,
    trace_id: &str,
    client_span: &str,
) -> anyhow::Result<()> {
    // Complete: every process has sent its spans, the three services that
    // read `order.events` have processed the OrderConfirmed, and no span's
    // parent is missing.
    let complete = |spans: &[ReceivedSpan]| {
        let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
        let confirmed_by: BTreeSet<&str> = spans
            .iter()
            .filter(|s| s.kind == "consumer" && s.attribute("event_type") == Some("OrderConfirmed"))
            .map(|s| s.service.as_str())
            .collect();
        SAGA_PROCESSES.iter().all(|p| services.contains(p))
            && ["inventory", "payment", "shipping"]
                .iter()
                .all(|s| confirmed_by.contains(s))
            && orphans(spans, client_span).is_empty()
    };
    let spans = match wait_until("the saga's spans from all five processes", DEADLINE, || {
        let spans = otlp.trace(trace_id);
        std::future::ready(complete(&spans).then_some(spans))
    })
    .await
    {
        Ok(spans) => spans,
        Err(e) => {
            let spans = otlp.trace(trace_id);
            let orphans = orphans(&spans, client_span);
            anyhow::bail!(
                "{e}: {} spans of the trace received ({} in all), parents missing for {orphans:?}; {}",
                spans.len(),
                otlp.spans().len(),
                describe(&spans)
            );
        }
    };
    let by_id: BTreeMap<&str, &ReceivedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    assert_eq!(by_id.len(), spans.len(), "span ids are unique");

    // One root: the edge's request, a child of the client's span.
    let roots: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id.as_deref() == Some(client_span))
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "one span under the client's: {}",
        describe(&spans)
    );
    let root = roots[0];
    assert_eq!(
        (
            root.service.as_str(),
            root.kind.as_str(),
            root.name.as_str()
        ),
        ("edge", "server", "POST /v1/orders")
    );
    assert_eq!(root.attribute("http.response.status_code"), Some("201"));
    // Which makes it a tree: every other span hangs off a span of the trace.
    assert!(orphans(&spans, client_span).is_empty());

    // The edge's call to the order service is the parent of its request.
    let order_request = spans
        .iter()
        .find(|s| s.service == "order" && s.kind == "server")
        .context("the order service's request span")?;
    let call = by_id[order_request.parent_span_id.as_deref().unwrap_or_default()];
    assert_eq!(
        (call.service.as_str(), call.kind.as_str()),
        ("edge", "client")
    );

    // Every hop over Kafka: a consumer span under a producer span, with
    // OpenTelemetry's messaging attributes.
    let consumers: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.kind == "consumer").collect();
    assert!(consumers.len() >= 7, "{}", describe(&spans));
    for consumer in consumers {
        let parent = by_id[consumer.parent_span_id.as_deref().unwrap_or_default()];
        assert_eq!(parent.kind, "producer", "{consumer:?} follows a send");
        assert_eq!(
            parent.attribute("messaging.destination.name"),
            consumer.attribute("messaging.destination.name")
        );
        assert_eq!(consumer.attribute("messaging.system"), Some("kafka"));
        assert_eq!(
            consumer.attribute("messaging.operation.type"),
            Some("process")
        );
        for key in [
            "messaging.destination.partition.id",
            "messaging.kafka.offset",
            "messaging.consumer.group.name",
            "messaging.message.id",
        ] {
            assert!(consumer.attribute(key).is_some(), "{key} on {consumer:?}");
        }
        assert_eq!(
            consumer.name,
            format!(
                "process {}",
                consumer
                    .attribute("messaging.destination.name")
                    .unwrap_or_default()
            )
        );
    }
    // Each saga service handles its events in a database transaction.
    for service in &SAGA_PROCESSES[1..] {
        for name in ["db.transaction", "handle"] {
            assert!(
                spans
                    .iter()
                    .any(|s| s.service == *service && s.name.starts_with(name)),
                "{service} has a {name} span: {}",
                describe(&spans)
            );
        }
    }
    Ok(())
}

/// Spans whose parent is neither in `spans` nor the client's span.
pub(crate) fn orphans(spans: &[ReceivedSpan], client_span: &str) -> Vec<String> {
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    spans
        .iter()
        .filter(|s| match s.parent_span_id.as_deref() {
            None => true,
            Some(parent) => parent != client_span && !ids.contains(parent),
        })
        .map(|s| format!("{} {}", s.service, s.name))
        .collect()
}

pub(crate) fn describe(spans: &[ReceivedSpan]) -> String {
    spans
        .iter()
        .map(|s| format!("{}:{}({})", s.service, s.name, s.kind))
        .collect::<Vec<_>>()
        .join(", ")
}
