//! Where a saga's time goes, from the spans the platform exported for the
//! sagas of the profile phase.
//!
//! Each span contributes its own time: its duration less the part its
//! synchronous children cover (a request's call to a service, a handler's
//! transaction). Between the spans of two processes lie the gaps no span
//! covers, which are stages too: from the span that wrote an outbox row to
//! the relay's send of it (the relay's pickup), and from the broker's
//! acknowledgement of a send to the consumer's start (the broker's
//! delivery, the consumer's fetch wait included). Summed over a trace, the
//! stages cover all the work of the saga: its path to the end, and the
//! branches beside it (several services consume one event, and the
//! reactions to `OrderConfirmed` come after the end), all counted. So a
//! stage's share is of that work, not of the saga's duration; a stage on
//! the path with a large share is where a cut shortens the saga.

use super::stats::Latency;
use choreo_telemetry::collector::ReceivedSpan;
use serde::{Deserialize, Serialize};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Duration,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Profile {
    /// Sagas whose spans are counted.
    pub sagas: usize,
    pub spans: usize,
    /// The kinds of cost, largest first: the top of this list is where a
    /// cut pays.
    pub costs: Vec<Cost>,
    /// Every stage, largest first.
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Cost {
    pub kind: String,
    pub per_saga_ms: f64,
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stage {
    pub name: String,
    pub kind: String,
    pub per_saga_ms: f64,
    pub share: f64,
    /// Per occurrence (a saga may pass a stage more than once).
    pub latency: Latency,
}

const RELAY: &str = "outbox relay (row written → sent)";
const DELIVERY: &str = "broker delivery (acknowledged → consumed)";

type Id<'a> = (&'a str, &'a str);

/// The profile of the traces in `traces`, from every span received.
pub(crate) fn profile(spans: &[ReceivedSpan], traces: &HashSet<String>) -> Profile {
    let spans: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| traces.contains(&s.trace_id))
        .collect();
    let by_id: HashMap<Id<'_>, &ReceivedSpan> = spans
        .iter()
        .map(|s| ((s.trace_id.as_str(), s.span_id.as_str()), *s))
        .collect();
    let parent = |s: &ReceivedSpan| {
        s.parent_span_id
            .as_deref()
            .and_then(|p| by_id.get(&(s.trace_id.as_str(), p)).copied())
    };
    let mut children: HashMap<Id<'_>, Vec<&ReceivedSpan>> = HashMap::new();
    for span in &spans {
        if let Some(p) = parent(span) {
            children
                .entry((p.trace_id.as_str(), p.span_id.as_str()))
                .or_default()
                .push(span);
        }
    }
    let mut samples: BTreeMap<(String, &'static str), Vec<Duration>> = BTreeMap::new();
    let mut add = |name: String, kind: &'static str, nanos: u64| {
        samples
            .entry((name, kind))
            .or_default()
            .push(Duration::from_nanos(nanos));
    };
    for span in &spans {
        let mine = children
            .get(&(span.trace_id.as_str(), span.span_id.as_str()))
            .map_or(&[][..], Vec::as_slice);
        let own = duration(span).saturating_sub(covered(span, mine));
        add(label(span, &parent), kind(span), own);
        let Some(p) = parent(span) else { continue };
        let gap = span.start_unix_nanos.saturating_sub(p.end_unix_nanos);
        match (span.kind.as_str(), p.kind.as_str()) {
            ("producer", _) => add(format!("{} relay", span.service), RELAY, gap),
            ("consumer", "producer") => add(
                format!("broker → {} ({})", span.service, event(span, &parent)),
                DELIVERY,
                gap,
            ),
            _ => {}
        }
    }
    let sagas = traces.len();
    let total: f64 = samples
        .values()
        .flat_map(|d| d.iter())
        .map(Duration::as_secs_f64)
        .sum();
    let share = |sum: f64| if total > 0.0 { sum / total } else { 0.0 };
    let per_saga = |sum: f64| sum * 1000.0 / sagas.max(1) as f64;
    let mut stages: Vec<Stage> = samples
        .into_iter()
        .map(|((name, kind), durations)| {
            let sum: f64 = durations.iter().map(Duration::as_secs_f64).sum();
            Stage {
                name,
                kind: kind.to_owned(),
                per_saga_ms: per_saga(sum),
                share: share(sum),
                latency: Latency::of(&durations),
            }
        })
        .collect();
    stages.sort_by(|a, b| b.share.total_cmp(&a.share));
    let mut by_kind: BTreeMap<&str, f64> = BTreeMap::new();
    for stage in &stages {
        *by_kind.entry(stage.kind.as_str()).or_default() += stage.share;
    }
    let mut costs: Vec<Cost> = by_kind
        .into_iter()
        .map(|(kind, share)| Cost {
            kind: kind.to_owned(),
            per_saga_ms: share * total * 1000.0 / sagas.max(1) as f64,
            share,
        })
        .collect();
    costs.sort_by(|a, b| b.share.total_cmp(&a.share));
    Profile {
        sagas,
        spans: spans.len(),
        costs,
        stages,
    }
}

fn duration(span: &ReceivedSpan) -> u64 {
    span.end_unix_nanos.saturating_sub(span.start_unix_nanos)
}

/// How much of `span` its synchronous children cover: the union of their
/// intervals, clipped to its own. A send is not one: the relay sends what
/// a span wrote after that span has ended.
fn covered(span: &ReceivedSpan, children: &[&ReceivedSpan]) -> u64 {
    let mut intervals: Vec<(u64, u64)> = children
        .iter()
        .filter(|c| c.kind != "producer")
        .map(|c| {
            (
                c.start_unix_nanos.max(span.start_unix_nanos),
                c.end_unix_nanos.min(span.end_unix_nanos),
            )
        })
        .filter(|(start, end)| start < end)
        .collect();
    intervals.sort_unstable();
    let (mut sum, mut reach) = (0, 0);
    for (start, end) in intervals {
        let start = start.max(reach);
        if end > start {
            sum += end - start;
            reach = end;
        }
    }
    sum
}

/// The event a span works on: its own `event_type`, or its nearest
/// ancestor's.
fn event<'a>(
    span: &'a ReceivedSpan,
    parent: &dyn Fn(&ReceivedSpan) -> Option<&'a ReceivedSpan>,
) -> &'a str {
    let mut at = Some(span);
    while let Some(s) = at {
        if let Some(event) = s.attribute("event_type").filter(|e| !e.is_empty()) {
            return event;
        }
        at = parent(s);
    }
    "?"
}

