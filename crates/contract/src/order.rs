//! Orders: placing one (`POST /v1/orders`) and what reading one answers.

use crate::{
    Problems,
    field::{Country, CustomerId, FreeText, Quantity, Sku, Text},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The most lines one order may have.
pub const MAX_LINES: usize = 100;

/// An order to place. Unknown fields are refused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// Whose order: the caller's own when left out; only an admin may name
    /// another customer.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$", nullable = false)]
    pub customer_id: Option<String>,
    /// 1 to 100 lines, each SKU on one line only.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<Item>,
    pub shipping_address: Address,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    #[schema(pattern = r"^[A-Z0-9-]{1,64}$", example = "TEA-01")]
    pub sku: String,
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[schema(pattern = r"\S", max_length = 200)]
    pub name: String,
    #[schema(pattern = r"\S", max_length = 200)]
    pub line1: String,
    #[serde(default)]
    #[schema(max_length = 200, nullable = false)]
    pub line2: Option<String>,
    #[schema(pattern = r"\S", max_length = 200)]
    pub city: String,
    #[schema(pattern = r"\S", max_length = 200)]
    pub postal_code: String,
    /// An assigned ISO 3166-1 alpha-2 code.
    #[schema(pattern = r"^[A-Z]{2}$", example = "DE")]
    pub country: String,
}

/// An order that may be placed: a customer, 1 to [`MAX_LINES`] lines with
/// each SKU on one line only, and an address to ship to. Made only by
/// [`PlaceOrder::parse`] (a service behind the edge deserialises it the same
/// way); it serialises as the `PlaceOrder` it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PlaceOrder")]
pub struct NewOrder {
    customer_id: CustomerId,
    items: Vec<OrderItem>,
    shipping_address: PostalAddress,
}

/// One line of a [`NewOrder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderItem {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// Where a [`NewOrder`] ships to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostalAddress {
    pub name: Text,
    pub line1: Text,
    pub line2: Option<FreeText>,
    pub city: Text,
    pub postal_code: Text,
    pub country: Country,
}

impl NewOrder {
    pub fn customer_id(&self) -> &CustomerId {
        &self.customer_id
    }

    /// At least one, at most [`MAX_LINES`], no SKU twice.
    pub fn items(&self) -> &[OrderItem] {
        &self.items
    }

    pub fn shipping_address(&self) -> &PostalAddress {
        &self.shipping_address
    }
}

impl PlaceOrder {
    /// The order, or every problem with it. A missing `customer_id` is one
    /// of them: the edge fills in the caller before it parses.
    pub fn parse(self) -> Result<NewOrder, Problems> {
        let mut problems = Problems::default();
        let customer_id = problems.check(
            "customer_id",
            CustomerId::parse(self.customer_id.unwrap_or_default()),
        );
        if self.items.is_empty() {
            problems.push("items must list at least one line".to_owned());
        }
        if self.items.len() > MAX_LINES {
            problems.push(format!(
                "items has {} lines; at most {MAX_LINES} are allowed",
                self.items.len()
            ));
        }
        let mut items = Vec::with_capacity(self.items.len());
        for (i, item) in self.items.iter().enumerate() {
            if self.items[..i]
                .iter()
                .any(|earlier| earlier.sku == item.sku)
            {
                problems.push(format!(
                    "items[{i}].sku {} appears twice; put the whole quantity on one line",
                    item.sku
                ));
            }
            let sku = problems.check(format_args!("items[{i}].sku"), Sku::parse(&*item.sku));
            let quantity = problems.check(
                format_args!("items[{i}].quantity"),
                Quantity::parse(item.quantity),
            );
            items.push(
                sku.zip(quantity)
                    .map(|(sku, quantity)| OrderItem { sku, quantity }),
            );
        }
        let shipping_address = self.shipping_address.parse(&mut problems);
        problems.or_value(|| {
            Some(NewOrder {
                customer_id: customer_id?,
                items: items.into_iter().collect::<Option<_>>()?,
                shipping_address: shipping_address?,
            })
        })
    }
}

impl Address {
    fn parse(self, problems: &mut Problems) -> Option<PostalAddress> {
        let field = |name: &str| format!("shipping_address.{name}");
        let name = problems.check(field("name"), Text::parse(self.name));
        let line1 = problems.check(field("line1"), Text::parse(self.line1));
        let city = problems.check(field("city"), Text::parse(self.city));
        let postal_code = problems.check(field("postal_code"), Text::parse(self.postal_code));
        let line2 = match self.line2 {
            None => Some(None),
            Some(line2) => problems
                .check(field("line2"), FreeText::parse(line2))
                .map(Some),
        };
        let country = problems.check(field("country"), Country::parse(&self.country));
        Some(PostalAddress {
            name: name?,
            line1: line1?,
            line2: line2?,
            city: city?,
            postal_code: postal_code?,
            country: country?,
        })
    }
}

