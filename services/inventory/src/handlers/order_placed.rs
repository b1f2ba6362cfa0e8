//! An order was placed: reserve every line at its catalog price, all or
//! nothing. `StockReserved` when every line fits, `StockRejected` (which SKUs,
//! how many were free) when one does not; then nothing is reserved.

use crate::db::{self, Reserved};
use choreo_events::{
    EventMeta, OrderPlaced, PricedLine, StockRejected, StockReserved, StockShortage,
};
use choreo_messaging::{HandlerError, outbox};
use sqlx::PgConnection;
use std::collections::BTreeMap;

#[tracing::instrument(skip_all, fields(order_id = tracing::field::Empty), err)]
pub(super) async fn handle(tx: &mut PgConnection, order: OrderPlaced) -> Result<(), HandlerError> {
    tracing::Span::current().record("order_id", tracing::field::display(order.order_id));
    // One decision per order, even if the event's id differed (a replay from
    // another producer instance): the order is the business key.
    if let Some(status) = db::lock_reservation(tx, order.order_id).await? {
        tracing::info!(order_id = %order.order_id, %status, "order already handled");
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
    let mut shortages = Vec::new();
    let mut unknown = false;
    for (sku, quantity) in &wanted {
        match products.iter().find(|p| p.sku == *sku) {
            None => {
                unknown = true;
                shortages.push(StockShortage {
                    sku: (*sku).to_owned(),
                    requested: *quantity,
                    available: 0,
                });
            }
            Some(p) if p.available < *quantity => shortages.push(StockShortage {
                sku: (*sku).to_owned(),
                requested: *quantity,
                available: p.available,
            }),
            Some(p) => reserved.push(Reserved {
                sku,
                quantity: *quantity,
                unit_price_cents: p.price_cents,
            }),
        }
    }
    let mut lines: Vec<PricedLine> = Vec::with_capacity(reserved.len());
    let mut total: Option<i64> = Some(0);
    for r in &reserved {
        let line_total_cents = r.unit_price_cents.checked_mul(i64::from(r.quantity));
        total = total
            .zip(line_total_cents)
            .and_then(|(t, l)| t.checked_add(l));
        lines.push(PricedLine {
            sku: r.sku.to_owned(),
            quantity: r.quantity,
            unit_price_cents: r.unit_price_cents,
            line_total_cents: line_total_cents.unwrap_or_default(),
        });
    }
    let Some(total_cents) = total else {
        return Err(HandlerError::Permanent {
            reason: format!(
                "order {}: the total does not fit in 64-bit cents",
                order.order_id
            ),
        });
    };

    if !shortages.is_empty() {
        let meta = EventMeta::caused_by::<StockRejected>(&order.meta, "inventory");
        db::insert_tombstone(
            tx,
            order.order_id,
            &order.customer_id,
            "REJECTED",
            meta.occurred_at,
        )
        .await?;
        let event = StockRejected {
            meta,
            order_id: order.order_id,
            reason: if unknown {
                "UNKNOWN_SKU"
            } else {
                "OUT_OF_STOCK"
            }
            .to_owned(),
            shortages,
            customer_id: Some(order.customer_id.clone()),
        };
        outbox::enqueue(tx, &event).await?;
        tracing::info!(order_id = %order.order_id, reason = %event.reason, "stock rejected");
        return Ok(());
    }

    let currency = products
        .first()
        .map_or("EUR", |p| p.currency.as_str())
        .to_owned();
    let meta = EventMeta::caused_by::<StockReserved>(&order.meta, "inventory");
    db::insert_reservation(
        tx,
        order.order_id,
        &order.customer_id,
        total_cents,
        &currency,
        &reserved,
        meta.occurred_at,
    )
    .await?;
    let event = StockReserved {
        meta,
        order_id: order.order_id,
        customer_id: order.customer_id.clone(),
        lines,
        total_cents,
        currency,
        // Carried on so that shipping needs no event but PaymentCompleted.
        shipping_address: Some(order.shipping_address.clone()),
    };
    outbox::enqueue(tx, &event).await?;
    tracing::info!(order_id = %order.order_id, total_cents, "stock reserved");
    Ok(())
}
