//! Events for payment's tests, as inventory would send them, and a
//! database to apply them to.

#![allow(dead_code, unreachable_pub)]

use choreo_events::*;
use choreo_messaging::Delivery;
use choreo_testkit::TestDatabase;
use sqlx::PgPool;
use uuid::Uuid;

/// A new database named after `label`, with payment's tables.
pub async fn database(label: &str) -> (TestDatabase, PgPool) {
    TestDatabase::migrated(label, choreo_payment::migrations())
        .await
        .expect("a migrated database")
}

/// Stock reserved for `order_id`: one line worth `total_cents`.
pub fn reserved(order_id: Uuid, customer: &str, total_cents: i64) -> Delivery {
    let placed = EventMeta::first::<OrderPlaced>(order_id, "order");
    let event = StockReserved {
        meta: EventMeta::caused_by::<StockReserved>(&placed, "inventory"),
        order_id,
        customer_id: customer.into(),
        lines: vec![PricedLine {
            sku: "A".into(),
            quantity: 1,
            unit_price_cents: total_cents,
            line_total_cents: total_cents,
        }],
        total_cents,
        currency: "EUR".into(),
        shipping_address: Some(choreo_testkit::shipping_address("DE")),
    };
    Delivery::of(&event).expect("the event matches its schema")
}
