//! The checks themselves: one read per table, joined in memory by order id
//! or SKU.

use crate::{AuditError, Bounds, Pools, Report, Violation};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

struct Order {
    id: Uuid,
    status: String,
    total_cents: Option<i64>,
    /// Decided (or placed, when PENDING) more than `settle` ago.
    settled: bool,
    /// PENDING past the deadline plus grace.
    overdue: bool,
}

fn violation(
    invariant: &'static str,
    order_id: Option<Uuid>,
    sku: Option<&str>,
    detail: String,
) -> Violation {
    Violation {
        invariant,
        order_id,
        sku: sku.map(str::to_owned),
        detail,
    }
}

pub(crate) async fn run(pools: &Pools, bounds: Bounds) -> Result<Report, AuditError> {
    let mut report = Report::default();
    let orders = orders(&pools.order, bounds).await?;
    report.orders = orders.len();
    outcomes(&pools.order, &orders, &mut report).await?;
    stock(&pools.inventory, &orders, &mut report).await?;
    let kept = money(&pools.payment, &orders, &mut report).await?;
    if let Some(provider) = &pools.provider {
        reconcile(provider, &orders, &kept, &mut report).await?;
    }
    shipments(&pools.shipping, &orders, &mut report).await?;
    for (service, pool) in [
        ("order", &pools.order),
        ("inventory", &pools.inventory),
        ("payment", &pools.payment),
        ("shipping", &pools.shipping),
    ] {
        outbox(service, pool, bounds, &mut report).await?;
    }
    Ok(report)
}

async fn orders(pool: &PgPool, bounds: Bounds) -> Result<Vec<Order>, AuditError> {
    let read = |source| AuditError::Read {
        service: "order",
        source,
    };
    let rows: Vec<(Uuid, String, Option<i64>, bool, bool)> = sqlx::query_as(
        "SELECT id, status, total_cents,
                updated_at < now() - make_interval(secs => $1),
                status = 'PENDING' AND created_at < now() - make_interval(secs => $2)
         FROM orders",
    )
    .bind(bounds.settle.as_secs_f64())
    .bind((bounds.deadline + bounds.grace).as_secs_f64())
    .fetch_all(pool)
    .await
    .map_err(read)?;
    Ok(rows
        .into_iter()
        .map(|(id, status, total_cents, settled, overdue)| Order {
            id,
            status,
            total_cents,
            settled,
            overdue,
        })
        .collect())
}

/// Every order past its deadline is decided, and decided one way only.
async fn outcomes(pool: &PgPool, orders: &[Order], report: &mut Report) -> Result<(), AuditError> {
    for order in orders.iter().filter(|o| o.overdue) {
        report.violations.push(violation(
            "order-outcome",
            Some(order.id),
            None,
            "still PENDING after the saga deadline and grace period".into(),
        ));
    }
    let outcomes: Vec<(Uuid, Vec<String>)> = sqlx::query_as(
        "SELECT order_id, array_agg(event_type ORDER BY seq) FROM order_timeline
         WHERE event_type IN ('OrderConfirmed', 'OrderCancelled') GROUP BY order_id",
    )
    .fetch_all(pool)
    .await
    .map_err(|source| AuditError::Read {
        service: "order",
        source,
    })?;
    let status: HashMap<Uuid, &str> = orders.iter().map(|o| (o.id, o.status.as_str())).collect();
    for (order_id, events) in outcomes {
        let expected = match status.get(&order_id) {
            Some(&"CONFIRMED") => "OrderConfirmed",
            Some(&"CANCELLED") => "OrderCancelled",
            _ => "",
        };
        if events.len() != 1 || events[0] != expected {
            report.violations.push(violation(
                "order-outcome",
                Some(order_id),
                None,
                format!(
                    "status {} but outcome events {events:?}",
                    status.get(&order_id).copied().unwrap_or("unknown")
                ),
            ));
        }
    }
    Ok(())
}