fn label<'a>(
    span: &'a ReceivedSpan,
    parent: &dyn Fn(&ReceivedSpan) -> Option<&'a ReceivedSpan>,
) -> String {
    // Names already carrying their event (`handle OrderPlaced`) and HTTP
    // routes stand alone; the rest are told apart by their event.
    if span.name.starts_with("handle ") || matches!(span.kind.as_str(), "server" | "client") {
        return format!("{} {}", span.service, span.name);
    }
    let event = event(span, parent);
    if event == "?" {
        format!("{} {}", span.service, span.name)
    } else {
        format!("{} {} ({event})", span.service, span.name)
    }
}

fn kind(span: &ReceivedSpan) -> &'static str {
    match span.kind.as_str() {
        "producer" => "broker acknowledgement (sent → acknowledged)",
        // A batched event's span also waits for the rest of its batch.
        "consumer" => "consumers (decoding, retries, the rest of a batch)",
        "server" | "client" => "HTTP (edge and services)",
        _ if matches!(span.name.as_str(), "db.transaction" | "db.commit") => {
            "database transactions (begin, inbox, commit)"
        }
        _ if span.name.starts_with("handle ") => "event handlers",
        _ => "request handlers and the rest",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(
        service: &str,
        name: &str,
        kind: &str,
        id: &str,
        parent: Option<&str>,
        (start, end): (u64, u64),
    ) -> ReceivedSpan {
        ReceivedSpan {
            service: service.into(),
            name: name.into(),
            kind: kind.into(),
            trace_id: "t".into(),
            span_id: id.into(),
            parent_span_id: parent.map(str::to_owned),
            start_unix_nanos: start * 1_000_000,
            end_unix_nanos: end * 1_000_000,
            attributes: BTreeMap::from([("event_type".to_owned(), "OrderPlaced".to_owned())]),
        }
    }

    #[test]
    fn own_times_and_the_gaps_between_processes_add_up_to_the_path() {
        // A request (0–10 ms) whose transaction (2–6) wrote a row the relay
        // sent at 14 (acknowledged at 20), consumed from 35 to 40.
        let spans = vec![
            span("order", "POST /orders", "server", "a", None, (0, 10)),
            span(
                "order",
                "db.transaction",
                "internal",
                "b",
                Some("a"),
                (2, 6),
            ),
            span("order", "send orders", "producer", "c", Some("b"), (14, 20)),
            span(
                "inventory",
                "process orders",
                "consumer",
                "d",
                Some("c"),
                (35, 40),
            ),
        ];
        let p = profile(&spans, &HashSet::from(["t".to_owned()]));
        let ms = |name: &str| {
            p.stages
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.per_saga_ms)
        };
        assert_eq!(ms("order POST /orders"), Some(6.0), "{p:?}");
        assert_eq!(ms("order db.transaction (OrderPlaced)"), Some(4.0));
        assert_eq!(ms("order relay"), Some(8.0));
        assert_eq!(ms("order send orders (OrderPlaced)"), Some(6.0));
        assert_eq!(ms("broker → inventory (OrderPlaced)"), Some(15.0));
        assert_eq!(ms("inventory process orders (OrderPlaced)"), Some(5.0));
        // 44 ms in all (the relay's pickup overlaps the request's last 4),
        // the delivery the largest part.
        assert_eq!(p.costs[0].kind, DELIVERY);
        assert!((p.costs[0].share - 15.0 / 44.0).abs() < 1e-9, "{p:?}");
        assert!((p.costs.iter().map(|c| c.share).sum::<f64>() - 1.0).abs() < 1e-9);
    }
}
