//! Who is calling: a bearer JWT on every route but the health probes.
//!
//! Tokens are HS256 with a shared secret (the default) or RS256 with an
//! issuer's public key, never both and never none: an edge without a key
//! refuses to start rather than let anyone in. With RS256, where the
//! tokens come from an identity provider that serves other applications
//! too, `iss` and `aud` must be configured, and are required. `sub` is the
//! customer; a `scope` claim (space-separated, as in OAuth 2) containing
//! the admin scope (`choreo:admin` unless configured) grants the admin
//! routes. `exp` is required, `nbf` is honoured, and a token may live at
//! most `max_token_seconds` (from `iat`, or from now without one).
//!
//! A request without a usable token is answered 401 before any handler
//! runs; what a valid caller may do is decided by the handlers (`Caller`).

use axum::{
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::Response,
};
use choreo_kit::{HttpError, customer_token::ADMIN_SCOPE};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How tokens are checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// HS256: the shared secret tokens are signed with (32 bytes or more).
    pub hs256_secret: Option<String>,
    /// RS256: the issuer's public key, PEM.
    pub rs256_public_key: Option<String>,
    /// Tokens must carry this `iss`; required with RS256.
    pub issuer: Option<String>,
    /// Tokens must carry this `aud`; required with RS256.
    pub audience: Option<String>,
    /// The scope that grants the admin routes.
    pub admin_scope: String,
    /// The longest a token may be valid for, in seconds (`exp` - `iat`).
    pub max_token_seconds: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            rs256_public_key: None,
            issuer: None,
            audience: None,
            admin_scope: ADMIN_SCOPE.to_owned(),
            max_token_seconds: 24 * 3600,
        }
    }
}

/// The configuration cannot check any token.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error(
        "no token key configured: set auth.hs256_secret (CHOREO_AUTH__HS256_SECRET) or auth.rs256_public_key (CHOREO_AUTH__RS256_PUBLIC_KEY)"
    )]
    NoKey,
    #[error("both auth.hs256_secret and auth.rs256_public_key are set; configure one")]
    TwoKeys,
    #[error("auth.hs256_secret is {0} bytes; use at least 32")]
    ShortSecret(usize),
    #[error("auth.rs256_public_key is not an RSA public key in PEM")]
    BadPublicKey(#[source] jsonwebtoken::errors::Error),
    #[error(
        "with RS256, set auth.issuer and auth.audience (CHOREO_AUTH__ISSUER, CHOREO_AUTH__AUDIENCE): an identity provider signs tokens for other applications too"
    )]
    Rs256Unscoped,
    #[error("auth.admin_scope is empty")]
    NoAdminScope,
}

/// What the edge reads from a token once `jsonwebtoken` has checked its
/// signature and registered claims (`exp`, and `iss`/`aud` when
/// configured); the rest (an `aud` list, a float `exp`) is the library's
/// business.
#[derive(Debug, Deserialize)]
struct Identity {
    sub: String,
    #[serde(default)]
    scope: String,
    /// Seconds, whole or not, as issuers write them.
    exp: f64,
    #[serde(default)]
    iat: Option<f64>,
}

/// The authenticated caller, as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) customer: String,
    pub(crate) admin: bool,
}

impl Caller {
    /// 403 unless the caller holds the admin scope.
    pub(crate) fn require_admin(&self) -> Result<(), HttpError> {
        if self.admin {
            Ok(())
        } else {
            Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this route needs a token with the admin scope",
            ))
        }
    }

    /// Whose orders the caller may see: its own, or anyone's for an admin.
    pub(crate) fn owner_filter(&self) -> Option<&str> {
        (!self.admin).then_some(self.customer.as_str())
    }
}

/// Checks tokens against the configured key.
#[derive(Clone)]
pub(crate) struct Verifier(Arc<Checks>);

struct Checks {
    key: DecodingKey,
    validation: Validation,
    admin_scope: String,
    max_token_seconds: u64,
}

