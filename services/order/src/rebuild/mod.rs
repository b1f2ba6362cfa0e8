//! Rebuilding the order timeline, the saga's steps `GET /v1/orders/{id}`
//! shows, from the topics alone: after a bad deploy recorded steps wrongly,
//! or someone deleted rows by hand.
//!
//! Every step is an event on a topic: the order's own (`order.events`) and
//! the ones the service follows. The rebuild collects every step read from
//! the topics in a table of its own session, then compares it with the
//! timeline and, unless it is a dry run, swaps the one for the other in one
//! short transaction: readers see the old timeline until the commit, an
//! interrupted rebuild changes nothing, and a dry run takes no lock and
//! writes nothing the service sees.
//!
//! An order is rebuilt only when the topics hold its whole saga: its
//! `OrderPlaced` was read (so the topic's retention has not dropped its
//! beginning) and none of its own events still waits in the outbox (the
//! relay has published every step it recorded). Every other order keeps
//! its timeline as it is, and is counted. Only the timeline is rebuilt: an
//! order the database does not hold is listed, not created (that is a
//! replay's work, `choreo replay --service order`).

pub(crate) mod command;

use crate::db;
use choreo_events::Record;
use choreo_messaging::Delivery;
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Whether a timeline shows `record`: every saga event, the service's own,
/// which it records as it publishes them (`api`, `saga`), and every one its
/// handlers record; not the catalog's and wallets' changes.
pub(crate) fn is_step(record: Record) -> bool {
    match record {
        Record::ProductSet | Record::WalletSet => false,
        Record::OrderPlaced
        | Record::OrderConfirmed
        | Record::OrderCancelled
        | Record::StockReserved
        | Record::StockRejected
        | Record::StockReleased
        | Record::PaymentCompleted
        | Record::PaymentFailed
        | Record::PaymentRefunded
        | Record::ShipmentScheduled
        | Record::ShipmentFailed
        | Record::ShipmentCancelled => true,
    }
}

/// The topics a rebuild reads: the service's own and its inputs.
pub fn topics() -> Vec<choreo_events::Topic> {
    std::iter::once(choreo_events::choreography::ORDER.publishes)
        .chain(choreo_events::choreography::ORDER.inputs.iter().copied())
        .collect()
}

/// What a rebuild found and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rebuilt {
    /// Steps read from the topics (copies of one event count once each).
    pub steps_read: u64,
    /// Timeline entries before and after.
    pub entries_before: i64,
    pub entries_after: i64,
    /// Orders whose timeline was rebuilt: their whole saga is on the topics.
    pub orders_rebuilt: i64,
    /// Orders left as they were: the topics no longer hold their
    /// `OrderPlaced`, or some of their events still wait in the outbox.
    pub orders_kept: i64,
    /// Entries the old timeline lacked, and entries it had that no topic
    /// holds (a step recorded wrongly counts in both).
    pub added: i64,
    pub removed: i64,
    /// Orders whose timeline is not what it was.
    pub orders_changed: i64,
    /// Orders the topics tell of that this database does not hold.
    pub orders_missing: Vec<Uuid>,
    /// Whether the rebuilt timeline replaced the old one (`false`: a dry
    /// run, rolled back).
    pub committed: bool,
}

/// A rebuild under way; nothing is visible outside it until
/// [`TimelineRebuild::finish`] commits.
pub struct TimelineRebuild {
    tx: Transaction<'static, Postgres>,
    steps_read: u64,
    missing: BTreeSet<Uuid>,
}

