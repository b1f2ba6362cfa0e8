//! The edge's public contract, in one place: every request and response
//! body of the REST API, as the edge documents it (`/openapi.json`) and as
//! the services behind it read and write it.
//!
//! A request comes in two shapes. The **wire** shape (`order::PlaceOrder`,
//! `catalog::PutProduct`, `wallet::PutWallet`) is what a client sends: plain
//! strings and numbers, with the OpenAPI schema. Its `parse` turns it into
//! the **parsed** shape (`order::NewOrder`, `catalog::ProductUpdate`,
//! `wallet::WalletUpdate`), made of the validating types in [`field`], and
//! reports every problem at once, each naming its field, so a caller can fix
//! a request in one go. Code that holds a parsed value never checks it again:
//! an `Sku` is a valid SKU because nothing else can build one.
//!
//! The edge parses to answer a client with all its mistakes; the service
//! behind deserialises the parsed shape directly (it parses through the wire
//! shape), so nothing that bypasses the edge bypasses the rules. The parsed
//! shapes serialise to exactly the wire JSON.

/// A parsed shape deserialises through its wire shape's `parse`
/// (`#[serde(try_from = "Wire")]`), so reading one applies every rule.
macro_rules! parsed_from {
    ($parsed:ty, $wire:ty) => {
        impl TryFrom<$wire> for $parsed {
            type Error = $crate::Problems;

            fn try_from(wire: $wire) -> Result<Self, $crate::Problems> {
                wire.parse()
            }
        }
    };
}

pub mod catalog;
pub mod field;
pub mod order;
mod problems;
pub mod wallet;

pub use problems::{Invalid, Problems};
