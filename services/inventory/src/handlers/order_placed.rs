//! An order was placed: reserve every line at its catalog price, all or
//! nothing, and announce it with `StockReserved`.

use crate::db::{self, Reserved};
use choreo_events::{EventMeta, OrderPlaced, PricedLine, StockReserved};
use choreo_messaging::{Delivery, HandlerError, outbox};
use sqlx::PgConnection;
use std::collections::BTreeMap;

pub(super) async fn handle(tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
    let order: OrderPlaced = delivery.parse()?;
    // One reservation per order, even if the event's id differed (a replay
    // from another producer instance): the order is the business key.
    if db::reservation_exists(tx, order.order_id).await? {
        tracing::info!(order_id = %order.order_id, "order already has a reservation");
        return Ok(());
    }
    let mut wanted: BTreeMap<&str, i32> = BTreeMap::new();
    for line in &order.lines {
        let quantity = wanted.entry(line.sku.as_str()).or_default();
        *quantity = quantity.saturating_add(line.quantity);
    }
    let skus: Vec<String> = wanted.keys().map(|s| (*s).to_owned()).collect();
    let products = db::lock_products(tx, &skus).await?;

    let mut reserved = Vec::with_capacity(wanted.len());
    for (sku, quantity) in &wanted {
        let Some(product) = products.iter().find(|p| p.sku == *sku) else {
            return Err(rejected(&order, format!("unknown sku {sku}")));
        };
        if product.available < *quantity {
            return Err(rejected(
                &order,
                format!("{sku}: {quantity} wanted, {} available", product.available),
            ));
        }
        reserved.push(Reserved {
            sku,
            quantity: *quantity,
            unit_price_cents: product.price_cents,
        });
    }
    let currency = products
        .first()
        .map_or("EUR", |p| p.currency.as_str())
        .to_owned();
    let overflow = || rejected(&order, "the total does not fit in 64-bit cents".to_owned());
    let mut lines: Vec<PricedLine> = Vec::with_capacity(reserved.len());
    let mut total_cents: i64 = 0;
    for r in &reserved {
        let line_total_cents = r
            .unit_price_cents
            .checked_mul(i64::from(r.quantity))
            .ok_or_else(overflow)?;
        total_cents = total_cents
            .checked_add(line_total_cents)
            .ok_or_else(overflow)?;
        lines.push(PricedLine {
            sku: r.sku.to_owned(),
            quantity: r.quantity,
            unit_price_cents: r.unit_price_cents,
            line_total_cents,
        });
    }

    db::insert_reservation(
        tx,
        order.order_id,
        &order.customer_id,
        total_cents,
        &currency,
        &reserved,
    )
    .await?;
    let event = StockReserved {
        meta: EventMeta::caused_by::<StockReserved>(&order.meta, "inventory"),
        order_id: order.order_id,
        customer_id: order.customer_id.clone(),
        lines,
        total_cents,
        currency,
    };
    outbox::enqueue(tx, &event, delivery.traceparent.as_deref()).await?;
    tracing::info!(order_id = %order.order_id, total_cents, "stock reserved");
    Ok(())
}

/// The order cannot be reserved. Until the compensation branch (issue 3)
/// emits `StockRejected`, the refusal is logged and the order stays PENDING.
fn rejected(order: &OrderPlaced, reason: String) -> HandlerError {
    HandlerError::Permanent {
        reason: format!("order {} cannot be reserved: {reason}", order.order_id),
    }
}
