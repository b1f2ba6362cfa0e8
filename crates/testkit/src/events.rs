//! Events as a test needs them, built the way the services build them.

use choreo_events::{EventMeta, OrderLine, OrderPlaced, ShippingAddress};
use uuid::Uuid;

/// The order service's `OrderPlaced` for `order_id`: one unit of SKU `A`,
/// shipped to Germany, no idempotency key. Change the fields a test is
/// about.
pub fn order_placed(order_id: Uuid) -> OrderPlaced {
    OrderPlaced {
        meta: EventMeta::first::<OrderPlaced>(order_id, "order"),
        order_id,
        customer_id: "c".into(),
        lines: vec![OrderLine {
            sku: "A".into(),
            quantity: 1,
        }],
        shipping_address: shipping_address("DE"),
        idempotency_key: None,
    }
}

/// An address in `country` (ISO 3166-1 alpha-2).
pub fn shipping_address(country: &str) -> ShippingAddress {
    ShippingAddress {
        name: "N".into(),
        line1: "L".into(),
        line2: None,
        city: "C".into(),
        postal_code: "P".into(),
        country: country.into(),
    }
}
