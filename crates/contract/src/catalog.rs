//! Products: what an admin sets (`PUT /v1/admin/products/{sku}`) and what
//! reading the catalog answers.

use crate::{
    Problems,
    field::{Cents, Count, Text},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A product as an admin sets it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutProduct {
    #[schema(pattern = r"\S", max_length = 200)]
    pub name: String,
    #[schema(minimum = 0)]
    pub price_cents: i64,
    #[schema(minimum = 0)]
    pub available: i32,
}

/// A product's name, price and stock that may be set. Made only by
/// [`PutProduct::parse`]; serialises as the `PutProduct` it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PutProduct")]
pub struct ProductUpdate {
    pub name: Text,
    pub price_cents: Cents,
    pub available: Count,
}

impl PutProduct {
    /// The update, or every problem with it.
    pub fn parse(self) -> Result<ProductUpdate, Problems> {
        let mut problems = Problems::default();
        let name = problems.check("name", Text::parse(self.name));
        let price_cents = problems.check("price_cents", Cents::parse(self.price_cents));
        let available = problems.check("available", Count::parse(self.available));
        problems.or_value(|| {
            Some(ProductUpdate {
                name: name?,
                price_cents: price_cents?,
                available: available?,
            })
        })
    }
}

parsed_from!(ProductUpdate, PutProduct);

/// A product with its stock.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    /// Free to reserve.
    pub available: i32,
    /// Held for running sagas.
    pub reserved: i32,
    /// Left the warehouse with confirmed orders.
    pub shipped: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_of_a_product_is_named() {
        let wrong = PutProduct {
            name: " ".into(),
            price_cents: -1,
            available: -1,
        };
        let message = wrong.parse().expect_err("invalid").to_string();
        assert_eq!(
            message,
            "name is required; price_cents must not be negative; available must not be negative"
        );
        let right = PutProduct {
            name: "Tea".into(),
            price_cents: 0,
            available: 3,
        };
        let wire = serde_json::to_value(&right).expect("json");
        let parsed = right.parse().expect("valid");
        assert_eq!(serde_json::to_value(&parsed).expect("json"), wire);
    }
}
