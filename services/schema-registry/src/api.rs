//! The REST edge: the routes of Confluent's Schema Registry API that Avro
//! serializers, deserializers and tools call, with Confluent's shapes, so a
//! Choreo service is pointed at this registry or a real one by URL alone.
//!
//! Producers register (or look up) the schema of each event they publish and
//! put its global id in the message; consumers fetch the schema by that id.
//! Compatibility checks here are what keep an incompatible event schema from
//! ever reaching a topic that saga participants read.

use crate::{
    CONTENT_TYPE,
    avro::{self, ParsedSchema},
    compat::{self, Compatibility, Registered},
    error::ApiError,
    store::{self, SubjectVersion, VersionRef},
};
use axum::{
    Router,
    body::Bytes,
    extract::{FromRequest, Path, Query, Request, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::json;
use sqlx::{PgExecutor, PgPool};

#[derive(Clone)]
struct AppState {
    pool: PgPool,
    /// Applies when neither `PUT /config` nor the subject set a level.
    default_level: Compatibility,
}

/// The compatibility levels decide which schema changes every producer may
/// make: only an operator, with the admin key, may read or set them.
fn config_routes() -> Router<AppState> {
    Router::new()
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route_layer(axum::middleware::from_fn(
            choreo_kit::internal_auth::admin_only,
        ))
}

pub(crate) fn router(pool: PgPool, default_level: Compatibility) -> Router {
    Router::new()
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route("/subjects/{subject}/versions/{version}", get(get_version))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/ids/{id}", get(get_schema))
        .route("/schemas/types", get(schema_types))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_all_versions),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_version),
        )
        .merge(config_routes())
        .route(
            "/health/live",
            get(|| async { Reply(json!({"status": "live", "service": "schema-registry"})) }),
        )
        .route("/health/ready", get(ready))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(AppState {
            pool,
            default_level,
        })
}

/// A JSON response with Confluent's media type.
struct Reply<T>(T);

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "response cannot be serialised");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

/// A JSON request body, parsed whatever its declared content type: Confluent
/// clients send `application/vnd.schemaregistry.v1+json`, curl users often
/// send nothing, and all of them must work.
struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::UnreadableBody(e.status(), e.body_text()))?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            if e.is_data() {
                ApiError::UnprocessableBody(e.to_string())
            } else {
                ApiError::MalformedJson(e.to_string())
            }
        })
    }
}

/// `{"schema": "...", "schemaType": "AVRO", "references": []}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: Option<String>,
    schema_type: Option<String>,
    references: Option<Vec<serde_json::Value>>,
}

impl SchemaRequest {
    fn parse(&self) -> Result<ParsedSchema, ApiError> {
        if let Some(kind) = &self.schema_type {
            if !kind.eq_ignore_ascii_case("AVRO") {
                return Err(ApiError::InvalidSchema(format!(
                    "schema type {kind:?} is not supported; this registry holds AVRO schemas only"
                )));
            }
        }
        if self.references.as_ref().is_some_and(|r| !r.is_empty()) {
            return Err(ApiError::InvalidSchema(
                "schema references are not supported; inline the referenced types".into(),
            ));
        }
        let text = self
            .schema
            .as_deref()
            .ok_or_else(|| ApiError::InvalidSchema("the request has no \"schema\" field".into()))?;
        avro::parse(text).map_err(|e| ApiError::InvalidSchema(e.to_string()))
    }
}

#[derive(Serialize)]
struct SubjectVersionBody {
    subject: String,
    version: i32,
    id: i32,
    schema: String,
}

impl SubjectVersionBody {
    fn new(subject: String, v: SubjectVersion) -> Self {
        Self {
            subject,
            version: v.version,
            id: v.schema_id,
            schema: v.schema_text,
        }
    }
}

