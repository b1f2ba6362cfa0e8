//! The load: customers and products of the bench's own, a warm-up, then a
//! phase of orders placed through the edge, closed-loop (clients that each
//! place an order, wait for its end, and place the next) or open-loop
//! (orders arriving at a fixed rate whether or not earlier ones ended).
//! Every order is timed from its POST to the answer that showed it ended.

use anyhow::Context;
use choreo_platform::client::{self, Posted};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::{task::JoinSet, time::Instant};

/// Stock and money enough that no bench order is ever refused for want of
/// either (stock is a 32-bit count in inventory).
const STOCK: i64 = 1_000_000_000;
const BALANCE_CENTS: i64 = 1_000_000_000_000;
const PRICE_CENTS: i64 = 100;

/// The bench's own customers and products, one each per client, so that
/// no two clients contend for one wallet or one stock row (a shop's many
/// customers buy many products; one hot row would measure that row).
pub(crate) struct Shop {
    edge: String,
    admin: reqwest::Client,
    tag: String,
    customers: Vec<(String, reqwest::Client)>,
    skus: Vec<String>,
}

impl Shop {
    /// Creates `size` products and wallets named after `tag`, through the
    /// admin API.
    pub(crate) async fn open(
        edge: &str,
        secret: &str,
        size: usize,
        tag: &str,
    ) -> anyhow::Result<Self> {
        let admin = client::bearer(&choreo_kit::customer_token::hs256_token(
            secret,
            &format!("bench-{tag}-operator"),
            true,
            86_400,
        )?)?;
        let mut customers = Vec::new();
        let mut skus = Vec::new();
        for i in 0..size {
            let sku = format!("BENCH-{}-{i}", tag.to_uppercase());
            client::put_product(&admin, edge, &sku, "Bench item", PRICE_CENTS, STOCK).await?;
            let customer = format!("bench-{tag}-{i}");
            client::put_wallet(&admin, edge, &customer, BALANCE_CENTS).await?;
            let token = choreo_kit::customer_token::hs256_token(secret, &customer, false, 86_400)?;
            customers.push((customer, client::bearer(&token)?));
            skus.push(sku);
        }
        Ok(Self {
            edge: edge.to_owned(),
            admin,
            tag: tag.to_owned(),
            customers,
            skus,
        })
    }

    /// One order per customer, all at once, each to CONFIRMED: the first
    /// saga on a fresh platform waits for every consumer group to settle
    /// (seconds), which is not what a phase should measure.
    pub(crate) async fn warm_up(self: &Arc<Self>) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut orders = JoinSet::new();
        for i in 0..self.customers.len() {
            let shop = self.clone();
            orders.spawn(async move {
                let (customer, http) = &shop.customers[i];
                let body = client::order_body(customer, &shop.skus[i], "DE");
                let key = format!("bench-{}-warm-up-{i}", shop.tag);
                let id = client::place(http, &shop.edge, &key, &body).await?;
                let order = client::wait_terminal(http, &shop.edge, &id, deadline, None).await;
                anyhow::ensure!(
                    order["status"] == "CONFIRMED",
                    "the warm-up order {id} did not complete (it is {}): the platform is not healthy",
                    order["status"]
                );
                anyhow::Ok(())
            });
        }
        while let Some(done) = orders.join_next().await {
            done??;
        }
        Ok(())
    }

    /// Waits until every saga service's outbox is published, as the edge's
    /// platform view shows them: the messages a phase caused are then all on
    /// the broker, so that its watermarks count them and no other phase's.
    pub(crate) async fn wait_published(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.backlog().await {
                Ok(0) => return Ok(()),
                Ok(n) => last = format!("{n} outbox rows unpublished"),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the outboxes were not published within {within:?}: {last}")
    }

    async fn backlog(&self) -> anyhow::Result<i64> {
        let platform: Value = self
            .admin
            .get(format!("{}/v1/admin/platform", self.edge))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut backlog = 0;
        for service in platform["services"].as_array().into_iter().flatten() {
            anyhow::ensure!(
                service["reachable"] == true,
                "{} does not answer",
                service["service"]
            );
            backlog += service["runtime"]["outbox_backlog"]
                .as_i64()
                .context("a service's stats without outbox_backlog")?;
        }
        Ok(backlog)
    }

    pub(crate) fn size(&self) -> usize {
        self.customers.len()
    }
}

