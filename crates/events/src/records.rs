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
    crate::Record::ALL
        .iter()
        .map(|r| (r.topic(), r.name(), r.schema_text()))
        .collect()
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
    /// The `Idempotency-Key` the order was placed with: the order service
    /// re-learns it from here after a restore, so that a retry still finds
    /// the order instead of placing another.
    #[serde(default)]
    pub idempotency_key: Option<String>,
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
    /// Copied from `OrderPlaced` so that the address travels with the saga
    /// to shipping; `None` only from an inventory older than the field.
    #[serde(default)]
    pub shipping_address: Option<ShippingAddress>,
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
    /// Passed on from `StockReserved`: shipping schedules from this event
    /// alone. `None` only when the reservation carried none.
    #[serde(default)]
    pub shipping_address: Option<ShippingAddress>,
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
    /// The envelope of the `PaymentCompleted` this answers: the order
    /// service records the payment in its timeline from here instead of
    /// opening a transaction for `PaymentCompleted` itself. `None` only from
    /// a shipping service older than the field.
    #[serde(default)]
    pub payment: Option<EventMeta>,
}
event!(
    ShipmentScheduled,
    Topic::Shipping,
    "shipping.events/ShipmentScheduled.avsc"
);

/// Why a saga ended in cancellation (`OrderCancelled.reason`).
pub mod cancel_reason {
    pub const OUT_OF_STOCK: &str = "OUT_OF_STOCK";
    pub const PAYMENT_DECLINED: &str = "PAYMENT_DECLINED";
    pub const SHIPPING_UNAVAILABLE: &str = "SHIPPING_UNAVAILABLE";
    pub const CUSTOMER_CANCELLED: &str = "CUSTOMER_CANCELLED";
    pub const TIMEOUT: &str = "TIMEOUT";
}

/// The saga's outcome when a step said no, the customer cancelled or the
/// deadline passed; every service compensates what it did for the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub meta: EventMeta,
    #[serde(with = "crate::uuid_text")]
    pub order_id: Uuid,
    /// One of [`cancel_reason`].
    pub reason: String,
    pub detail: String,
}
event!(
    OrderCancelled,
    Topic::Order,
    "order.events/OrderCancelled.avsc"
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockShortage {
    pub sku: String,
    pub requested: i32,
    /// 0 for a SKU the catalog does not have.
    pub available: i32,
}

/// Not every line could be reserved; nothing was reserved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockRejected {
    pub meta: EventMeta,
    #[serde(with = "crate::uuid_text")]
    pub order_id: Uuid,
    /// `OUT_OF_STOCK` or `UNKNOWN_SKU`.
    pub reason: String,
    pub shortages: Vec<StockShortage>,
    /// The order's customer, so that a replay re-applies the rejection as
    /// it was recorded; `None` only from an inventory older than the field.
    #[serde(default)]
    pub customer_id: Option<String>,
}
event!(
    StockRejected,
    Topic::Inventory,
    "inventory.events/StockRejected.avsc"
);

/// A reservation went back to the free stock (compensation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockReleased {
    pub meta: EventMeta,
    #[serde(with = "crate::uuid_text")]
    pub order_id: Uuid,
    /// The order's cancellation reason.
    pub reason: String,
    pub lines: Vec<OrderLine>,
}
event!(
    StockReleased,
    Topic::Inventory,
    "inventory.events/StockReleased.avsc"
);

/// An admin set a product's name, price and free stock. Its envelope's
/// correlation id names the change, not an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductSet {
    pub meta: EventMeta,
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    /// The free stock set.
    pub available: i32,
    /// What the change put on the shelf (negative: took off).
    pub stock_delta: i32,
}
event!(
    ProductSet,
    Topic::Inventory,
    "inventory.events/ProductSet.avsc"
);

/// An admin set a customer's wallet balance. Its envelope's correlation id
/// names the change, not an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalletSet {
    pub meta: EventMeta,
    pub customer_id: String,
    /// The balance set.
    pub balance_cents: i64,
    pub currency: String,
    /// What the change added to the balance (negative: took away).
    pub delta_cents: i64,
}
event!(WalletSet, Topic::Payment, "payment.events/WalletSet.avsc");

/// The total could not be charged; nothing was charged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub meta: EventMeta,
    #[serde(with = "crate::uuid_text")]
    pub order_id: Uuid,
    pub customer_id: String,
    pub amount_cents: i64,
    /// `INSUFFICIENT_FUNDS`, `UNKNOWN_CUSTOMER`, or the payment provider's
    /// reason for declining (`CARD_DECLINED`).
    pub reason: String,
}
event!(
    PaymentFailed,
    Topic::Payment,
    "payment.events/PaymentFailed.avsc"
);

/// A charge was credited back to the wallet (compensation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    pub meta: EventMeta,
    #[serde(with = "crate::uuid_text")]
    pub order_id: Uuid,
    #[serde(with = "crate::uuid_text")]
    pub payment_id: Uuid,
    pub customer_id: String,
    pub amount_cents: i64,
    pub currency: String,
    /// The order's cancellation reason.
    pub reason: String,
    /// The envelope of the `PaymentCompleted` this refunds, as in
    /// [`ShipmentScheduled::payment`]: the order's timeline gets the payment
    /// from here when shipping never answered. `None` from an older payment
    /// service.
    #[serde(default)]
    pub payment: Option<EventMeta>,
}
event!(
    PaymentRefunded,
    Topic::Payment,
    "payment.events/PaymentRefunded.avsc"
);

/// The order cannot be shipped; nothing was scheduled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentFailed {
    pub meta: EventMeta,
    #[serde(with = "crate::uuid_text")]
    pub order_id: Uuid,
    pub country: String,
    /// `COUNTRY_NOT_SERVED`.
    pub reason: String,
    /// The envelope of the `PaymentCompleted` this answers, as in
    /// [`ShipmentScheduled::payment`].
    #[serde(default)]
    pub payment: Option<EventMeta>,
}
event!(
    ShipmentFailed,
    Topic::Shipping,
    "shipping.events/ShipmentFailed.avsc"
);

/// A scheduled shipment was cancelled (compensation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentCancelled {
    pub meta: EventMeta,
    #[serde(with = "crate::uuid_text")]
    pub order_id: Uuid,
    #[serde(with = "crate::uuid_text")]
    pub shipment_id: Uuid,
    /// The order's cancellation reason.
    pub reason: String,
}
event!(
    ShipmentCancelled,
    Topic::Shipping,
    "shipping.events/ShipmentCancelled.avsc"
);
