//! One Rust type per `.avsc`. Field names and types mirror the schema; the
//! round-trip tests in `tests/avro_roundtrip.rs` fail when the two drift.

use crate::{EventMeta, Topic};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Ties a record type to its topic and embedded `.avsc`.
macro_rules! event {
    ($ty:ident, $topic:expr, $path:literal) => {
        impl crate::Event for $ty {
            const NAME: &'static str = stringify!($ty);
            const TOPIC: Topic = $topic;

            fn schema() -> &'static apache_avro::Schema {
                static SCHEMA: std::sync::LazyLock<apache_avro::Schema> =
                    std::sync::LazyLock::new(|| {
                        // The text is compiled in and parsed by the tests, so a
                        // failure here is a build defect, not a runtime condition.
                        #[allow(clippy::expect_used)]
                        apache_avro::Schema::parse_str(<$ty as crate::Event>::schema_text())
                            .expect(concat!("schemas/", $path, " is valid Avro"))
                    });
                &SCHEMA
            }

            fn schema_text() -> &'static str {
                include_str!(concat!("../../../schemas/", $path))
            }

            fn meta(&self) -> &EventMeta {
                &self.meta
            }
        }
    };
}

/// Every record Choreo publishes: (topic, simple name, `.avsc` text). Used to
/// register schemas up front and to document the catalog.
pub fn catalog() -> Vec<(Topic, &'static str, &'static str)> {
    use crate::Event;
    fn entry<E: Event>() -> (Topic, &'static str, &'static str) {
        (E::TOPIC, E::NAME, E::schema_text())
    }
    vec![
        entry::<OrderPlaced>(),
        entry::<OrderConfirmed>(),
        entry::<StockReserved>(),
        entry::<PaymentCompleted>(),
        entry::<ShipmentScheduled>(),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub quantity: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

/// A customer placed an order; the saga starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub meta: EventMeta,
    #[serde(with = "crate::uuid_text")]
    pub order_id: Uuid,
    pub customer_id: String,
    pub lines: Vec<OrderLine>,
    pub shipping_address: ShippingAddress,
}
event!(OrderPlaced, Topic::Order, "order.events/OrderPlaced.avsc");

/// Every step succeeded; the saga's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    pub meta: EventMeta,
    #[serde(with = "crate::uuid_text")]
    pub order_id: Uuid,
    pub total_cents: i64,
    pub currency: String,
}
event!(
    OrderConfirmed,
    Topic::Order,
    "order.events/OrderConfirmed.avsc"
);

/// Every line is reserved at its catalog price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockReserved {
    pub meta: EventMeta,
    #[serde(with = "crate::uuid_text")]
    pub order_id: Uuid,
    pub customer_id: String,
    pub lines: Vec<PricedLine>,
    pub total_cents: i64,
    pub currency: String,
}
event!(
    StockReserved,
    Topic::Inventory,
    "inventory.events/StockReserved.avsc"
);

/// The total was debited from the customer's wallet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentCompleted {
    pub meta: EventMeta,
    #[serde(with = "crate::uuid_text")]
    pub order_id: Uuid,
    #[serde(with = "crate::uuid_text")]
    pub payment_id: Uuid,
    pub customer_id: String,
    pub amount_cents: i64,
    pub currency: String,
}
event!(
    PaymentCompleted,
    Topic::Payment,
    "payment.events/PaymentCompleted.avsc"
);

/// A shipment to the order's address is scheduled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentScheduled {
    pub meta: EventMeta,
    #[serde(with = "crate::uuid_text")]
    pub order_id: Uuid,
    #[serde(with = "crate::uuid_text")]
    pub shipment_id: Uuid,
    pub country: String,
}
event!(
    ShipmentScheduled,
    Topic::Shipping,
    "shipping.events/ShipmentScheduled.avsc"
);
