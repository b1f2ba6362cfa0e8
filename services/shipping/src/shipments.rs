//! The shipments a run of events reads and writes: locked at its start with
//! one statement, changed in memory by the handlers one event after
//! another, and written back at its end with at most two. A replay applies
//! a partition's batch this way with about as many statements as one event
//! took alone; a single event goes the same way, so there is one set of
//! rules.
//!
//! Shipping publishes nothing a replay re-applies: after a restore it
//! re-derives its rows from its inputs. So its rows take their inputs'
//! times, never the clock's (a shipment is created and scheduled as of the
//! event it answers), and a re-derived row is the very row that was lost.

use choreo_events::ShippingAddress;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::collections::HashMap;
use uuid::Uuid;

/// Where a shipment stands: the `shipments.status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Known, not yet paid (or paid, for an instant, before it is decided).
    Waiting,
    Scheduled,
    /// The destination is not served; nothing was scheduled.
    Failed,
    /// The order was cancelled; nothing will be scheduled.
    Cancelled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "WAITING",
            Status::Scheduled => "SCHEDULED",
            Status::Failed => "FAILED",
            Status::Cancelled => "CANCELLED",
        }
    }

    fn parse(text: &str) -> Result<Self, sqlx::Error> {
        Ok(match text {
            "WAITING" => Status::Waiting,
            "SCHEDULED" => Status::Scheduled,
            "FAILED" => Status::Failed,
            "CANCELLED" => Status::Cancelled,
            other => {
                return Err(sqlx::Error::Decode(
                    format!("unknown shipment status {other:?}").into(),
                ));
            }
        })
    }
}

/// What the row in the database is, against the run's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// No row yet: the run made it.
    Absent,
    Same,
    Changed,
}

/// One order's shipment as the run sees it.
#[derive(Debug)]
pub(crate) struct Shipment {
    pub(crate) shipment_id: Uuid,
    pub(crate) status: Status,
    /// Where it goes, from the address's country.
    pub(crate) country: Option<String>,
    address: Option<serde_json::Value>,
    paid: bool,
    created_at: DateTime<Utc>,
    scheduled_at: Option<DateTime<Utc>>,
    stored: Stored,
}

/// The shipment's id derives from its order, so re-deriving it after a
/// restore yields the same id.
fn shipment_id(order_id: Uuid) -> Uuid {
    Uuid::new_v5(&order_id, b"shipment")
}

/// The shipments of a run of events, locked in its transaction.
#[derive(Debug, Default)]
pub(crate) struct Shipments {
    rows: HashMap<Uuid, Shipment>,
}