impl Verifier {
    pub(crate) fn new(settings: &AuthSettings) -> Result<Self, AuthConfigError> {
        let (key, algorithm) = match (&settings.hs256_secret, &settings.rs256_public_key) {
            (None, None) => return Err(AuthConfigError::NoKey),
            (Some(_), Some(_)) => return Err(AuthConfigError::TwoKeys),
            (Some(secret), None) => {
                if secret.len() < 32 {
                    return Err(AuthConfigError::ShortSecret(secret.len()));
                }
                (
                    DecodingKey::from_secret(secret.as_bytes()),
                    Algorithm::HS256,
                )
            }
            (None, Some(pem)) => {
                if settings.issuer.is_none() || settings.audience.is_none() {
                    return Err(AuthConfigError::Rs256Unscoped);
                }
                (
                    DecodingKey::from_rsa_pem(pem.as_bytes())
                        .map_err(AuthConfigError::BadPublicKey)?,
                    Algorithm::RS256,
                )
            }
        };
        if settings.admin_scope.trim().is_empty() {
            return Err(AuthConfigError::NoAdminScope);
        }
        // One algorithm only: a token cannot choose how it is checked.
        let mut validation = Validation::new(algorithm);
        // A configured issuer or audience is only compared when the token
        // carries the claim; so it must carry it.
        let mut required = vec!["exp", "sub"];
        if settings.issuer.is_some() {
            required.push("iss");
        }
        if settings.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        match &settings.issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &settings.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        validation.validate_nbf = true;
        Ok(Self(Arc::new(Checks {
            key,
            validation,
            admin_scope: settings.admin_scope.clone(),
            max_token_seconds: settings.max_token_seconds,
        })))
    }

    fn caller(&self, token: &str) -> Result<Caller, String> {
        let checks = &*self.0;
        let claims = jsonwebtoken::decode::<Identity>(token, &checks.key, &checks.validation)
            .map_err(|e| e.to_string())?
            .claims;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let lifetime = claims.exp - claims.iat.unwrap_or(now);
        if lifetime > checks.max_token_seconds as f64 {
            return Err(format!(
                "the token is valid for {lifetime:.0} s; at most {} s are accepted",
                checks.max_token_seconds
            ));
        }
        // `sub` is the customer id everywhere behind the edge.
        if choreo_contract::field::CustomerId::parse(&*claims.sub).is_err() {
            return Err(
                "the token's sub is not a customer id (1-64 letters, digits, '-' or '_')".into(),
            );
        }
        Ok(Caller {
            admin: claims
                .scope
                .split_whitespace()
                .any(|s| s == checks.admin_scope),
            customer: claims.sub,
        })
    }
}

