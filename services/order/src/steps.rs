//! The saga's steps of orders already decided, as a replay re-records them
//! after a restore: the order's own topic brought back every order and its
//! outcome first, so nearly every input only adds its step to a timeline
//! (and `StockReserved` its prices to the lines). A run collects them in
//! memory and writes them with a statement per table.

use choreo_events::{EventMeta, PricedLine};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashSet};
use uuid::Uuid;

/// The orders of `orders` that are CONFIRMED or CANCELLED, read without a
/// lock: an order decided stays decided.
pub(crate) async fn decided(
    conn: &mut PgConnection,
    orders: &[Uuid],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    if orders.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE id = ANY($1) AND status IN ('CONFIRMED', 'CANCELLED')",
    )
    .bind(orders)
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().collect())
}

/// What a run records for orders already decided.
#[derive(Debug, Default)]
pub(crate) struct Steps {
    timeline: Vec<EventMeta>,
    /// Each line's price, the last one a run saw winning, as one statement
    /// after another would leave it.
    lines: BTreeMap<(Uuid, String), (i64, i64)>,
    /// Each order's total and currency (the last seen) and the latest time
    /// they changed at.
    totals: BTreeMap<Uuid, (i64, String, DateTime<Utc>)>,
}

impl Steps {
    /// Appends the event of `meta` to its order's timeline (once, whatever
    /// the redelivery), as `db::append_timeline`.
    pub(crate) fn record(&mut self, meta: &EventMeta) {
        self.timeline.push(meta.clone());
    }

    /// Records inventory's prices on the order's lines and its total, as of
    /// `at`, as `db::set_prices`.
    pub(crate) fn set_prices(
        &mut self,
        order_id: Uuid,
        lines: &[PricedLine],
        total_cents: i64,
        currency: &str,
        at: DateTime<Utc>,
    ) {
        for line in lines {
            self.lines.insert(
                (order_id, line.sku.clone()),
                (line.unit_price_cents, line.line_total_cents),
            );
        }
        let latest = self
            .totals
            .get(&order_id)
            .map_or(at, |(_, _, before)| at.max(*before));
        self.totals
            .insert(order_id, (total_cents, currency.to_owned(), latest));
    }

    /// Writes the run's steps: the timeline rows in the order seen, then the
    /// prices and totals.
    pub(crate) async fn write(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if !self.timeline.is_empty() {
            let t = &self.timeline;
            sqlx::query(
                "INSERT INTO order_timeline (order_id, event_id, event_type, service, occurred_at)
                 SELECT order_id, event_id, event_type, service, occurred_at
                 FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[])
                      WITH ORDINALITY AS s(order_id, event_id, event_type, service, occurred_at, n)
                 ORDER BY n
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(t.iter().map(|m| m.correlation_id).collect::<Vec<_>>())
            .bind(t.iter().map(|m| m.event_id).collect::<Vec<_>>())
            .bind(t.iter().map(|m| m.event_type.as_str()).collect::<Vec<_>>())
            .bind(t.iter().map(|m| m.producer.as_str()).collect::<Vec<_>>())
            .bind(t.iter().map(|m| m.occurred_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        if !self.lines.is_empty() {
            let l = &self.lines;
            sqlx::query(
                "UPDATE order_lines l SET unit_price_cents = u.unit, line_total_cents = u.total
                 FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[])
                      AS u(order_id, sku, unit, total)
                 WHERE l.order_id = u.order_id AND l.sku = u.sku",
            )
            .bind(l.keys().map(|(order_id, _)| *order_id).collect::<Vec<_>>())
            .bind(l.keys().map(|(_, sku)| sku.as_str()).collect::<Vec<_>>())
            .bind(l.values().map(|(unit, _)| *unit).collect::<Vec<_>>())
            .bind(l.values().map(|(_, total)| *total).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        if !self.totals.is_empty() {
            let t = &self.totals;
            sqlx::query(
                "UPDATE orders o SET total_cents = u.total, currency = u.currency,
                     updated_at = GREATEST(o.updated_at, u.at)
                 FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[])
                      AS u(id, total, currency, at)
                 WHERE o.id = u.id",
            )
            .bind(t.keys().copied().collect::<Vec<_>>())
            .bind(t.values().map(|(total, ..)| *total).collect::<Vec<_>>())
            .bind(
                t.values()
                    .map(|(_, currency, _)| currency.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(t.values().map(|(.., at)| *at).collect::<Vec<_>>())
            .execute(conn)
            .await?;
        }
        Ok(())
    }
}
