//! What a well-formed request looks like. Every problem is reported at once,
//! each naming its field, so a caller can fix a request in one go.

use choreo_kit::HttpError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub(crate) const MAX_LINES: usize = 100;
pub(crate) const MAX_QUANTITY: i32 = 1_000;

/// An order to place. Unknown fields are refused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlaceOrder {
    /// Whose order: the caller's own when left out; only an admin may name
    /// another customer.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$", nullable = false)]
    pub(crate) customer_id: Option<String>,
    /// 1 to 100 lines, each SKU on one line only.
    #[schema(min_items = 1, max_items = 100)]
    pub(crate) items: Vec<Item>,
    pub(crate) shipping_address: Address,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Item {
    #[schema(pattern = r"^[A-Z0-9-]{1,64}$", example = "TEA-01")]
    pub(crate) sku: String,
    #[schema(minimum = 1, maximum = 1000)]
    pub(crate) quantity: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Address {
    #[schema(pattern = r"\S", max_length = 200)]
    pub(crate) name: String,
    #[schema(pattern = r"\S", max_length = 200)]
    pub(crate) line1: String,
    #[serde(default)]
    #[schema(max_length = 200, nullable = false)]
    pub(crate) line2: Option<String>,
    #[schema(pattern = r"\S", max_length = 200)]
    pub(crate) city: String,
    #[schema(pattern = r"\S", max_length = 200)]
    pub(crate) postal_code: String,
    /// An assigned ISO 3166-1 alpha-2 code.
    #[schema(pattern = r"^[A-Z]{2}$", example = "DE")]
    pub(crate) country: String,
}

/// A product as an admin sets it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutProduct {
    #[schema(pattern = r"\S", max_length = 200)]
    pub(crate) name: String,
    #[schema(minimum = 0)]
    pub(crate) price_cents: i64,
    #[schema(minimum = 0)]
    pub(crate) available: i32,
}

/// A wallet's balance as an admin sets it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutWallet {
    #[schema(minimum = 0)]
    pub(crate) balance_cents: i64,
}

