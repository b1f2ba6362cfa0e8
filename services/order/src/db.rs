//! The order service's tables: orders, their lines and their timeline.

pub use choreo_contract::order::{Line, Order, OrderStatus, OrderSummary, TimelineEntry};
use choreo_events::{EventMeta, OrderPlaced, PricedLine};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

/// Which orders a list shows, and from where.
pub(crate) struct ListFilter<'a> {
    pub(crate) customer: Option<&'a str>,
    pub(crate) status: Option<OrderStatus>,
    /// The last order of the previous page: `(created_at, id)`.
    pub(crate) after: Option<(DateTime<Utc>, Uuid)>,
    pub(crate) limit: i64,
}

/// Orders newest first (ties by id), at most `filter.limit` of them.
pub(crate) async fn list_orders(
    conn: &mut PgConnection,
    filter: &ListFilter<'_>,
) -> Result<Vec<OrderSummary>, sqlx::Error> {
    let (after_time, after_id) = filter.after.unzip();
    let rows = sqlx::query(
        "SELECT id, customer_id, status, cancel_reason, total_cents, currency, created_at, updated_at
         FROM orders
         WHERE ($1::text IS NULL OR customer_id = $1)
           AND ($2::text IS NULL OR status = $2)
           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
         ORDER BY created_at DESC, id DESC
         LIMIT $5",
    )
    .bind(filter.customer)
    .bind(filter.status.map(OrderStatus::as_str))
    .bind(after_time)
    .bind(after_id)
    .bind(filter.limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            let status: String = row.try_get("status")?;
            Ok(OrderSummary {
                id: row.try_get("id")?,
                customer_id: row.try_get("customer_id")?,
                status: OrderStatus::parse(&status).ok_or_else(|| {
                    sqlx::Error::Decode(format!("unknown order status {status}").into())
                })?,
                cancel_reason: row.try_get("cancel_reason")?,
                total_cents: row.try_get("total_cents")?,
                currency: row.try_get("currency")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
}

/// Inserts a new PENDING order and its lines, as its `OrderPlaced` tells
/// them. It was created when the event occurred: an order re-inserted from
/// its event after a restore keeps its place in lists and its deadline.
pub(crate) async fn insert_order(
    conn: &mut PgConnection,
    placed: &OrderPlaced,
) -> Result<(), sqlx::Error> {
    let address = serde_json::to_value(&placed.shipping_address)
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO orders (id, customer_id, status, shipping_address, created_at, updated_at, traceparent)
         VALUES ($1, $2, 'PENDING', $3, $4, $4, $5)",
    )
    .bind(placed.order_id)
    .bind(&placed.customer_id)
    .bind(address)
    .bind(placed.meta.occurred_at)
    .bind(choreo_telemetry::current_traceparent())
    .execute(&mut *conn)
    .await?;
    for (line_no, line) in placed.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO order_lines (order_id, line_no, sku, quantity) VALUES ($1, $2, $3, $4)",
        )
        .bind(placed.order_id)
        .bind(line_no as i32)
        .bind(&line.sku)
        .bind(line.quantity)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The order's status, locked for the rest of the transaction so that two
/// events about one order cannot interleave their decisions.
pub(crate) async fn lock_status(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<OrderStatus>, sqlx::Error> {
    let row = sqlx::query("SELECT status FROM orders WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.and_then(|r| OrderStatus::parse(r.get::<&str, _>("status"))))
}

/// The customer an order belongs to, if the order exists.
pub(crate) async fn customer_of(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT customer_id FROM orders WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Moves the order to `status` as of `at` (the `OrderConfirmed`'s time).
///
/// Every change to an order is stamped with the time of the event that
/// tells of it, never the clock's, so that a replay after a restore writes
/// the very same row; `updated_at` is the latest change's, whatever order a
/// replay applies them in (they come from several topics).
///
/// Returns the order's age in seconds by the database's clock (the one the
/// deadline sweeper uses): the saga's duration, when this decides it.
pub(crate) async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: OrderStatus,
    at: DateTime<Utc>,
) -> Result<f64, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE orders SET status = $2, updated_at = GREATEST(updated_at, $3) WHERE id = $1
         RETURNING EXTRACT(EPOCH FROM now() - created_at)::float8",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(at)
    .fetch_one(conn)
    .await
}

/// Records inventory's prices on the order's lines and its total, as of
/// `at` (the `StockReserved`'s time).
pub(crate) async fn set_prices(
    conn: &mut PgConnection,
    id: Uuid,
    lines: &[PricedLine],
    total_cents: i64,
    currency: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    for line in lines {
        sqlx::query(
            "UPDATE order_lines SET unit_price_cents = $3, line_total_cents = $4
             WHERE order_id = $1 AND sku = $2",
        )
        .bind(id)
        .bind(&line.sku)
        .bind(line.unit_price_cents)
        .bind(line.line_total_cents)
        .execute(&mut *conn)
        .await?;
    }
    set_total(conn, id, total_cents, currency, at).await
}

/// Records the order's total, as of `at`.
pub(crate) async fn set_total(
    conn: &mut PgConnection,
    id: Uuid,
    total_cents: i64,
    currency: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET total_cents = $2, currency = $3, updated_at = GREATEST(updated_at, $4)
         WHERE id = $1",
    )
    .bind(id)
    .bind(total_cents)
    .bind(currency)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends an event to the order's timeline (once, whatever the redelivery).
pub(crate) async fn append_timeline(
    conn: &mut PgConnection,
    meta: &EventMeta,
) -> Result<(), sqlx::Error> {
    insert_step(conn, "order_timeline", meta).await
}

/// Inserts the timeline row of `meta` into `table` (`order_timeline`, or a
/// table of the same columns), once per event id.
pub(crate) async fn insert_step(
    conn: &mut PgConnection,
    table: &'static str,
    meta: &EventMeta,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO {table} (order_id, event_id, event_type, service, occurred_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING"
    ))
    .bind(meta.correlation_id)
    .bind(meta.event_id)
    .bind(&meta.event_type)
    .bind(&meta.producer)
    .bind(meta.occurred_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Reads the order with its lines and timeline.
pub(crate) async fn fetch_order(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Order>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT id, customer_id, status, cancel_reason, cancel_detail, shipping_address, total_cents, currency,
                created_at, updated_at
         FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let status: String = row.try_get("status")?;
    let status = OrderStatus::parse(&status)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown order status {status}").into()))?;
    let address: serde_json::Value = row.try_get("shipping_address")?;
    let shipping_address =
        serde_json::from_value(address).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let lines = sqlx::query(
        "SELECT sku, quantity, unit_price_cents, line_total_cents FROM order_lines
         WHERE order_id = $1 ORDER BY line_no",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| {
        Ok(Line {
            sku: r.try_get("sku")?,
            quantity: r.try_get("quantity")?,
            unit_price_cents: r.try_get("unit_price_cents")?,
            line_total_cents: r.try_get("line_total_cents")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let timeline = sqlx::query(
        "SELECT event_type, service, occurred_at, event_id FROM order_timeline
         WHERE order_id = $1 ORDER BY occurred_at, seq",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| {
        Ok(TimelineEntry {
            event_type: r.try_get("event_type")?,
            service: r.try_get("service")?,
            occurred_at: r.try_get("occurred_at")?,
            event_id: r.try_get("event_id")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some(Order {
        id: row.try_get("id")?,
        customer_id: row.try_get("customer_id")?,
        status,
        cancel_reason: row.try_get("cancel_reason")?,
        cancel_detail: row.try_get("cancel_detail")?,
        lines,
        total_cents: row.try_get("total_cents")?,
        currency: row.try_get("currency")?,
        shipping_address,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        timeline,
    }))
}

/// The order's total and currency, once inventory has priced it.
pub(crate) async fn total(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    let row = sqlx::query("SELECT total_cents, currency FROM orders WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let total: Option<i64> = row.try_get("total_cents")?;
    let currency: Option<String> = row.try_get("currency")?;
    Ok(total.zip(currency))
}

/// The id of the order's event of this type, if the order has seen one.
pub(crate) async fn timeline_event(
    conn: &mut PgConnection,
    id: Uuid,
    event_type: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT event_id FROM order_timeline WHERE order_id = $1 AND event_type = $2 LIMIT 1",
    )
    .bind(id)
    .bind(event_type)
    .fetch_optional(conn)
    .await
}

/// Marks the order CANCELLED with its reason, as of `at` (the
/// `OrderCancelled`'s time).
///
/// Returns the order's age in seconds, as [`set_status`] does.
pub(crate) async fn set_cancelled(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
    detail: &str,
    at: DateTime<Utc>,
) -> Result<f64, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE orders SET status = 'CANCELLED', cancel_reason = $2, cancel_detail = $3,
             updated_at = GREATEST(updated_at, $4)
         WHERE id = $1
         RETURNING EXTRACT(EPOCH FROM now() - created_at)::float8",
    )
    .bind(id)
    .bind(reason)
    .bind(detail)
    .bind(at)
    .fetch_one(conn)
    .await
}

/// Up to `limit` PENDING orders older than `deadline_seconds`, locked, with
/// the trace each was placed in; ones another transaction holds are skipped
/// (it is deciding them).
/// How many orders are PENDING, and the oldest one's age in seconds (0
/// when none is).
pub(crate) async fn pending_sagas(pool: &PgPool) -> Result<(i64, f64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at))::float8, 0)
         FROM orders WHERE status = 'PENDING'",
    )
    .fetch_one(pool)
    .await
}

pub(crate) async fn lock_overdue(
    conn: &mut PgConnection,
    deadline_seconds: f64,
    limit: i64,
) -> Result<Vec<(Uuid, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, traceparent FROM orders WHERE status = 'PENDING' AND created_at < now() - make_interval(secs => $1)
         ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(deadline_seconds)
    .bind(limit)
    .fetch_all(conn)
    .await
}
