//! An order was placed: reserve every line at its catalog price, all or
//! nothing. `StockReserved` when every line fits, `StockRejected` (which SKUs,
//! how many were free) when one does not; then nothing is reserved.

use crate::stock::{Line, Status, Stock};
use choreo_events::{
    EventMeta, OrderPlaced, PricedLine, StockRejected, StockReserved, StockShortage,
};
use choreo_messaging::{HandlerError, outbox};
use std::collections::BTreeMap;

pub(super) fn handle(
    stock: &mut Stock,
    order: &OrderPlaced,
    emitted: &mut outbox::Pending,
) -> Result<(), HandlerError> {
    // One decision per order, even if the event's id differed (a replay from
    // another producer instance): the order is the business key.
    if let Some(status) = stock.status(order.order_id) {
        tracing::info!(order_id = %order.order_id, %status, "order already handled");
        return Ok(());
    }
    let mut wanted: BTreeMap<&str, i32> = BTreeMap::new();
    for line in &order.lines {
        let quantity = wanted.entry(line.sku.as_str()).or_default();
        *quantity = quantity.saturating_add(line.quantity);
    }

    let mut reserved = Vec::with_capacity(wanted.len());
    let mut shortages = Vec::new();
    let mut unknown = false;
    let mut currency = None;
    for (sku, quantity) in &wanted {
        match stock.shelf(sku) {
            None => {
                unknown = true;
                shortages.push(StockShortage {
                    sku: (*sku).to_owned(),
                    requested: *quantity,
                    available: 0,
                });
            }
            Some(shelf) if shelf.available < *quantity => shortages.push(StockShortage {
                sku: (*sku).to_owned(),
                requested: *quantity,
                available: shelf.available,
            }),
            Some(shelf) => {
                // The order's currency is its first product's, by SKU.
                currency.get_or_insert_with(|| shelf.currency.clone());
                reserved.push(Line {
                    sku: (*sku).to_owned(),
                    quantity: *quantity,
                    unit_price_cents: shelf.price_cents,
                });
            }
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
            sku: r.sku.clone(),
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
        stock.tombstone(
            order.order_id,
            &order.customer_id,
            Status::Rejected,
            meta.occurred_at,
        );
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
        emitted.push(&event)?;
        tracing::info!(order_id = %order.order_id, reason = %event.reason, "stock rejected");
        return Ok(());
    }

    let currency = currency.unwrap_or_else(|| "EUR".to_owned());
    let meta = EventMeta::caused_by::<StockReserved>(&order.meta, "inventory");
    stock.reserve(
        order.order_id,
        &order.customer_id,
        total_cents,
        &currency,
        reserved,
        meta.occurred_at,
    );
    emitted.push(&StockReserved {
        meta,
        order_id: order.order_id,
        customer_id: order.customer_id.clone(),
        lines,
        total_cents,
        currency,
        // Carried on so that shipping needs no event but PaymentCompleted.
        shipping_address: Some(order.shipping_address.clone()),
    })?;
    tracing::info!(order_id = %order.order_id, total_cents, "stock reserved");
    Ok(())
}
