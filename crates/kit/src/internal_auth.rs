//! Who may call a Choreo process from inside the cluster.
//!
//! Nothing is trusted for its network address. Every call to a saga
//! service, the provider stand-in or the schema registry carries a JWT the
//! caller signs for that one call: HS256, `aud` the callee's name, `iss`
//! the caller's, valid for a minute. There are two keys:
//!
//! - the **service key**, held by the edge and every service: it calls the
//!   APIs (orders, catalog, wallets, shipments, charges, schemas);
//! - the **admin key**, held by operators' tools (and by the callees, to
//!   check it): it calls everything, including the admin routes (fail
//!   points, the provider's faults, the registry's configuration).
//!
//! The edge, the one process the internet reaches, holds only the service
//! key: taking it over does not arm a fail point. `/health/*` and
//! `/metrics` stay open for probes and Prometheus; the chart's
//! NetworkPolicy decides who reaches those.

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::{
    fmt,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use crate::HttpError;

/// The schema registry's name as a callee (`aud`).
pub const REGISTRY: &str = "registry";
/// The payment provider stand-in's name as a callee (`aud`).
pub const PROVIDER: &str = "provider";

/// The shortest secret either key may be.
pub const MIN_SECRET_BYTES: usize = 32;
/// How long a token [`Signer`] makes is valid.
pub const TOKEN_SECONDS: u64 = 60;
/// The longest validity (`exp` - `iat`) a callee accepts: a token that
/// leaks is worthless within minutes.
pub const MAX_TOKEN_SECONDS: u64 = 300;
/// Clock difference tolerated between caller and callee.
const LEEWAY_SECONDS: u64 = 30;

/// The keys, as configured (`internal_auth.*`,
/// `CHOREO_INTERNAL_AUTH__SERVICE_SECRET` and `…__ADMIN_SECRET`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InternalAuthSettings {
    /// The service key: at least 32 bytes. Every process but the tools.
    pub service_secret: Option<String>,
    /// The admin key: at least 32 bytes, not the service key. Operators'
    /// tools sign with it; callees check it; the edge needs none.
    pub admin_secret: Option<String>,
}

impl fmt::Debug for InternalAuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |s: &Option<String>| s.as_ref().map(|_| "[redacted]");
        f.debug_struct("InternalAuthSettings")
            .field("service_secret", &shown(&self.service_secret))
            .field("admin_secret", &shown(&self.admin_secret))
            .finish()
    }
}

/// A key is missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum InternalAuthError {
    #[error(
        "no {0} configured: set internal_auth.{0} (CHOREO_INTERNAL_AUTH__{upper}) to at least 32 random bytes; nothing inside the cluster is trusted without it",
        upper = .0.to_ascii_uppercase()
    )]
    Missing(&'static str),
    #[error("internal_auth.{0} is {1} bytes; use at least 32")]
    Short(&'static str, usize),
    #[error(
        "internal_auth.service_secret and internal_auth.admin_secret are the same; the admin key must be one only operators hold"
    )]
    Same,
}

impl InternalAuthSettings {
    fn service(&self) -> Result<&str, InternalAuthError> {
        usable("service_secret", self.service_secret.as_deref())
    }

    fn admin(&self) -> Result<&str, InternalAuthError> {
        let admin = usable("admin_secret", self.admin_secret.as_deref())?;
        if self.service_secret.as_deref() == Some(admin) {
            return Err(InternalAuthError::Same);
        }
        Ok(admin)
    }
}

