//! `GET /admin/fail-points` and `PUT /admin/fail-points/{name}`: how a
//! failure-injection suite arms the runtime's fail points
//! (`choreo_messaging::fail_points`) in a running service, at the moment its
//! schedule says.
//!
//! The body of a PUT is the point's actions in the `fail` crate's syntax:
//! `1*return` kills the service the next time it passes the point, `off`
//! disarms it. In a build without fail points every PUT is refused.

use axum::{
    Json, Router,
    extract::Path,
    http::StatusCode,
    routing::{get, put},
};
use choreo_kit::HttpError;
use choreo_messaging::fail_points::{self, FailPointError};
use serde_json::{Value, json};

/// Only operators' tools, with the admin key, may arm a fail point: it
/// kills the process.
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/admin/fail-points", get(list))
        .route("/admin/fail-points/{name}", put(arm))
        .route_layer(axum::middleware::from_fn(
            choreo_kit::internal_auth::admin_only,
        ))
}

async fn list() -> Json<Value> {
    let configured: Vec<Value> = fail_points::configured()
        .into_iter()
        .map(|(name, actions)| json!({"name": name, "actions": actions}))
        .collect();
    Json(json!({
        "built": fail_points::built(),
        "points": fail_points::ALL,
        "configured": configured,
    }))
}

async fn arm(Path(name): Path<String>, actions: String) -> Result<StatusCode, HttpError> {
    match fail_points::configure(&name, actions.trim()) {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e @ FailPointError::Unknown { .. }) => Err(HttpError::not_found(e.to_string())),
        Err(e @ FailPointError::NotBuilt) => Err(HttpError::new(
            StatusCode::CONFLICT,
            "fail_points_not_built",
            e.to_string(),
        )),
        Err(e) => Err(HttpError::invalid(e.to_string())),
    }
}