/// How orders arrive in a phase.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Load {
    /// This many clients, each with one order at a time.
    Closed { clients: usize },
    /// Orders at this many per second.
    Open { rate: f64 },
}

/// One order as the bench saw it.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    /// The POST's answer time.
    pub post: Duration,
    /// From the POST to the answer showing the order CONFIRMED or
    /// CANCELLED; `None` when it had not ended by the deadline.
    pub completion: Option<Duration>,
    /// When that answer came.
    pub ended_at: Option<Instant>,
    /// From the POST to the terminal event's commit, by the services'
    /// clocks (the saga's own time, without the answer's way back).
    pub saga: Option<Duration>,
    pub status: String,
    /// The time between consecutive timeline events, the first one
    /// measured from the POST: `("OrderPlaced → StockReserved", …)`.
    pub steps: Vec<(String, Duration)>,
    /// The trace its POST began.
    pub trace_id: String,
}

/// A phase as it ran.
#[derive(Debug)]
pub(crate) struct PhaseRun {
    pub load: Load,
    pub started: Instant,
    pub seconds: f64,
    pub observed: Vec<Observed>,
    /// Orders the edge did not accept: why, for each.
    pub refused: Vec<String>,
}

/// What the progress display reads while a phase runs.
#[derive(Default)]
pub(crate) struct Counters {
    pub placed: AtomicUsize,
    pub ended: AtomicUsize,
}

