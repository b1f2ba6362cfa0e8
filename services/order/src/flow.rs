//! The saga's flow as it runs, for the dashboard's live graph (`GET
//! /saga/flow`, which the edge serves to admins as `GET /v1/admin/saga`):
//! the choreography's steps and reactions (`choreo_events::choreography`),
//! and for each step what the order timelines say about it now:
//!
//! - `events`: how many orders reached the step in the last minute;
//! - `p50_ms`: the median time from an order's step before to this one, over
//!   that minute: how long the step took, its hop included;
//! - `waiting`: PENDING orders whose latest step it is now, which is where
//!   they are stuck when the number stays.
//!
//! The order service is the one to ask: it follows every saga step into
//! its timelines (`handlers`), whichever service took it, and its table
//! holds them all, so every replica answers the same. A step counts when
//! the timeline learns it: `PaymentCompleted` comes with the shipping event
//! that answers it (the service passes the payment over, to save a
//! transaction per saga), so a paid order whose shipping has not answered
//! still waits at `StockReserved` here.

use crate::rebuild::is_step;
use axum::{Json, Router, extract::State, routing::get};
use choreo_events::{
    Record,
    choreography::{CHOREOGRAPHY, Consumer},
};
use choreo_kit::HttpError;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::HashMap;

/// The window `events` and `p50_ms` are counted over.
const WINDOW_SECONDS: u32 = 60;

pub(crate) fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/saga/flow", get(flow))
        .with_state(pool)
}

#[derive(Debug, Serialize)]
struct Flow {
    window_seconds: u32,
    steps: Vec<Step>,
    reactions: Vec<Reaction>,
    commands: Vec<Command>,
}

/// A record that is a saga step, and the orders at it.
#[derive(Debug, Serialize)]
struct Step {
    record: &'static str,
    topic: &'static str,
    /// The service that publishes it.
    service: &'static str,
    events: i64,
    p50_ms: Option<f64>,
    waiting: i64,
}

/// A service's reaction to a step: the steps it may emit, or, with none,
/// what it does.
#[derive(Debug, Serialize)]
struct Reaction {
    service: &'static str,
    on: &'static str,
    emits: Vec<&'static str>,
    does: &'static str,
}

/// A way into the saga from outside the topics.
#[derive(Debug, Serialize)]
struct Command {
    service: &'static str,
    name: &'static str,
    emits: Vec<&'static str>,
}

async fn flow(State(pool): State<PgPool>) -> Result<Json<Flow>, HttpError> {
    let mut conn = pool.acquire().await?;
    let recent: HashMap<String, (i64, Option<f64>)> =
        sqlx::query_as::<_, (String, i64, Option<f64>)>(
            "SELECT t.event_type, count(*)::BIGINT,
                percentile_cont(0.5) WITHIN GROUP (
                    ORDER BY extract(epoch FROM t.occurred_at - before.occurred_at) * 1000
                )::DOUBLE PRECISION
         FROM order_timeline t
         LEFT JOIN LATERAL (
             SELECT p.occurred_at FROM order_timeline p
             WHERE p.order_id = t.order_id AND (p.occurred_at, p.seq) < (t.occurred_at, t.seq)
             ORDER BY p.occurred_at DESC, p.seq DESC
             LIMIT 1
         ) before ON true
         WHERE t.occurred_at > now() - make_interval(secs => $1)
         GROUP BY t.event_type",
        )
        .bind(f64::from(WINDOW_SECONDS))
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|(record, events, p50)| (record, (events, p50)))
        .collect();
    let waiting: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT latest.event_type, count(*)::BIGINT
         FROM orders o
         CROSS JOIN LATERAL (
             SELECT t.event_type FROM order_timeline t
             WHERE t.order_id = o.id
             ORDER BY t.occurred_at DESC, t.seq DESC
             LIMIT 1
         ) latest
         WHERE o.status = 'PENDING'
         GROUP BY latest.event_type",
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    Ok(Json(Flow {
        window_seconds: WINDOW_SECONDS,
        steps: steps()
            .map(|record| {
                let (events, p50_ms) = recent.get(record.name()).copied().unwrap_or_default();
                Step {
                    record: record.name(),
                    topic: record.topic().base_name(),
                    service: publisher(record).map_or("", |c| c.service),
                    events,
                    p50_ms,
                    waiting: waiting.get(record.name()).copied().unwrap_or_default(),
                }
            })
            .collect(),
        reactions: CHOREOGRAPHY
            .iter()
            .flat_map(|c| c.reactions.iter().map(move |r| (c.service, r)))
            .filter(|(_, r)| is_step(r.on))
            .map(|(service, r)| Reaction {
                service,
                on: r.on.name(),
                emits: names(r.emits),
                does: r.does,
            })
            .collect(),
        commands: CHOREOGRAPHY
            .iter()
            .flat_map(|c| c.commands.iter().map(move |command| (c.service, command)))
            .filter(|(_, command)| command.emits.iter().copied().any(is_step))
            .map(|(service, command)| Command {
                service,
                name: command.name,
                emits: names(command.emits),
            })
            .collect(),
    }))
}

/// The records that are saga steps, in the choreography's order.
fn steps() -> impl Iterator<Item = Record> {
    Record::ALL.iter().copied().filter(|r| is_step(*r))
}

fn publisher(record: Record) -> Option<&'static Consumer> {
    CHOREOGRAPHY.iter().find(|c| c.publishes == record.topic())
}

fn names(records: &[Record]) -> Vec<&'static str> {
    records.iter().map(|r| r.name()).collect()
}