fn usable<'a>(name: &'static str, secret: Option<&'a str>) -> Result<&'a str, InternalAuthError> {
    match secret {
        None => Err(InternalAuthError::Missing(name)),
        Some(s) if s.len() < MIN_SECRET_BYTES => Err(InternalAuthError::Short(name, s.len())),
        Some(s) => Ok(s),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Signs the calls one process makes to the others.
#[derive(Clone)]
pub struct Signer {
    key: Arc<EncodingKey>,
    caller: Arc<str>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Signs with the service key, as `caller`.
    ///
    /// # Errors
    /// When the service key is missing or too short.
    pub fn service(
        settings: &InternalAuthSettings,
        caller: &str,
    ) -> Result<Self, InternalAuthError> {
        Ok(Self::with_secret(settings.service()?, caller))
    }

    /// Signs with the admin key, as the operator's tool `caller`.
    ///
    /// # Errors
    /// When the admin key is missing, too short or the service key.
    pub fn admin(settings: &InternalAuthSettings, caller: &str) -> Result<Self, InternalAuthError> {
        Ok(Self::with_secret(settings.admin()?, caller))
    }

    /// The admin key when configured (a tool run by an operator), else the
    /// service key (the same tool run with a service's own configuration).
    ///
    /// # Errors
    /// When neither key is usable.
    pub fn strongest(
        settings: &InternalAuthSettings,
        caller: &str,
    ) -> Result<Self, InternalAuthError> {
        match settings.admin_secret {
            Some(_) => Self::admin(settings, caller),
            None => Self::service(settings, caller),
        }
    }

    fn with_secret(secret: &str, caller: &str) -> Self {
        Self {
            key: Arc::new(EncodingKey::from_secret(secret.as_bytes())),
            caller: caller.into(),
        }
    }

    /// A token for one call to `audience`, valid for [`TOKEN_SECONDS`].
    pub fn token(&self, audience: &str) -> String {
        let now = now();
        let claims = Claims {
            iss: self.caller.to_string(),
            aud: audience.to_owned(),
            iat: now,
            nbf: now,
            exp: now + TOKEN_SECONDS,
        };
        // HS256 over a small JSON object cannot fail to sign.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key).unwrap_or_default()
    }

    /// The `Authorization` header for one call to `audience`, marked
    /// sensitive so that no client logs it.
    pub fn authorization(&self, audience: &str) -> HeaderValue {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.token(audience)))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        value.set_sensitive(true);
        value
    }
}

/// Who made a call that passed the gate, for handlers that care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The caller's name (`iss`).
    pub caller: String,
    /// Signed with the admin key.
    pub admin: bool,
}

/// Checks the credential on every call to one process.
#[derive(Clone)]
pub struct Gate(Arc<GateKeys>);

struct GateKeys {
    service: DecodingKey,
    admin: DecodingKey,
    validation: Validation,
    audience: String,
}