/// `latest` (or Confluent's `-1`) or a version number from 1 to 2^31-1.
fn parse_version(text: &str) -> Result<VersionRef, ApiError> {
    if text.eq_ignore_ascii_case("latest") || text == "-1" {
        return Ok(VersionRef::Latest);
    }
    match text.parse::<i32>() {
        Ok(n) if n > 0 => Ok(VersionRef::Number(n)),
        _ => Err(ApiError::InvalidVersion(text.to_owned())),
    }
}

/// The subject's own level, else the global one, else the configured default.
async fn effective_level(
    conn: &mut sqlx::PgConnection,
    state: &AppState,
    subject: &str,
) -> Result<Compatibility, ApiError> {
    if let Some(level) = store::subject_level(&mut *conn, subject).await? {
        return Ok(level);
    }
    global_level(conn, state).await
}

async fn global_level(
    ex: impl PgExecutor<'_>,
    state: &AppState,
) -> Result<Compatibility, ApiError> {
    Ok(store::global_level(ex)
        .await?
        .unwrap_or(state.default_level))
}

/// Parses the stored versions a candidate is checked against.
fn registered(versions: &[SubjectVersion]) -> Result<Vec<Registered>, ApiError> {
    versions
        .iter()
        .map(|v| {
            avro::parse(&v.schema_text)
                .map(|p| Registered {
                    version: v.version,
                    schema: p.schema,
                })
                .map_err(|e| ApiError::UnreadableStoredSchema {
                    id: v.schema_id,
                    reason: e.to_string(),
                })
        })
        .collect()
}

async fn check_against(
    state: &AppState,
    subject: &str,
    candidate: &ParsedSchema,
    versions: &[SubjectVersion],
) -> Result<Vec<String>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let level = effective_level(&mut conn, state, subject).await?;
    Ok(compat::check(
        level,
        &candidate.schema,
        &registered(versions)?,
    ))
}

/// `POST /subjects/{subject}/versions`: registers a schema as the subject's
/// next version, or returns its id if the subject already has it.
#[tracing::instrument(skip_all, fields(subject = %subject))]
async fn register(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Body(request): Body<SchemaRequest>,
) -> Result<Reply<serde_json::Value>, ApiError> {
    let candidate = request.parse()?;
    let mut tx = state.pool.begin().await?;
    // Held until commit: the version read below stays the latest, and the
    // compatibility verdict stays true, until this version is written.
    store::lock_subject(&mut tx, &subject).await?;
    let versions = store::versions(&mut *tx, &subject).await?;
    if let Some(existing) = versions
        .iter()
        .find(|v| v.normalized == candidate.normalized)
    {
        return Ok(Reply(json!({"id": existing.schema_id})));
    }
    let level = effective_level(&mut tx, &state, &subject).await?;
    let messages = compat::check(level, &candidate.schema, &registered(&versions)?);
    if !messages.is_empty() {
        tracing::info!(subject = %subject, level = %level, "incompatible schema refused");
        return Err(ApiError::Incompatible { subject, messages });
    }
    let version = match versions.last() {
        None => 1,
        Some(latest) => latest
            .version
            .checked_add(1)
            .ok_or_else(|| ApiError::VersionsExhausted(subject.clone()))?,
    };
    let id = store::schema_id(&mut tx, &candidate).await?;
    store::insert_version(&mut *tx, &subject, version, id).await?;
    tx.commit().await?;
    tracing::info!(subject = %subject, version, schema_id = id, "schema registered");
    Ok(Reply(json!({"id": id})))
}

/// `POST /subjects/{subject}`: which version of the subject, if any, is this
/// schema?
#[tracing::instrument(skip_all, fields(subject = %subject))]
async fn lookup(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Body(request): Body<SchemaRequest>,
) -> Result<Reply<SubjectVersionBody>, ApiError> {
    let candidate = request.parse()?;
    let versions = store::versions(&state.pool, &subject).await?;
    if versions.is_empty() {
        return Err(ApiError::SubjectNotFound(subject));
    }
    let found = versions
        .into_iter()
        .find(|v| v.normalized == candidate.normalized)
        .ok_or(ApiError::SchemaNotFound)?;
    Ok(Reply(SubjectVersionBody::new(subject, found)))
}