/// SKUs are 1 to 64 characters of `A-Z`, `0-9` and `-`.
pub(crate) fn is_sku(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

/// Customer ids are 1 to 64 characters of letters, digits, `-` and `_`.
pub(crate) fn is_customer_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// 422 naming every field whose text holds a C0 control character (NUL,
/// tab, newline, escape, ...): no field of the API takes one, and some
/// stores cannot (PostgreSQL refuses NUL in text and `jsonb`), so they are
/// refused here, as the caller's mistake, before any service sees them.
pub(crate) fn no_control_characters(document: &serde_json::Value) -> Result<(), HttpError> {
    let mut problems = Vec::new();
    find_control_characters(document, &mut String::new(), &mut problems);
    verdict(problems)
}

fn find_control_characters(
    value: &serde_json::Value,
    path: &mut String,
    problems: &mut Vec<String>,
) {
    let controlled = |s: &str| s.chars().any(|c| c <= '\u{1f}');
    let at = |path: &str| {
        if path.is_empty() {
            "the body".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        serde_json::Value::String(s) if controlled(s) => {
            problems.push(format!("{} must not contain control characters", at(path)));
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                find_control_characters(item, path, problems);
                path.truncate(len);
            }
        }
        serde_json::Value::Object(fields) => {
            for (name, field) in fields {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                if controlled(name) {
                    problems.push(format!(
                        "a field name in {} contains control characters",
                        at(&path[..len])
                    ));
                    continue;
                }
                path.push_str(name);
                find_control_characters(field, path, problems);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn required(problems: &mut Vec<String>, field: &str, value: &str) {
    if value.trim().is_empty() {
        problems.push(format!("{field} is required"));
    } else if value.len() > 200 {
        problems.push(format!("{field} is longer than 200 characters"));
    }
}

fn verdict(problems: Vec<String>) -> Result<(), HttpError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(HttpError::invalid(problems.join("; ")))
    }
}

impl PlaceOrder {
    pub(crate) fn validate(&self) -> Result<(), HttpError> {
        let mut problems = Vec::new();
        if !self.customer_id.as_deref().is_some_and(is_customer_id) {
            problems.push("customer_id must be 1-64 letters, digits, '-' or '_'".to_owned());
        }
        if self.items.is_empty() {
            problems.push("items must list at least one line".to_owned());
        }
        if self.items.len() > MAX_LINES {
            problems.push(format!(
                "items has {} lines; at most {MAX_LINES} are allowed",
                self.items.len()
            ));
        }
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
            if !is_sku(&item.sku) {
                problems.push(format!(
                    "items[{i}].sku must be 1-64 characters of A-Z, 0-9 and '-'"
                ));
            }
            if !(1..=MAX_QUANTITY).contains(&item.quantity) {
                problems.push(format!(
                    "items[{i}].quantity must be between 1 and {MAX_QUANTITY}"
                ));
            }
        }
        let a = &self.shipping_address;
        required(&mut problems, "shipping_address.name", &a.name);
        required(&mut problems, "shipping_address.line1", &a.line1);
        required(&mut problems, "shipping_address.city", &a.city);
        required(
            &mut problems,
            "shipping_address.postal_code",
            &a.postal_code,
        );
        if let Some(line2) = &a.line2 {
            if line2.len() > 200 {
                problems.push("shipping_address.line2 is longer than 200 characters".to_owned());
            }
        }
        // An assigned ISO 3166-1 code, in capitals as the standard writes it.
        let assigned = a.country.bytes().all(|b| b.is_ascii_uppercase())
            && isocountry::CountryCode::for_alpha2(&a.country).is_ok();
        if !assigned {
            problems.push(
                "shipping_address.country must be an ISO 3166-1 alpha-2 code such as DE".to_owned(),
            );
        }
        verdict(problems)
    }
}

impl PutProduct {
    pub(crate) fn validate(&self) -> Result<(), HttpError> {
        let mut problems = Vec::new();
        required(&mut problems, "name", &self.name);
        if self.price_cents < 0 {
            problems.push("price_cents must not be negative".to_owned());
        }
        if self.available < 0 {
            problems.push("available must not be negative".to_owned());
        }
        verdict(problems)
    }
}

impl PutWallet {
    pub(crate) fn validate(&self) -> Result<(), HttpError> {
        if self.balance_cents < 0 {
            return Err(HttpError::invalid("balance_cents must not be negative"));
        }
        Ok(())
    }
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

    #[test]
    fn control_characters_are_refused_in_every_string_naming_the_field() {
        let document = serde_json::json!({
            "items": [{"sku": "TEA-01"}, {"sku": "TEA\u{0}02"}],
            "shipping_address": {"name": "Al\tice", "line1": "ok", "city": "Ber\u{1b}lin"},
            "tea\u{7}": 1,
        });
        let err = no_control_characters(&document).expect_err("refused");
        assert_eq!(err.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        for field in [
            "items[1].sku",
            "shipping_address.name",
            "shipping_address.city",
            "a field name in the body",
        ] {
            assert!(
                err.message.contains(field),
                "{field} missing from {}",
                err.message
            );
        }
        assert!(!err.message.contains("line1"), "{}", err.message);
        // Text outside C0 (accents, other scripts) is fine.
        let fine = serde_json::json!({"name": "Zoë Ōta — 東京", "n": 3});
        assert!(no_control_characters(&fine).is_ok());
    }

    #[test]
    fn a_well_formed_order_passes() {
        assert!(order().validate().is_ok());
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut o = order();
        o.items[0].quantity = 0;
        o.items[0].sku = "tea".into();
        o.shipping_address.country = "Germany".into();
        o.shipping_address.city = " ".into();
        let err = o.validate().expect_err("invalid");
        for field in [
            "items[0].quantity",
            "items[0].sku",
            "shipping_address.country",
            "shipping_address.city",
        ] {
            assert!(
                err.message.contains(field),
                "{field} missing from {}",
                err.message
            );
        }
        assert_eq!(err.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn the_country_is_an_assigned_iso_code_in_capitals() {
        for country in ["DE", "US", "JP", "CH"] {
            let mut o = order();
            o.shipping_address.country = country.into();
            assert!(o.validate().is_ok(), "{country}");
        }
        // Two capitals that no country has, the same code in lower case, and
        // alpha-3.
        for country in ["XX", "QQ", "de", "DEU"] {
            let mut o = order();
            o.shipping_address.country = country.into();
            assert!(o.validate().is_err(), "{country}");
        }
    }

    #[test]
    fn a_sku_on_two_lines_is_rejected() {
        let mut o = order();
        o.items.push(Item {
            sku: "TEA-01".into(),
            quantity: 1,
        });
        let err = o.validate().expect_err("duplicate sku");
        assert!(
            err.message.contains("items[1].sku TEA-01 appears twice"),
            "{}",
            err.message
        );
    }

    #[test]
    fn line_and_quantity_limits_hold() {
        let mut o = order();
        o.items = (0..MAX_LINES)
            .map(|i| Item {
                sku: format!("SKU-{i}"),
                quantity: MAX_QUANTITY,
            })
            .collect();
        assert!(o.validate().is_ok());
        o.items.push(Item {
            sku: "SKU-X".into(),
            quantity: 1,
        });
        let err = o.validate().expect_err("too many lines");
        assert!(err.message.contains("at most 100"), "{}", err.message);
        let mut o = order();
        o.items[0].quantity = MAX_QUANTITY + 1;
        assert!(o.validate().is_err());
    }
}
