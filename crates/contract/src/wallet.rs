//! Wallets: what an admin sets (`PUT /v1/admin/customers/{id}/wallet`) and
//! what reading one answers.

use crate::{Problems, field::Cents};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A wallet's balance as an admin sets it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutWallet {
    #[schema(minimum = 0)]
    pub balance_cents: i64,
}

/// A balance that may be set. Made only by [`PutWallet::parse`]; serialises
/// as the `PutWallet` it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PutWallet")]
pub struct WalletUpdate {
    pub balance_cents: Cents,
}

impl PutWallet {
    /// The update, or what is wrong with it.
    pub fn parse(self) -> Result<WalletUpdate, Problems> {
        let mut problems = Problems::default();
        let balance_cents = problems.check("balance_cents", Cents::parse(self.balance_cents));
        problems.or_value(|| {
            Some(WalletUpdate {
                balance_cents: balance_cents?,
            })
        })
    }
}

parsed_from!(WalletUpdate, PutWallet);

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Wallet {
    pub customer_id: String,
    pub balance_cents: i64,
    pub currency: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_balance_is_refused_and_a_service_reads_the_same_rule() {
        let err =
            serde_json::from_str::<WalletUpdate>(r#"{"balance_cents": -5}"#).expect_err("invalid");
        assert!(
            err.to_string()
                .contains("balance_cents must not be negative"),
            "{err}"
        );
        let read: WalletUpdate = serde_json::from_str(r#"{"balance_cents": 5}"#).expect("valid");
        assert_eq!(read.balance_cents.get(), 5);
    }
}
