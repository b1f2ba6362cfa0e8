//! The bearer tokens the edge takes from customers and operators, as Choreo
//! signs them for itself: what `choreo up` prints, `choreo token` signs and
//! tests use. The edge checks them (`choreo-edge`'s `auth`); keeping the
//! signing here lets the tools sign without linking the edge.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// The scope that grants the admin routes unless configured otherwise,
/// namespaced so that no other application's `admin` scope grants it.
pub const ADMIN_SCOPE: &str = "choreo:admin";

/// The claims `hs256_token` signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

/// Signs an HS256 token for `customer`, valid for `ttl_seconds`, with the
/// admin scope when `admin`: what `choreo up` prints and tests use.
///
/// # Errors
/// When the secret cannot sign (it never fails for a non-empty secret).
pub fn hs256_token(
    secret: &str,
    customer: &str,
    admin: bool,
    ttl_seconds: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = Claims {
        sub: customer.to_owned(),
        iat: now,
        exp: now.saturating_add(ttl_seconds),
        scope: if admin {
            ADMIN_SCOPE.to_owned()
        } else {
            String::new()
        },
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}