/// Stock is conserved per SKU and a decided order holds no reservation.
async fn stock(pool: &PgPool, orders: &[Order], report: &mut Report) -> Result<(), AuditError> {
    let read = |source| AuditError::Read {
        service: "inventory",
        source,
    };
    let products: Vec<(String, i32, i32, i32, i32)> = sqlx::query_as(
        "SELECT sku, available, reserved, shipped, stocked_total FROM products ORDER BY sku",
    )
    .fetch_all(pool)
    .await
    .map_err(read)?;
    let held: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT l.sku, r.status, sum(l.quantity)::BIGINT FROM reservation_lines l
         JOIN reservations r USING (order_id) GROUP BY l.sku, r.status",
    )
    .fetch_all(pool)
    .await
    .map_err(read)?;
    let held_as = |sku: &str, status: &str| -> i64 {
        held.iter()
            .filter(|(s, st, _)| s == sku && st == status)
            .map(|(_, _, q)| *q)
            .sum()
    };
    report.skus = products.len();
    for (sku, available, reserved, shipped, stocked) in &products {
        let mut problem = |detail: String| {
            report
                .violations
                .push(violation("stock", None, Some(sku), detail))
        };
        if *available < 0 || *reserved < 0 || *shipped < 0 {
            problem(format!(
                "negative stock: available {available}, reserved {reserved}, shipped {shipped}"
            ));
        }
        let sum = i64::from(*available) + i64::from(*reserved) + i64::from(*shipped);
        if sum != i64::from(*stocked) {
            problem(format!(
                "available {available} + reserved {reserved} + shipped {shipped} = {sum}, but {stocked} were stocked"
            ));
        }
        if i64::from(*reserved) != held_as(sku, "RESERVED") {
            problem(format!(
                "reserved is {reserved} but active reservations hold {}",
                held_as(sku, "RESERVED")
            ));
        }
        if i64::from(*shipped) != held_as(sku, "SHIPPED") {
            problem(format!(
                "shipped is {shipped} but shipped reservations hold {}",
                held_as(sku, "SHIPPED")
            ));
        }
    }
    let reservations: HashMap<Uuid, String> =
        sqlx::query_as::<_, (Uuid, String)>("SELECT order_id, status FROM reservations")
            .fetch_all(pool)
            .await
            .map_err(read)?
            .into_iter()
            .collect();
    for order in orders.iter().filter(|o| o.settled && o.status != "PENDING") {
        let status = reservations.get(&order.id).map(String::as_str);
        let fine = match order.status.as_str() {
            "CONFIRMED" => status == Some("SHIPPED"),
            _ => status != Some("RESERVED") && status != Some("SHIPPED"),
        };
        if !fine {
            report.violations.push(violation(
                "stock",
                Some(order.id),
                None,
                format!(
                    "order is {} but its reservation is {}",
                    order.status,
                    status.unwrap_or("missing")
                ),
            ));
        }
    }
    Ok(())
}

/// Charged − refunded is the total for a confirmed order and 0 otherwise.
/// Returns what the payment service kept, per order it has a row for.
async fn money(
    pool: &PgPool,
    orders: &[Order],
    report: &mut Report,
) -> Result<HashMap<Uuid, i64>, AuditError> {
    let payments: HashMap<Uuid, (i64, i64)> = sqlx::query_as::<_, (Uuid, i64, i64)>(
        "SELECT order_id, charged_cents, refunded_cents FROM payments",
    )
    .fetch_all(pool)
    .await
    .map_err(|source| AuditError::Read {
        service: "payment",
        source,
    })?
    .into_iter()
    .map(|(id, charged, refunded)| (id, (charged, refunded)))
    .collect();
    for order in orders.iter().filter(|o| o.settled && o.status != "PENDING") {
        let (charged, refunded) = payments.get(&order.id).copied().unwrap_or((0, 0));
        let kept = charged - refunded;
        let expected = match order.status.as_str() {
            "CONFIRMED" => order.total_cents.unwrap_or(0),
            _ => 0,
        };
        if kept != expected {
            report.violations.push(violation(
                "money",
                Some(order.id),
                None,
                format!(
                    "order is {} with total {}, but charged {charged} − refunded {refunded} = {kept}",
                    order.status,
                    order.total_cents.map_or("unknown".into(), |t| t.to_string())
                ),
            ));
        }
    }
    Ok(payments
        .into_iter()
        .map(|(id, (charged, refunded))| (id, charged - refunded))
        .collect())
}