#[tracing::instrument(skip_all)]
async fn list_subjects(State(state): State<AppState>) -> Result<Reply<Vec<String>>, ApiError> {
    Ok(Reply(store::subjects(&state.pool).await?))
}

#[tracing::instrument(skip_all, fields(subject = %subject))]
async fn list_versions(
    State(state): State<AppState>,
    Path(subject): Path<String>,
) -> Result<Reply<Vec<i32>>, ApiError> {
    let versions = store::versions(&state.pool, &subject).await?;
    if versions.is_empty() {
        return Err(ApiError::SubjectNotFound(subject));
    }
    Ok(Reply(versions.into_iter().map(|v| v.version).collect()))
}

/// Resolves a version of a subject, telling an unknown subject from an
/// unknown version as Confluent does.
async fn find_version(
    state: &AppState,
    subject: &str,
    version: &str,
) -> Result<SubjectVersion, ApiError> {
    let version = parse_version(version)?;
    if let Some(found) = store::version(&state.pool, subject, version).await? {
        return Ok(found);
    }
    match version {
        VersionRef::Number(n) if store::subject_exists(&state.pool, subject).await? => {
            Err(ApiError::VersionNotFound(n))
        }
        _ => Err(ApiError::SubjectNotFound(subject.to_owned())),
    }
}

#[tracing::instrument(skip_all, fields(subject = %subject, version = %version))]
async fn get_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Reply<SubjectVersionBody>, ApiError> {
    let found = find_version(&state, &subject, &version).await?;
    Ok(Reply(SubjectVersionBody::new(subject, found)))
}

/// The schema itself, not wrapped in an object.
#[tracing::instrument(skip_all, fields(subject = %subject, version = %version))]
async fn get_version_schema(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let found = find_version(&state, &subject, &version).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], found.schema_text).into_response())
}