/// Runs one phase for `duration`, then waits up to `drain` for the orders
/// still running to end. With `traced` each order's saga is traced (its
/// POST asks for it); without, none is, so that exporting spans costs a
/// measured phase nothing.
pub(crate) async fn run_phase(
    shop: &Arc<Shop>,
    name: &str,
    load: Load,
    duration: Duration,
    drain: Duration,
    traced: bool,
    counters: &Arc<Counters>,
) -> anyhow::Result<PhaseRun> {
    let started = Instant::now();
    let end = started + duration;
    let deadline = end + drain;
    let observed = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let record = {
        let (observed, refused) = (observed.clone(), refused.clone());
        move |result: Result<Observed, String>| match result {
            Ok(o) => observed.lock().unwrap_or_else(|e| e.into_inner()).push(o),
            Err(why) => refused.lock().unwrap_or_else(|e| e.into_inner()).push(why),
        }
    };
    let sequence = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    match load {
        Load::Closed { clients } => {
            anyhow::ensure!(
                clients <= shop.size(),
                "{clients} clients for a shop of {}",
                shop.size()
            );
            for client in 0..clients {
                let (shop, counters, sequence, record) = (
                    shop.clone(),
                    counters.clone(),
                    sequence.clone(),
                    record.clone(),
                );
                let key_prefix = format!("bench-{}-{name}", shop.tag);
                tasks.spawn(async move {
                    while Instant::now() < end {
                        let n = sequence.fetch_add(1, Ordering::Relaxed);
                        let key = format!("{key_prefix}-{n}");
                        let result =
                            one_order(&shop, client, &key, deadline, traced, &counters).await;
                        let refused = result.is_err();
                        record(result);
                        if refused {
                            // Not at once again: a platform refusing
                            // everything would be asked in a busy loop.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                });
            }
        }
        Load::Open { rate } => {
            anyhow::ensure!(
                rate > 0.0 && rate.is_finite(),
                "the arrival rate must be a positive number"
            );
            let mut n = 0_usize;
            loop {
                let at = started + Duration::from_secs_f64(n as f64 / rate);
                if at >= end {
                    break;
                }
                tokio::time::sleep_until(at).await;
                let (shop, counters, record) = (shop.clone(), counters.clone(), record.clone());
                let key = format!("bench-{}-{name}-{n}", shop.tag);
                let who = n % shop.size();
                tasks.spawn(async move {
                    record(one_order(&shop, who, &key, deadline, traced, &counters).await);
                });
                n += 1;
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.context("an order's task failed")?;
    }
    Ok(PhaseRun {
        load,
        started,
        seconds: duration.as_secs_f64(),
        observed: take(&observed),
        refused: take(&refused),
    })
}

impl PhaseRun {
    /// The orders that reached their end within the phase and its drain.
    pub(crate) fn ended(&self) -> impl Iterator<Item = &Observed> {
        self.observed.iter().filter(|o| o.completion.is_some())
    }
}

fn take<T>(shared: &Mutex<Vec<T>>) -> Vec<T> {
    std::mem::take(&mut *shared.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Places one order as customer `who` and waits for its end; `Err` with
/// the edge's answer when the order was not accepted. A refused order is
/// not retried: the bench reports what the platform answered.
async fn one_order(
    shop: &Shop,
    who: usize,
    key: &str,
    deadline: Instant,
    traced: bool,
    counters: &Counters,
) -> Result<Observed, String> {
    let (customer, http) = &shop.customers[who];
    let body = client::order_body(customer, &shop.skus[who], "DE");
    let (trace_id, traceparent) = client::new_trace(traced);
    // The asks for its end are never traced: they are not the saga.
    let (_, untraced) = client::new_trace(false);
    let sent_at = Utc::now();
    let sent = Instant::now();
    let order = match client::post_order(http, &shop.edge, key, &body, Some(&traceparent)).await {
        Posted::Accepted(order) => order,
        Posted::Refused(why) | Posted::Retry(why) => return Err(why),
    };
    let post = sent.elapsed();
    counters.placed.fetch_add(1, Ordering::Relaxed);
    let id = order["id"].as_str().unwrap_or_default();
    let last = client::wait_terminal(http, &shop.edge, id, deadline, Some(&untraced)).await;
    let ended = client::is_terminal(&last);
    if ended {
        counters.ended.fetch_add(1, Ordering::Relaxed);
    }
    let (saga, steps) = if ended {
        timeline_steps(&last, sent_at)
    } else {
        (None, Vec::new())
    };
    Ok(Observed {
        post,
        completion: ended.then(|| sent.elapsed()),
        ended_at: ended.then(Instant::now),
        saga,
        status: last["status"].as_str().unwrap_or("PENDING").to_owned(),
        steps,
        trace_id,
    })
}

/// The time from `sent_at` to the order's last timeline event, and between
/// each pair of consecutive events (in the order they occurred).
fn timeline_steps(
    order: &Value,
    sent_at: DateTime<Utc>,
) -> (Option<Duration>, Vec<(String, Duration)>) {
    let mut events: Vec<(DateTime<Utc>, String)> = order["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let at = e["occurred_at"].as_str()?.parse().ok()?;
            Some((at, e["event_type"].as_str()?.to_owned()))
        })
        .collect();
    events.sort();
    let since = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).to_std().unwrap_or_default();
    let mut steps = Vec::new();
    let mut previous: Option<&(DateTime<Utc>, String)> = None;
    for event in &events {
        let (name, from) = match previous {
            None => (format!("POST → {}", event.1), sent_at),
            Some((at, kind)) => (format!("{kind} → {}", event.1), *at),
        };
        steps.push((name, since(from, event.0)));
        previous = Some(event);
    }
    let saga = events.last().map(|(at, _)| since(sent_at, *at));
    (saga, steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_run_from_the_post_through_each_event_in_the_order_they_occurred() {
        let sent: DateTime<Utc> = "2026-12-02T10:00:00Z".parse().expect("a time");
        let order = json!({"timeline": [
            {"event_type": "StockReserved", "occurred_at": "2026-12-02T10:00:00.030Z"},
            {"event_type": "OrderPlaced", "occurred_at": "2026-12-02T10:00:00.010Z"},
            {"event_type": "OrderConfirmed", "occurred_at": "2026-12-02T10:00:00.100Z"},
        ]});
        let (saga, steps) = timeline_steps(&order, sent);
        assert_eq!(saga, Some(Duration::from_millis(100)));
        assert_eq!(
            steps,
            vec![
                ("POST → OrderPlaced".to_owned(), Duration::from_millis(10)),
                (
                    "OrderPlaced → StockReserved".to_owned(),
                    Duration::from_millis(20)
                ),
                (
                    "StockReserved → OrderConfirmed".to_owned(),
                    Duration::from_millis(70)
                ),
            ]
        );
    }
}