/// What the provider kept for each decided order is what the payment
/// service kept: one net charge, made once, undone once. The two databases
/// are read one after the other, so a refund landing in between shows once
/// as a violation; run again (as the chaos runner does) before believing
/// one that `money` does not also report.
async fn reconcile(
    pool: &PgPool,
    orders: &[Order],
    kept: &HashMap<Uuid, i64>,
    report: &mut Report,
) -> Result<(), AuditError> {
    let ledger: HashMap<Uuid, (i64, i64, i64)> = sqlx::query_as::<_, (Uuid, i64, i64, i64)>(
        "SELECT order_id, sum(captured_cents)::BIGINT, sum(refunded_cents)::BIGINT, count(*)
         FROM charges GROUP BY order_id",
    )
    .fetch_all(pool)
    .await
    .map_err(|source| AuditError::Read {
        service: "provider",
        source,
    })?
    .into_iter()
    .map(|(id, captured, refunded, charges)| (id, (captured, refunded, charges)))
    .collect();
    for order in orders.iter().filter(|o| o.settled && o.status != "PENDING") {
        let ours = kept.get(&order.id).copied().unwrap_or(0);
        let (captured, refunded, charges) = ledger.get(&order.id).copied().unwrap_or((0, 0, 0));
        if captured - refunded != ours {
            report.violations.push(violation(
                "provider",
                Some(order.id),
                None,
                format!(
                    "the provider kept {} (captured {captured} − refunded {refunded}, over {charges} charges) but payment kept {ours}",
                    captured - refunded
                ),
            ));
        }
    }
    Ok(())
}

/// A confirmed order ships exactly once; a cancelled one not at all.
async fn shipments(pool: &PgPool, orders: &[Order], report: &mut Report) -> Result<(), AuditError> {
    let live: HashSet<Uuid> =
        sqlx::query_scalar("SELECT order_id FROM shipments WHERE status = 'SCHEDULED'")
            .fetch_all(pool)
            .await
            .map_err(|source| AuditError::Read {
                service: "shipping",
                source,
            })?
            .into_iter()
            .collect();
    for order in orders.iter().filter(|o| o.settled && o.status != "PENDING") {
        let ships = live.contains(&order.id);
        match (order.status.as_str(), ships) {
            ("CONFIRMED", false) => report.violations.push(violation(
                "shipment",
                Some(order.id),
                None,
                "order is CONFIRMED but has no scheduled shipment".into(),
            )),
            ("CANCELLED", true) => report.violations.push(violation(
                "shipment",
                Some(order.id),
                None,
                "order is CANCELLED but its shipment is still scheduled".into(),
            )),
            _ => {}
        }
    }
    Ok(())
}

/// Every outbox row older than the bound has been published.
async fn outbox(
    service: &'static str,
    pool: &PgPool,
    bounds: Bounds,
    report: &mut Report,
) -> Result<(), AuditError> {
    let stuck: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, message_key, record_name FROM outbox
         WHERE published_at IS NULL AND created_at < now() - make_interval(secs => $1) ORDER BY id",
    )
    .bind(bounds.outbox.as_secs_f64())
    .fetch_all(pool)
    .await
    .map_err(|source| AuditError::Read { service, source })?;
    for (id, key, record) in stuck {
        report.violations.push(violation(
            "outbox",
            Uuid::parse_str(&key).ok(),
            None,
            format!(
                "{service} outbox row {id} ({record}) is unpublished past {:?}",
                bounds.outbox
            ),
        ));
    }
    Ok(())
}