#[tracing::instrument(skip_all, fields(schema_id = %id))]
async fn get_schema(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Reply<serde_json::Value>, ApiError> {
    // Confluent's id is an integer path parameter; anything else matches no
    // route there, so it matches none here either.
    let id: i32 = id.parse().map_err(|_| ApiError::RouteNotFound)?;
    match store::schema_text(&state.pool, id).await? {
        Some(schema) => Ok(Reply(json!({"schema": schema}))),
        None => Err(ApiError::SchemaIdNotFound(id)),
    }
}

async fn schema_types() -> Reply<[&'static str; 1]> {
    Reply(["AVRO"])
}

#[derive(Deserialize)]
struct CompatibilityParams {
    verbose: Option<String>,
}

fn compatibility_reply(
    messages: Vec<String>,
    params: &CompatibilityParams,
) -> Reply<serde_json::Value> {
    let is_compatible = messages.is_empty();
    if params.verbose.as_deref() == Some("true") {
        Reply(json!({"is_compatible": is_compatible, "messages": messages}))
    } else {
        Reply(json!({"is_compatible": is_compatible}))
    }
}

/// `POST /compatibility/subjects/{subject}/versions/{version}`: would this
/// schema be compatible with that one version, under the subject's level?
#[tracing::instrument(skip_all, fields(subject = %subject, version = %version))]
async fn check_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Query<CompatibilityParams>,
    Body(request): Body<SchemaRequest>,
) -> Result<Reply<serde_json::Value>, ApiError> {
    let against = match find_version(&state, &subject, &version).await {
        Ok(found) => vec![found],
        // Nothing registered yet: any schema may become the first version.
        Err(ApiError::SubjectNotFound(_))
            if matches!(parse_version(&version), Ok(VersionRef::Latest)) =>
        {
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let candidate = request.parse()?;
    let messages = check_against(&state, &subject, &candidate, &against).await?;
    Ok(compatibility_reply(messages, &params))
}

/// `POST /compatibility/subjects/{subject}/versions`: would registering this
/// schema pass the subject's level (against every version a transitive level
/// names)?
#[tracing::instrument(skip_all, fields(subject = %subject))]
async fn check_all_versions(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<CompatibilityParams>,
    Body(request): Body<SchemaRequest>,
) -> Result<Reply<serde_json::Value>, ApiError> {
    let candidate = request.parse()?;
    let versions = store::versions(&state.pool, &subject).await?;
    let messages = check_against(&state, &subject, &candidate, &versions).await?;
    Ok(compatibility_reply(messages, &params))
}

/// `{"compatibility": "FULL"}`.
#[derive(Deserialize)]
struct ConfigRequest {
    compatibility: Option<String>,
}

impl ConfigRequest {
    fn level(&self) -> Result<Compatibility, ApiError> {
        let text = self.compatibility.as_deref().unwrap_or_default();
        text.parse()
            .map_err(|_| ApiError::InvalidCompatibility(text.to_owned()))
    }
}

#[tracing::instrument(skip_all)]
async fn get_global_config(
    State(state): State<AppState>,
) -> Result<Reply<serde_json::Value>, ApiError> {
    let level = global_level(&state.pool, &state).await?;
    Ok(Reply(json!({"compatibilityLevel": level})))
}

#[tracing::instrument(skip_all)]
async fn put_global_config(
    State(state): State<AppState>,
    Body(request): Body<ConfigRequest>,
) -> Result<Reply<serde_json::Value>, ApiError> {
    let level = request.level()?;
    store::set_global_level(&state.pool, level).await?;
    tracing::info!(level = %level, "global compatibility level set");
    Ok(Reply(json!({"compatibility": level})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubjectConfigParams {
    default_to_global: Option<String>,
}

#[tracing::instrument(skip_all, fields(subject = %subject))]
async fn get_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(params): Query<SubjectConfigParams>,
) -> Result<Reply<serde_json::Value>, ApiError> {
    let level = match store::subject_level(&state.pool, &subject).await? {
        Some(level) => level,
        None if params.default_to_global.as_deref() == Some("true") => {
            global_level(&state.pool, &state).await?
        }
        None => return Err(ApiError::SubjectLevelNotConfigured(subject)),
    };
    Ok(Reply(json!({"compatibilityLevel": level})))
}

#[tracing::instrument(skip_all, fields(subject = %subject))]
async fn put_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Body(request): Body<ConfigRequest>,
) -> Result<Reply<serde_json::Value>, ApiError> {
    let level = request.level()?;
    store::set_subject_level(&state.pool, &subject, level).await?;
    tracing::info!(subject = %subject, level = %level, "subject compatibility level set");
    Ok(Reply(json!({"compatibility": level})))
}

/// Returns the subject to the global level; answers with the level removed.
#[tracing::instrument(skip_all, fields(subject = %subject))]
async fn delete_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
) -> Result<Reply<serde_json::Value>, ApiError> {
    match store::delete_subject_level(&state.pool, &subject).await? {
        Some(level) => Ok(Reply(json!({"compatibilityLevel": level}))),
        None => Err(ApiError::SubjectLevelNotConfigured(subject)),
    }
}

/// Ours, not Confluent's: ready means the database answers, since the
/// registry can serve nothing without it.
async fn ready(State(state): State<AppState>) -> Response {
    match store::ping(&state.pool).await {
        Ok(()) => Reply(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %crate::error::error_chain(&e), "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Reply(json!({"status": "not_ready"})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_latest_or_positive_numbers() {
        assert_eq!(parse_version("latest").ok(), Some(VersionRef::Latest));
        assert_eq!(parse_version("-1").ok(), Some(VersionRef::Latest));
        assert_eq!(parse_version("3").ok(), Some(VersionRef::Number(3)));
        for bad in ["0", "-2", "abc", "2147483648", ""] {
            assert!(parse_version(bad).is_err(), "{bad}");
        }
    }
}
