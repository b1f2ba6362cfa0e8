//! The OpenAPI 3 document at `/openapi.json`.
//!
//! Paths come from the handlers' `#[utoipa::path]` annotations, gathered by
//! the router itself (`routes`), so a route cannot exist without its entry.
//! Request and response bodies are the contract's (`choreo_contract`): the
//! types the edge parses and the services behind it write. The edge passes
//! the services' answers on; the fuzz test (`saga-tests/tests/openapi.rs`)
//! checks every answer against this description. What is described here is
//! the edge's own: its error answers and its probes.

// The response types only describe JSON other services produce.
#![allow(dead_code)]

use utoipa::{
    IntoResponses, Modify, OpenApi, ToSchema,
    openapi::{
        RefOr, Response,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Choreo edge",
        description = "Orders, the catalog and wallets of a Choreo platform. Every /v1 route needs a bearer JWT; errors are {\"error\": {\"code\", \"message\"}}.",
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody, Error)),
    tags(
        (name = "orders", description = "Placing, following and cancelling orders"),
        (name = "catalog", description = "Products and stock"),
        (name = "admin", description = "Operator routes: need the admin scope"),
        (name = "health", description = "Probes; no token needed"),
    )
)]
pub(crate) struct ApiDoc;

/// The `bearer` security scheme every `/v1` route names.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every error answer.
#[derive(ToSchema)]
pub(crate) struct ErrorBody {
    error: Error,
}

#[derive(ToSchema)]
pub(crate) struct Error {
    /// Stable, for programs: `unauthenticated`, `forbidden`, `not_found`,
    /// `invalid_request`, `rate_limited`, `circuit_open`, …
    code: String,
    /// For people: what went wrong and what to do.
    message: String,
}

// The error answers routes share, each described once; a route's
// `responses(...)` names the sets that apply to it.

/// What any route under `/v1` answers without a valid token.
#[derive(IntoResponses)]
#[response(status = 401, description = "no token, or a bad one")]
pub(crate) struct Unauthenticated(ErrorBody);

/// What a route answers a token without the right to call it.
#[derive(IntoResponses)]
#[response(status = 403, description = "the token may not do this")]
pub(crate) struct Forbidden(ErrorBody);

/// What a route answers for something that is not there.
#[derive(IntoResponses)]
#[response(status = 404, description = "no such thing (or not the caller's)")]
pub(crate) struct NotFound(ErrorBody);

/// What a route answers a request it understood but refuses.
#[derive(IntoResponses)]
#[response(status = 422, description = "invalid request: every problem, by field")]
pub(crate) struct Invalid(ErrorBody);

/// What any route under `/v1` answers over a rate limit.
#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "over a rate limit; see Retry-After",
    headers(("retry-after" = u64, description = "seconds"))
)]
pub(crate) struct RateLimited(ErrorBody);

/// What a route taking a JSON body answers when the body itself is wrong.
#[derive(IntoResponses)]
pub(crate) enum BadBody {
    #[response(status = 400, description = "malformed JSON")]
    Malformed(ErrorBody),
    #[response(status = 413, description = "body over 64 KiB")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "body not JSON")]
    NotJson(ErrorBody),
}

/// What a route that calls a service behind answers when that call fails.
#[derive(IntoResponses)]
pub(crate) enum Upstream {
    #[response(status = 502, description = "the service behind failed")]
    Failed(ErrorBody),
    #[response(
        status = 503,
        description = "the service behind is unavailable or its breaker is open"
    )]
    Unavailable(ErrorBody),
    #[response(
        status = 504,
        description = "the service behind did not answer in time"
    )]
    TimedOut(ErrorBody),
}

/// What every `/v1` route that calls a service behind may answer besides
/// its own responses: no valid token, a rate limit, the service failing.
pub(crate) struct Proxied;

impl IntoResponses for Proxied {
    fn responses() -> Responses {
        union([
            Unauthenticated::responses(),
            RateLimited::responses(),
            Upstream::responses(),
        ])
    }
}

/// What a route taking a JSON body to change something may answer besides
/// [`Proxied`]: a caller without the right, a body that is not JSON or too
/// large, a value refused.
pub(crate) struct JsonWrite;

impl IntoResponses for JsonWrite {
    fn responses() -> Responses {
        union([
            Forbidden::responses(),
            BadBody::responses(),
            Invalid::responses(),
        ])
    }
}

/// Responses by status code.
type Responses = std::collections::BTreeMap<String, RefOr<Response>>;

fn union<const N: usize>(sets: [Responses; N]) -> Responses {
    sets.into_iter().flatten().collect()
}

/// A probe's answer.
#[derive(ToSchema)]
pub(crate) struct Health {
    status: String,
    service: String,
    #[schema(value_type = Option<Object>)]
    checks: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    breakers: Option<serde_json::Value>,
}