parsed_from!(NewOrder, PlaceOrder);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = Status, rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(OrderStatus::Pending),
            "CONFIRMED" => Some(OrderStatus::Confirmed),
            "CANCELLED" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }

    /// Confirmed or cancelled: the saga has ended.
    pub fn is_terminal(self) -> bool {
        self != OrderStatus::Pending
    }
}

/// An order with its priced lines and saga timeline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Order {
    pub id: Uuid,
    pub customer_id: String,
    pub status: OrderStatus,
    /// When CANCELLED: OUT_OF_STOCK, PAYMENT_DECLINED, SHIPPING_UNAVAILABLE,
    /// CUSTOMER_CANCELLED or TIMEOUT.
    pub cancel_reason: Option<String>,
    pub cancel_detail: Option<String>,
    pub lines: Vec<Line>,
    /// Known once inventory has priced the lines.
    pub total_cents: Option<i64>,
    pub currency: Option<String>,
    pub shipping_address: ShippingAddress,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Line {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: Option<i64>,
    pub line_total_cents: Option<i64>,
}

// An order's address as it was placed; the request's is `Address`. (A
// comment, not a doc: a doc would be the schema's description, and the
// document has none here.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

/// One saga event the order has seen.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub event_type: String,
    pub service: String,
    pub occurred_at: DateTime<Utc>,
    pub event_id: Uuid,
}

/// An order as lists show it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderSummary {
    pub id: Uuid,
    pub customer_id: String,
    pub status: OrderStatus,
    pub cancel_reason: Option<String>,
    pub total_cents: Option<i64>,
    pub currency: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A page of orders; `next_cursor` is null on the last one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    pub orders: Vec<OrderSummary>,
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> PlaceOrder {
        PlaceOrder {
            customer_id: Some("alice".into()),
            items: vec![Item {
                sku: "TEA-01".into(),
                quantity: 2,
            }],
            shipping_address: Address {
                name: "Alice".into(),
                line1: "1 Main St".into(),
                line2: None,
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            },
        }
    }

    fn problems(order: PlaceOrder) -> String {
        order.parse().expect_err("invalid").to_string()
    }

    #[test]
    fn a_parsed_order_serialises_as_the_request_it_came_from() {
        for line2 in [None, Some(String::new()), Some("Flat 2".to_owned())] {
            let mut request = order();
            request.shipping_address.line2 = line2;
            let wire = serde_json::to_value(&request).expect("json");
            let parsed = request.parse().expect("valid");
            assert_eq!(serde_json::to_value(&parsed).expect("json"), wire);
            // And a service behind the edge reads it back through the rules.
            let read: NewOrder = serde_json::from_value(wire).expect("valid");
            assert_eq!(read, parsed);
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut o = order();
        o.items[0].quantity = 0;
        o.items[0].sku = "tea".into();
        o.shipping_address.country = "Germany".into();
        o.shipping_address.city = " ".into();
        o.shipping_address.line2 = Some("x".repeat(201));
        let message = problems(o);
        for field in [
            "items[0].quantity must be between 1 and 1000",
            "items[0].sku must be 1-64 characters",
            "shipping_address.country must be an ISO 3166-1 alpha-2 code",
            "shipping_address.city is required",
            "shipping_address.line2 is longer than 200 characters",
        ] {
            assert!(message.contains(field), "{field} missing from {message}");
        }
    }

    #[test]
    fn a_service_reading_an_invalid_order_gets_every_problem() {
        let mut o = order();
        o.customer_id = None;
        o.items.clear();
        let err = serde_json::from_value::<NewOrder>(serde_json::to_value(o).expect("json"))
            .expect_err("invalid");
        let message = err.to_string();
        assert!(message.contains("customer_id must be 1-64"), "{message}");
        assert!(
            message.contains("items must list at least one line"),
            "{message}"
        );
    }

    #[test]
    fn a_sku_on_two_lines_is_rejected() {
        let mut o = order();
        o.items.push(Item {
            sku: "TEA-01".into(),
            quantity: 1,
        });
        let message = problems(o);
        assert!(
            message.contains("items[1].sku TEA-01 appears twice"),
            "{message}"
        );
    }

    #[test]
    fn line_and_quantity_limits_hold() {
        let mut o = order();
        o.items = (0..MAX_LINES)
            .map(|i| Item {
                sku: format!("SKU-{i}"),
                quantity: Quantity::MAX,
            })
            .collect();
        assert!(o.clone().parse().is_ok());
        o.items.push(Item {
            sku: "SKU-X".into(),
            quantity: 1,
        });
        assert!(problems(o).contains("at most 100"));
        let mut o = order();
        o.items[0].quantity = Quantity::MAX + 1;
        assert!(o.parse().is_err());
    }
}
