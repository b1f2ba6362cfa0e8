//! The validating types a request's fields parse into. Each has one way in,
//! `parse`, which checks the rule the type stands for; holding one is proof
//! the rule held. They serialise as the plain value they wrap.

use crate::problems::Invalid;
use serde::Serialize;

/// The longest text field, in bytes.
pub const MAX_TEXT: usize = 200;

/// A SKU: 1 to 64 characters of `A-Z`, `0-9` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    pub fn parse(s: impl Into<String>) -> Result<Self, Invalid> {
        let s = s.into();
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(s))
        } else {
            Err(Invalid(
                "must be 1-64 characters of A-Z, 0-9 and '-'".to_owned(),
            ))
        }
    }
}

/// A customer id: 1 to 64 characters of letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CustomerId(String);

impl CustomerId {
    pub fn parse(s: impl Into<String>) -> Result<Self, Invalid> {
        let s = s.into();
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(s))
        } else {
            Err(Invalid(
                "must be 1-64 letters, digits, '-' or '_'".to_owned(),
            ))
        }
    }
}

/// How many of a SKU one order line asks for: 1 to [`Quantity::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Quantity(i32);

impl Quantity {
    pub const MAX: i32 = 1_000;

    pub fn parse(n: i32) -> Result<Self, Invalid> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(Invalid(format!("must be between 1 and {}", Self::MAX)))
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// An assigned ISO 3166-1 alpha-2 country code, in capitals as the standard
/// writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Country(&'static str);

impl Country {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match isocountry::CountryCode::for_alpha2(s) {
            Ok(code) if s.bytes().all(|b| b.is_ascii_uppercase()) => Ok(Self(code.alpha2())),
            _ => Err(Invalid(
                "must be an ISO 3166-1 alpha-2 code such as DE".to_owned(),
            )),
        }
    }
}

/// A required text: not blank, at most [`MAX_TEXT`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text(String);

impl Text {
    pub fn parse(s: impl Into<String>) -> Result<Self, Invalid> {
        let s = s.into();
        if s.trim().is_empty() {
            Err(Invalid("is required".to_owned()))
        } else {
            FreeText::parse(s).map(|text| Self(text.0))
        }
    }
}

/// An optional text: at most [`MAX_TEXT`] bytes, blank allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FreeText(String);

impl FreeText {
    pub fn parse(s: impl Into<String>) -> Result<Self, Invalid> {
        let s = s.into();
        if s.len() > MAX_TEXT {
            Err(Invalid(format!("is longer than {MAX_TEXT} characters")))
        } else {
            Ok(Self(s))
        }
    }
}

/// An amount of money in cents that is not negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Cents(i64);

impl Cents {
    pub fn parse(n: i64) -> Result<Self, Invalid> {
        if n < 0 {
            Err(Invalid("must not be negative".to_owned()))
        } else {
            Ok(Self(n))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A count of items that is not negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Count(i32);

impl Count {
    pub fn parse(n: i32) -> Result<Self, Invalid> {
        if n < 0 {
            Err(Invalid("must not be negative".to_owned()))
        } else {
            Ok(Self(n))
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// The text types read as the text they hold.
macro_rules! as_str {
    ($($name:ident),*) => {$(
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
as_str!(Sku, CustomerId, Country, Text, FreeText);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_country_is_an_assigned_iso_code_in_capitals() {
        for country in ["DE", "US", "JP", "CH"] {
            assert_eq!(
                Country::parse(country).map(|c| c.to_string()),
                Ok(country.to_owned())
            );
        }
        // Two capitals that no country has, the same code in lower case,
        // and alpha-3.
        for country in ["XX", "QQ", "de", "DEU"] {
            assert!(Country::parse(country).is_err(), "{country}");
        }
    }

    #[test]
    fn skus_and_customer_ids_keep_to_their_alphabets() {
        assert!(Sku::parse("TEA-01").is_ok());
        for sku in ["", "tea", "TEA 01", &"A".repeat(65)] {
            assert!(Sku::parse(sku).is_err(), "{sku}");
        }
        assert!(CustomerId::parse("alice_1-b").is_ok());
        for id in ["", "a b", "ü", &"a".repeat(65)] {
            assert!(CustomerId::parse(id).is_err(), "{id}");
        }
    }

    #[test]
    fn text_is_required_and_bounded_free_text_only_bounded() {
        assert_eq!(
            Text::parse(" ").map_err(|e| e.at("name")),
            Err("name is required".to_owned())
        );
        assert!(Text::parse("a".repeat(MAX_TEXT)).is_ok());
        assert!(Text::parse("a".repeat(MAX_TEXT + 1)).is_err());
        assert!(FreeText::parse("").is_ok());
        assert!(FreeText::parse("a".repeat(MAX_TEXT + 1)).is_err());
    }

    #[test]
    fn they_serialise_as_the_value_they_wrap() {
        let sku = Sku::parse("TEA-01").expect("valid");
        assert_eq!(serde_json::to_string(&sku).expect("json"), "\"TEA-01\"");
        let quantity = Quantity::parse(3).expect("valid");
        assert_eq!(serde_json::to_string(&quantity).expect("json"), "3");
    }
}