impl Gate {
    /// A gate for the process `audience` (its service name), which needs
    /// both keys.
    ///
    /// # Errors
    /// When either key is missing or unusable.
    pub fn new(settings: &InternalAuthSettings, audience: &str) -> Result<Self, InternalAuthError> {
        let admin = settings.admin()?;
        let service = settings.service()?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
        validation.set_audience(&[audience]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        Ok(Self(Arc::new(GateKeys {
            service: DecodingKey::from_secret(service.as_bytes()),
            admin: DecodingKey::from_secret(admin.as_bytes()),
            validation,
            audience: audience.to_owned(),
        })))
    }

    /// `router` with every route but the probes and the scrape behind the
    /// gate. Routes that need the admin key add [`admin_only`] themselves.
    pub fn protect(&self, router: Router) -> Router {
        router.layer(middleware::from_fn_with_state(self.clone(), authenticate))
    }

    fn check(&self, token: &str) -> Result<Credential, String> {
        let keys = &*self.0;
        let (claims, admin) =
            match jsonwebtoken::decode::<Claims>(token, &keys.service, &keys.validation) {
                Ok(data) => (data.claims, false),
                Err(service_error) => {
                    match jsonwebtoken::decode::<Claims>(token, &keys.admin, &keys.validation) {
                        Ok(data) => (data.claims, true),
                        // The service key's verdict: "invalid signature" when
                        // neither key signed it, else what is wrong with it.
                        Err(_) => return Err(service_error.to_string()),
                    }
                }
            };
        if claims.exp.saturating_sub(claims.iat) > MAX_TOKEN_SECONDS {
            return Err(format!(
                "the token is valid for {} s; {} s at most",
                claims.exp.saturating_sub(claims.iat),
                MAX_TOKEN_SECONDS
            ));
        }
        Ok(Credential {
            caller: claims.iss,
            admin,
        })
    }
}

/// Open to anyone who reaches the process: the probes and the scrape.
fn is_open(path: &str) -> bool {
    path.starts_with("/health/") || path == "/metrics"
}

async fn authenticate(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    if is_open(request.uri().path()) {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let audience = &gate.0.audience;
    let Some(token) = token else {
        return unauthenticated(format!(
            "the {audience} API takes calls from the edge, the other services and operators only: send Authorization: Bearer <a token signed with the service or admin key, aud {audience}>"
        ));
    };
    match gate.check(token) {
        Ok(credential) => {
            request.extensions_mut().insert(credential);
            next.run(request).await
        }
        Err(why) => {
            tracing::warn!(%why, "internal credential refused");
            unauthenticated(format!("the credential is not valid: {why}"))
        }
    }
}

fn unauthenticated(message: String) -> Response {
    HttpError::unauthenticated(message, "Bearer realm=\"choreo-internal\"")
}

/// A route layer: 403 unless the call was signed with the admin key.
pub async fn admin_only(request: Request, next: Next) -> Response {
    let admin = request
        .extensions()
        .get::<Credential>()
        .is_some_and(|c| c.admin);
    if admin {
        next.run(request).await
    } else {
        HttpError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this route needs a credential signed with the admin key (an operator's tool)",
        )
        .into_response()
    }
}

/// Random secrets for a deployment that makes its own (`choreo up`, the
/// tests): 256 bits each from the OS generator, as hex.
pub fn generate() -> InternalAuthSettings {
    InternalAuthSettings {
        service_secret: Some(random_secret()),
        admin_secret: Some(random_secret()),
    }
}

/// 64 hex characters from a generator seeded by the OS (`rand`'s
/// cryptographically secure thread generator).
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> InternalAuthSettings {
        generate()
    }

    #[test]
    fn a_signed_call_passes_for_its_audience_only_and_the_key_decides_admin() {
        let keys = settings();
        let gate = Gate::new(&keys, "payment").expect("keys");
        let edge = Signer::service(&keys, "edge").expect("key");
        assert_eq!(
            gate.check(&edge.token("payment")),
            Ok(Credential {
                caller: "edge".into(),
                admin: false
            })
        );
        assert!(gate.check(&edge.token("order")).is_err());
        let tool = Signer::admin(&keys, "choreo").expect("key");
        assert!(gate.check(&tool.token("payment")).is_ok_and(|c| c.admin));
        let stranger = Signer::service(&settings(), "edge").expect("key");
        assert!(gate.check(&stranger.token("payment")).is_err());
    }

    #[test]
    fn long_lived_future_and_unsigned_tokens_are_refused() {
        let keys = settings();
        let gate = Gate::new(&keys, "order").expect("keys");
        let key = EncodingKey::from_secret(
            keys.service_secret
                .as_deref()
                .unwrap_or_default()
                .as_bytes(),
        );
        let sign = |iat: u64, nbf: u64, exp: u64| {
            let claims = Claims {
                iss: "edge".into(),
                aud: "order".into(),
                iat,
                nbf,
                exp,
            };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("signs")
        };
        let now = now();
        assert!(gate.check(&sign(now, now, now + 60)).is_ok());
        let day = gate
            .check(&sign(now, now, now + 86_400))
            .expect_err("too long");
        assert!(day.contains("300 s at most"), "{day}");
        assert!(
            gate.check(&sign(now, now + 600, now + 700)).is_err(),
            "not yet valid"
        );
        assert!(
            gate.check(&sign(now - 700, now - 700, now - 600)).is_err(),
            "expired"
        );
        // alg "none", claims {"iss":"edge","aud":"order","iat":1,"nbf":1,"exp":9999999999}.
        let unsigned = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJlZGdlIiwiYXVkIjoib3JkZXIiLCJpYXQiOjEsIm5iZiI6MSwiZXhwIjo5OTk5OTk5OTk5fQ.";
        assert!(gate.check(unsigned).is_err());
    }

    #[test]
    fn missing_short_and_shared_keys_are_refused() {
        assert!(matches!(
            Gate::new(&InternalAuthSettings::default(), "order"),
            Err(InternalAuthError::Missing("admin_secret"))
        ));
        let short = InternalAuthSettings {
            service_secret: Some("short".into()),
            ..generate()
        };
        assert!(matches!(
            Signer::service(&short, "edge"),
            Err(InternalAuthError::Short("service_secret", 5))
        ));
        let same = random_secret();
        let shared = InternalAuthSettings {
            service_secret: Some(same.clone()),
            admin_secret: Some(same),
        };
        assert!(matches!(
            Gate::new(&shared, "order"),
            Err(InternalAuthError::Same)
        ));
        let keys = generate();
        let secret = keys.service_secret.clone().unwrap_or_default();
        assert!(!format!("{keys:?}").contains(&secret));
    }
}