impl TimelineRebuild {
    /// Starts the rebuild: a table of its own for the steps read, and one
    /// for the orders whose placement was read.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn begin(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "CREATE TEMPORARY TABLE timeline_read (
                 order_id UUID NOT NULL, event_id UUID PRIMARY KEY, event_type TEXT NOT NULL,
                 service TEXT NOT NULL, occurred_at TIMESTAMPTZ NOT NULL
             ) ON COMMIT DROP",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "CREATE TEMPORARY TABLE placed_read (order_id UUID PRIMARY KEY) ON COMMIT DROP",
        )
        .execute(&mut *tx)
        .await?;
        Ok(Self {
            tx,
            steps_read: 0,
            missing: BTreeSet::new(),
        })
    }

    /// Takes `delivery` as a step of its order, if it is a step of an order
    /// this database holds; anything else is passed over.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn add(&mut self, delivery: &Delivery) -> Result<(), sqlx::Error> {
        let Some(record) = delivery.message.record().filter(|r| is_step(*r)) else {
            return Ok(());
        };
        self.steps_read += 1;
        let meta = delivery.message.meta();
        if db::customer_of(&mut self.tx, meta.correlation_id)
            .await?
            .is_none()
        {
            self.missing.insert(meta.correlation_id);
            return Ok(());
        }
        db::insert_step(&mut self.tx, "timeline_read", meta).await?;
        if record == Record::OrderPlaced {
            sqlx::query("INSERT INTO placed_read (order_id) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(meta.correlation_id)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Compares the steps read with the timeline of every order whose saga
    /// the topics hold whole, then with `commit` replaces those orders'
    /// timelines (the table locked against writers for that moment), or
    /// without it rolls everything back.
    ///
    /// # Errors
    /// When the database fails; then nothing changed.
    pub async fn finish(mut self, commit: bool) -> Result<Rebuilt, sqlx::Error> {
        sqlx::query(
            "CREATE TEMPORARY TABLE rebuilt_orders ON COMMIT DROP AS
             SELECT order_id FROM placed_read p
             WHERE NOT EXISTS (
                 SELECT 1 FROM outbox o
                 WHERE o.message_key = p.order_id::text AND o.published_at IS NULL)",
        )
        .execute(&mut *self.tx)
        .await?;
        let (orders_rebuilt, orders_kept, entries_before, added, removed, orders_changed): (
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = sqlx::query_as(
            "WITH was AS (
                 SELECT order_id, event_id, event_type, service, occurred_at FROM order_timeline
                 WHERE order_id IN (SELECT order_id FROM rebuilt_orders)),
             now_is AS (
                 SELECT order_id, event_id, event_type, service, occurred_at FROM timeline_read
                 WHERE order_id IN (SELECT order_id FROM rebuilt_orders)),
             added AS (SELECT * FROM now_is EXCEPT SELECT * FROM was),
             removed AS (SELECT * FROM was EXCEPT SELECT * FROM now_is)
             SELECT (SELECT count(*) FROM rebuilt_orders),
                    (SELECT count(*) FROM orders
                     WHERE id NOT IN (SELECT order_id FROM rebuilt_orders)),
                    (SELECT count(*) FROM order_timeline),
                    (SELECT count(*) FROM added),
                    (SELECT count(*) FROM removed),
                    (SELECT count(DISTINCT order_id)
                     FROM (SELECT order_id FROM added UNION ALL SELECT order_id FROM removed) c)",
        )
        .fetch_one(&mut *self.tx)
        .await?;
        let mut entries_after = entries_before + added - removed;
        if commit {
            // A consumer that runs after all waits here rather than records
            // a step between the delete and the insert.
            sqlx::query("LOCK TABLE order_timeline IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *self.tx)
                .await?;
            sqlx::query(
                "DELETE FROM order_timeline WHERE order_id IN (SELECT order_id FROM rebuilt_orders)",
            )
            .execute(&mut *self.tx)
            .await?;
            sqlx::query(
                "INSERT INTO order_timeline (order_id, event_id, event_type, service, occurred_at)
                 SELECT order_id, event_id, event_type, service, occurred_at FROM timeline_read
                 WHERE order_id IN (SELECT order_id FROM rebuilt_orders)
                 ORDER BY occurred_at, event_id
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .execute(&mut *self.tx)
            .await?;
            entries_after = sqlx::query_scalar("SELECT count(*) FROM order_timeline")
                .fetch_one(&mut *self.tx)
                .await?;
            self.tx.commit().await?;
        } else {
            self.tx.rollback().await?;
        }
        Ok(Rebuilt {
            steps_read: self.steps_read,
            entries_before,
            entries_after,
            orders_rebuilt,
            orders_kept,
            added,
            removed,
            orders_changed,
            orders_missing: self.missing.into_iter().collect(),
            committed: commit,
        })
    }
}
