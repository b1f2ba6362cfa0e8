//! The registry's errors: [`Error`] for starting and running the service, and
//! [`ApiError`] for what the REST edge answers.
//!
//! `ApiError` reproduces Confluent's error body and codes
//! (`{"error_code": 40401, "message": "Subject 'x' not found."}`) instead of
//! the `{"error": {...}}` body other Choreo APIs use, because Confluent's
//! serializers and tools branch on `error_code` and must work unchanged
//! against this registry or the real one.

use crate::CONTENT_TYPE;
use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use std::net::SocketAddr;

/// Why the registry could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("checking the internal credentials")]
    InternalAuth(#[source] choreo_kit::internal_auth::InternalAuthError),
    #[error("cannot connect to the registry database")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply the registry's database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("cannot listen for HTTP on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    #[error("the HTTP server task panicked or was aborted")]
    Join(#[source] tokio::task::JoinError),
}

/// An error answered to an HTTP client, in Confluent's shape.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(i32),
    #[error("Schema {0} not found.")]
    SchemaIdNotFound(i32),
    #[error("Schema not found")]
    SchemaNotFound,
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectLevelNotConfigured(String),
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between \
         [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    #[error(
        "Invalid compatibility level {0:?}. Valid values are none, backward, forward, full, \
         backward_transitive, forward_transitive, and full_transitive"
    )]
    InvalidCompatibility(String),
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", \
         details: [{}]", messages.join("; ")
    )]
    Incompatible {
        subject: String,
        messages: Vec<String>,
    },
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    UnprocessableBody(String),
    #[error("Subject '{0}' has reached the highest version number")]
    VersionsExhausted(String),
    /// The body could not be read at all (too large, connection cut).
    #[error("{1}")]
    UnreadableBody(StatusCode, String),
    #[error("HTTP 404 Not Found")]
    RouteNotFound,
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    #[error("Error in the backend data store")]
    Store(#[from] sqlx::Error),
    /// A stored schema no longer parses, e.g. after an apache-avro upgrade
    /// tightened validation. The registry cannot check compatibility against
    /// it, so it refuses rather than guess.
    #[error("Error in the backend data store")]
    UnreadableStoredSchema { id: i32, reason: String },
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, u32) {
        match self {
            Self::SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
            Self::VersionNotFound(_) => (StatusCode::NOT_FOUND, 40402),
            Self::SchemaIdNotFound(_) | Self::SchemaNotFound => (StatusCode::NOT_FOUND, 40403),
            Self::SubjectLevelNotConfigured(_) => (StatusCode::NOT_FOUND, 40408),
            Self::InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
            Self::InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42202),
            Self::InvalidCompatibility(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            Self::Incompatible { .. } => (StatusCode::CONFLICT, 409),
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, 400),
            Self::UnprocessableBody(_) | Self::VersionsExhausted(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, 422)
            }
            Self::UnreadableBody(status, _) => (*status, u32::from(status.as_u16())),
            Self::RouteNotFound => (StatusCode::NOT_FOUND, 404),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, 405),
            Self::Store(_) | Self::UnreadableStoredSchema { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, 50001)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Server faults are logged here, once, with their cause; the client
        // gets Confluent's opaque message.
        match &self {
            Self::Store(e) => tracing::error!(error = %error_chain(e), "database request failed"),
            Self::UnreadableStoredSchema { id, reason } => {
                tracing::error!(schema_id = id, %reason, "stored schema no longer parses");
            }
            _ => {}
        }
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({"error_code": code, "message": self.to_string()});
        (
            status,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            body.to_string(),
        )
            .into_response()
    }
}

pub(crate) use choreo_telemetry::error_chain;
