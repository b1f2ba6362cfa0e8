//! The orders a replay's run of the service's own events re-applies: their
//! statuses locked at its start with one statement, changed in memory by the
//! recovery handlers one event after another, and written back at its end
//! with a statement per table. The rules are `db`'s, which a single event
//! and the live service use.

use crate::{db::OrderStatus, steps::Steps};
use choreo_events::{EventMeta, OrderPlaced};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// An order the run places, with the trace it was placed in.
#[derive(Debug)]
struct Placed {
    event: OrderPlaced,
    traceparent: Option<String>,
}

/// What the run changes on an order: its status, the total it was
/// confirmed at or the reason it was cancelled for, as of the latest time.
#[derive(Debug)]
struct Change {
    status: OrderStatus,
    total: Option<(i64, String)>,
    cancel: Option<(String, String)>,
    at: DateTime<Utc>,
}

/// The orders of a run of events, locked in its transaction.
#[derive(Debug, Default)]
pub(crate) struct Restored {
    status: HashMap<Uuid, OrderStatus>,
    placed: Vec<Placed>,
    changes: BTreeMap<Uuid, Change>,
    steps: Steps,
}

impl Restored {
    /// Locks the orders of `orders` that exist, in key order so that two
    /// runs cannot deadlock. One the run places is written at its end;
    /// should another transaction place it meanwhile, the insert fails and
    /// the run is applied again one event at a time.
    pub(crate) async fn lock(
        conn: &mut PgConnection,
        mut orders: Vec<Uuid>,
    ) -> Result<Self, sqlx::Error> {
        orders.sort_unstable();
        orders.dedup();
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, status FROM orders WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
        .bind(&orders)
        .fetch_all(conn)
        .await?;
        let mut restored = Restored::default();
        for (id, status) in rows {
            let status = OrderStatus::parse(&status).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown order status {status:?}").into())
            })?;
            restored.status.insert(id, status);
        }
        Ok(restored)
    }

    /// Where the order stands; `None` when the database does not hold it.
    pub(crate) fn status(&self, order_id: Uuid) -> Option<OrderStatus> {
        self.status.get(&order_id).copied()
    }

    /// Inserts a new PENDING order and its lines, as its `OrderPlaced`
    /// tells them, in the trace of the span it runs in (as
    /// `db::insert_order`), and its step.
    pub(crate) fn place(&mut self, placed: &OrderPlaced) {
        self.status.insert(placed.order_id, OrderStatus::Pending);
        self.steps.record(&placed.meta);
        self.placed.push(Placed {
            event: placed.clone(),
            traceparent: choreo_telemetry::current_traceparent(),
        });
    }

    /// Confirms the order at `total_cents`, as of the confirmation `meta`
    /// (as `db::set_total` and `db::set_status`), and records its step.
    pub(crate) fn confirm(&mut self, meta: &EventMeta, total_cents: i64, currency: &str) {
        let order_id = meta.correlation_id;
        self.status.insert(order_id, OrderStatus::Confirmed);
        let change = self.change(order_id, OrderStatus::Confirmed, meta.occurred_at);
        change.total = Some((total_cents, currency.to_owned()));
        self.steps.record(meta);
    }

    /// Cancels the order with its reason, as of the cancellation `meta` (as
    /// `db::set_cancelled`), and records its step.
    pub(crate) fn cancel(&mut self, meta: &EventMeta, reason: &str, detail: &str) {
        let order_id = meta.correlation_id;
        self.status.insert(order_id, OrderStatus::Cancelled);
        let change = self.change(order_id, OrderStatus::Cancelled, meta.occurred_at);
        change.cancel = Some((reason.to_owned(), detail.to_owned()));
        self.steps.record(meta);
    }

    fn change(&mut self, order_id: Uuid, status: OrderStatus, at: DateTime<Utc>) -> &mut Change {
        let change = self.changes.entry(order_id).or_insert(Change {
            status,
            total: None,
            cancel: None,
            at,
        });
        change.status = status;
        change.at = change.at.max(at);
        change
    }

    /// Writes the run: the orders it placed and their lines, the changes,
    /// then the steps.
    pub(crate) async fn save(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if !self.placed.is_empty() {
            insert_orders(conn, &self.placed).await?;
        }
        if !self.changes.is_empty() {
            let mut c: Columns<'_> = Default::default();
            for (id, change) in &self.changes {
                c.id.push(*id);
                c.status.push(change.status.as_str());
                c.total.push(change.total.as_ref().map(|t| t.0));
                c.currency.push(change.total.as_ref().map(|t| t.1.as_str()));
                c.reason.push(change.cancel.as_ref().map(|r| r.0.as_str()));
                c.detail.push(change.cancel.as_ref().map(|r| r.1.as_str()));
                c.at.push(change.at);
            }
            // The rows are locked since `lock` (or made by this run).
            sqlx::query(
                "UPDATE orders o SET status = u.status,
                     total_cents = COALESCE(u.total, o.total_cents),
                     currency = COALESCE(u.currency, o.currency),
                     cancel_reason = COALESCE(u.reason, o.cancel_reason),
                     cancel_detail = COALESCE(u.detail, o.cancel_detail),
                     updated_at = GREATEST(o.updated_at, u.at)
                 FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                      $6::text[], $7::timestamptz[])
                      AS u(id, status, total, currency, reason, detail, at)
                 WHERE o.id = u.id",
            )
            .bind(&c.id)
            .bind(&c.status)
            .bind(&c.total)
            .bind(&c.currency)
            .bind(&c.reason)
            .bind(&c.detail)
            .bind(&c.at)
            .execute(&mut *conn)
            .await?;
        }
        self.steps.write(conn).await
    }
}