/// Answers 401 unless the request carries a valid bearer token, and hands
/// the caller to the handler.
pub(crate) async fn authenticate(
    State(verifier): State<Verifier>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return HttpError::unauthenticated(
            "send a token: Authorization: Bearer <JWT>",
            "Bearer realm=\"choreo\"",
        );
    };
    match verifier.caller(token) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(why) => {
            tracing::info!(%why, "token refused");
            HttpError::unauthenticated(
                format!("the token is not valid: {why}"),
                "Bearer realm=\"choreo\", error=\"invalid_token\"",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use choreo_kit::customer_token::{Claims, hs256_token};
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes!";

    fn verifier() -> Verifier {
        Verifier::new(&AuthSettings {
            hs256_secret: Some(SECRET.into()),
            ..Default::default()
        })
        .expect("valid settings")
    }

    #[test]
    fn a_signed_token_names_the_customer_and_its_admin_scope() {
        let token = hs256_token(SECRET, "alice", false, 60).expect("signs");
        assert_eq!(
            verifier().caller(&token),
            Ok(Caller {
                customer: "alice".into(),
                admin: false
            })
        );
        let admin = hs256_token(SECRET, "ops", true, 60).expect("signs");
        assert!(verifier().caller(&admin).is_ok_and(|c| c.admin));
    }

    #[test]
    fn expired_foreign_and_unsigned_tokens_are_refused() {
        let other = hs256_token(
            "another-secret-of-thirty-two-bytes-or-more",
            "alice",
            true,
            60,
        )
        .expect("signs");
        assert!(verifier().caller(&other).is_err());
        // Past the default 60 s leeway.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "alice".into(),
                iat: now - 660,
                exp: now - 600,
                scope: String::new(),
            },
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("signs");
        assert!(verifier().caller(&expired).is_err());
        // alg "none": header {"alg":"none"}, payload {"sub":"alice","exp":9999999999,"scope":"admin"}.
        let unsigned =
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OSwic2NvcGUiOiJhZG1pbiJ9.";
        assert!(verifier().caller(unsigned).is_err());
    }

    /// A key pair made for these tests only (`openssl genrsa 2048`).
    const RS256_PRIVATE: &str = include_str!("../tests/fixtures/rs256-test-private.pem");
    const RS256_PUBLIC: &str = include_str!("../tests/fixtures/rs256-test-public.pem");

    #[test]
    fn rs256_checks_the_issuers_signature_and_refuses_hs256_signed_with_the_public_key() {
        let unscoped = Verifier::new(&AuthSettings {
            rs256_public_key: Some(RS256_PUBLIC.into()),
            issuer: Some("https://id.example".into()),
            ..Default::default()
        });
        assert!(matches!(unscoped, Err(AuthConfigError::Rs256Unscoped)));
        let verifier = Verifier::new(&AuthSettings {
            rs256_public_key: Some(RS256_PUBLIC.into()),
            issuer: Some("https://id.example".into()),
            audience: Some("choreo".into()),
            ..Default::default()
        })
        .expect("valid settings");
        let claims = |iss: &str| serde_json::json!({"sub": "alice", "exp": in_a_minute(), "scope": "orders choreo:admin", "iss": iss, "aud": "choreo"});
        let private = EncodingKey::from_rsa_pem(RS256_PRIVATE.as_bytes()).expect("test key");
        let signed = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims("https://id.example"),
            &private,
        )
        .expect("signs");
        assert_eq!(
            verifier.caller(&signed),
            Ok(Caller {
                customer: "alice".into(),
                admin: true
            })
        );
        let other_issuer = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims("https://elsewhere.example"),
            &private,
        )
        .expect("signs");
        assert!(verifier.caller(&other_issuer).is_err());
        // The classic confusion: HS256 keyed with the public key text.
        let confused = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims("https://id.example"),
            &EncodingKey::from_secret(RS256_PUBLIC.as_bytes()),
        )
        .expect("signs");
        assert!(verifier.caller(&confused).is_err());
    }

    #[test]
    fn a_configured_issuer_must_be_in_the_token_and_sub_must_be_a_customer_id() {
        let verifier = Verifier::new(&AuthSettings {
            hs256_secret: Some(SECRET.into()),
            issuer: Some("https://id.example".into()),
            ..Default::default()
        })
        .expect("valid settings");
        let far = in_a_minute();
        let without_iss = sign(serde_json::json!({"sub": "alice", "exp": far}));
        assert!(verifier.caller(&without_iss).is_err());
        // A float exp and an aud list, as some issuers send them, are fine.
        let with_iss = sign(serde_json::json!({
            "sub": "alice", "exp": far as f64 + 0.5, "iss": "https://id.example", "aud": ["a", "b"]
        }));
        assert!(verifier.caller(&with_iss).is_ok());
        let odd_sub =
            sign(serde_json::json!({"sub": "auth0|123", "exp": far, "iss": "https://id.example"}));
        assert!(verifier.caller(&odd_sub).is_err());
    }

    /// `claims` signed with the test secret, as a caller would.
    fn sign(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("signs")
    }

    fn in_a_minute() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
            + 60
    }

    #[test]
    fn long_lived_and_not_yet_valid_tokens_are_refused_and_admin_is_namespaced() {
        let soon = in_a_minute();
        let now = soon - 60;
        // A year-long token, with or without iat.
        let year = sign(serde_json::json!({"sub": "alice", "iat": now, "exp": now + 365 * 86_400}));
        let refused = verifier().caller(&year).expect_err("too long");
        assert!(refused.contains("at most 86400 s"), "{refused}");
        let no_iat = sign(serde_json::json!({"sub": "alice", "exp": now + 365 * 86_400}));
        assert!(verifier().caller(&no_iat).is_err());
        // Not valid for another hour (past the leeway).
        let later =
            sign(serde_json::json!({"sub": "alice", "nbf": now + 3600, "exp": soon + 7200}));
        assert!(verifier().caller(&later).is_err());
        // Another application's bare `admin` scope grants nothing here.
        let bare = sign(serde_json::json!({"sub": "alice", "exp": soon, "scope": "admin"}));
        assert!(verifier().caller(&bare).is_ok_and(|c| !c.admin));
        let configured = Verifier::new(&AuthSettings {
            hs256_secret: Some(SECRET.into()),
            admin_scope: "shop/ops".into(),
            ..Default::default()
        })
        .expect("valid settings");
        let ops = sign(serde_json::json!({"sub": "alice", "exp": soon, "scope": "read shop/ops"}));
        assert!(configured.caller(&ops).is_ok_and(|c| c.admin));
    }

    #[test]
    fn settings_without_exactly_one_usable_key_are_refused() {
        assert!(matches!(
            Verifier::new(&AuthSettings::default()),
            Err(AuthConfigError::NoKey)
        ));
        assert!(matches!(
            Verifier::new(&AuthSettings {
                hs256_secret: Some("short".into()),
                ..Default::default()
            }),
            Err(AuthConfigError::ShortSecret(5))
        ));
        assert!(matches!(
            Verifier::new(&AuthSettings {
                hs256_secret: Some(SECRET.into()),
                rs256_public_key: Some("x".into()),
                ..Default::default()
            }),
            Err(AuthConfigError::TwoKeys)
        ));
        assert!(matches!(
            Verifier::new(&AuthSettings {
                rs256_public_key: Some("not a key".into()),
                issuer: Some("https://id.example".into()),
                audience: Some("choreo".into()),
                ..Default::default()
            }),
            Err(AuthConfigError::BadPublicKey(_))
        ));
    }
}