type Row = (
    Uuid,
    Uuid,
    String,
    Option<String>,
    Option<serde_json::Value>,
    bool,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

impl Shipments {
    /// Locks the shipments of `orders` that exist, in key order so that two
    /// runs cannot deadlock. One a run makes is written at its end; should
    /// another consumer make the same row meanwhile (shipping reads two
    /// topics, which two replicas may hold), the insert fails and the run
    /// is applied again one event at a time.
    pub(crate) async fn lock(
        conn: &mut PgConnection,
        mut orders: Vec<Uuid>,
    ) -> Result<Self, sqlx::Error> {
        orders.sort_unstable();
        orders.dedup();
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT order_id, shipment_id, status, country, shipping_address, paid, created_at,
                    scheduled_at
             FROM shipments WHERE order_id = ANY($1) ORDER BY order_id FOR UPDATE",
        )
        .bind(&orders)
        .fetch_all(conn)
        .await?;
        let mut shipments = Shipments::default();
        for (order_id, shipment_id, status, country, address, paid, created_at, scheduled_at) in
            rows
        {
            let shipment = Shipment {
                shipment_id,
                status: Status::parse(&status)?,
                country,
                address,
                paid,
                created_at,
                scheduled_at,
                stored: Stored::Same,
            };
            shipments.rows.insert(order_id, shipment);
        }
        Ok(shipments)
    }

    /// The order's shipment, made as of `at` in `status` if shipping has not
    /// heard of the order.
    fn get_or_make(&mut self, order_id: Uuid, status: Status, at: DateTime<Utc>) -> &mut Shipment {
        self.rows.entry(order_id).or_insert_with(|| Shipment {
            shipment_id: shipment_id(order_id),
            status,
            country: None,
            address: None,
            paid: false,
            created_at: at,
            scheduled_at: None,
            stored: Stored::Absent,
        })
    }

    /// Records that the order is paid and where it ships to, making the
    /// shipment (waiting, as of `at`) if needed. Without an address the one
    /// already stored stays: a row a shipping service older than the
    /// carried address filled from `OrderPlaced`.
    pub(crate) fn record_paid(
        &mut self,
        order_id: Uuid,
        address: Option<&ShippingAddress>,
        at: DateTime<Utc>,
    ) -> Result<&Shipment, sqlx::Error> {
        let json = address
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let shipment = self.get_or_make(order_id, Status::Waiting, at);
        shipment.paid = true;
        if let Some(address) = address {
            shipment.country = Some(address.country.clone());
            shipment.address = json;
        }
        shipment.changed();
        Ok(shipment)
    }

    /// Moves the shipment to `status`; `Scheduled` also stamps
    /// `scheduled_at` with `at`, the time of the payment it answers.
    pub(crate) fn set_status(&mut self, order_id: Uuid, status: Status, at: DateTime<Utc>) {
        if let Some(shipment) = self.rows.get_mut(&order_id) {
            shipment.status = status;
            if status == Status::Scheduled {
                shipment.scheduled_at = Some(at);
            }
            shipment.changed();
        }
    }

    /// The order's shipment; made as cancelled (as of `at`) if shipping
    /// never heard of the order, so that nothing is scheduled for it later.
    pub(crate) fn get_or_tombstone(&mut self, order_id: Uuid, at: DateTime<Utc>) -> &Shipment {
        self.get_or_make(order_id, Status::Cancelled, at)
    }

    /// Writes what the run made and changed, with one statement each.
    pub(crate) async fn save(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let (mut made, mut changed) = (Columns::default(), Columns::default());
        for (order_id, shipment) in self.rows {
            match shipment.stored {
                Stored::Absent => made.push(order_id, shipment),
                Stored::Changed => changed.push(order_id, shipment),
                Stored::Same => {}
            }
        }
        if !made.order_id.is_empty() {
            sqlx::query(
                "INSERT INTO shipments (order_id, shipment_id, status, country, shipping_address,
                     paid, created_at, scheduled_at)
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[],
                     $6::bool[], $7::timestamptz[], $8::timestamptz[])",
            )
            .bind(&made.order_id)
            .bind(&made.shipment_id)
            .bind(&made.status)
            .bind(&made.country)
            .bind(&made.address)
            .bind(&made.paid)
            .bind(&made.created_at)
            .bind(&made.scheduled_at)
            .execute(&mut *conn)
            .await?;
        }
        if !changed.order_id.is_empty() {
            // The rows are locked since `lock`: the run's copy is the row.
            sqlx::query(
                "UPDATE shipments s SET status = u.status, country = u.country,
                     shipping_address = u.address, paid = u.paid, scheduled_at = u.scheduled_at
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bool[],
                     $6::timestamptz[]) AS u(order_id, status, country, address, paid, scheduled_at)
                 WHERE s.order_id = u.order_id",
            )
            .bind(&changed.order_id)
            .bind(&changed.status)
            .bind(&changed.country)
            .bind(&changed.address)
            .bind(&changed.paid)
            .bind(&changed.scheduled_at)
            .execute(conn)
            .await?;
        }
        Ok(())
    }
}

impl Shipment {
    /// Marks a stored row to be written back; one the run made is written
    /// whole anyway.
    fn changed(&mut self) {
        if self.stored == Stored::Same {
            self.stored = Stored::Changed;
        }
    }
}

/// Rows to write, column by column.
#[derive(Default)]
struct Columns {
    order_id: Vec<Uuid>,
    shipment_id: Vec<Uuid>,
    status: Vec<&'static str>,
    country: Vec<Option<String>>,
    address: Vec<Option<serde_json::Value>>,
    paid: Vec<bool>,
    created_at: Vec<DateTime<Utc>>,
    scheduled_at: Vec<Option<DateTime<Utc>>>,
}

impl Columns {
    fn push(&mut self, order_id: Uuid, shipment: Shipment) {
        self.order_id.push(order_id);
        self.shipment_id.push(shipment.shipment_id);
        self.status.push(shipment.status.as_str());
        self.country.push(shipment.country);
        self.address.push(shipment.address);
        self.paid.push(shipment.paid);
        self.created_at.push(shipment.created_at);
        self.scheduled_at.push(shipment.scheduled_at);
    }
}