/// The orders' changes, column by column.
#[derive(Default)]
struct Columns<'a> {
    id: Vec<Uuid>,
    status: Vec<&'static str>,
    total: Vec<Option<i64>>,
    currency: Vec<Option<&'a str>>,
    reason: Vec<Option<&'a str>>,
    detail: Vec<Option<&'a str>>,
    at: Vec<DateTime<Utc>>,
}

/// The orders `placed` and their lines, with a statement each (as
/// `db::insert_order` does for one).
async fn insert_orders(conn: &mut PgConnection, placed: &[Placed]) -> Result<(), sqlx::Error> {
    let addresses = placed
        .iter()
        .map(|p| serde_json::to_value(&p.event.shipping_address))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO orders (id, customer_id, status, shipping_address, created_at, updated_at, traceparent)
         SELECT id, customer_id, 'PENDING', address, at, at, traceparent
         FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::timestamptz[], $5::text[])
              AS u(id, customer_id, address, at, traceparent)",
    )
    .bind(placed.iter().map(|p| p.event.order_id).collect::<Vec<_>>())
    .bind(placed.iter().map(|p| p.event.customer_id.as_str()).collect::<Vec<_>>())
    .bind(addresses)
    .bind(placed.iter().map(|p| p.event.meta.occurred_at).collect::<Vec<_>>())
    .bind(placed.iter().map(|p| p.traceparent.as_deref()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    // Each line numbered by its place in the order, as one order alone.
    let lines: Vec<(Uuid, i32, &str, i32)> = placed
        .iter()
        .flat_map(|p| {
            p.event.lines.iter().enumerate().map(|(line_no, line)| {
                (
                    p.event.order_id,
                    line_no as i32,
                    line.sku.as_str(),
                    line.quantity,
                )
            })
        })
        .collect();
    if !lines.is_empty() {
        sqlx::query(
            "INSERT INTO order_lines (order_id, line_no, sku, quantity)
             SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[])",
        )
        .bind(lines.iter().map(|l| l.0).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.1).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.2).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.3).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    Ok(())
}
