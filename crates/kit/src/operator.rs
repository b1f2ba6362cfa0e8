//! The operator's credential: how a tool run by hand (`choreo dlq`,
//! `choreo schemas`, a service binary's `replay`) finds the admin key it
//! signs its calls with.
//!
//! `choreo up` keeps the local platform's keys in its data folder; a tool
//! takes the key from the environment first, so that the same tool works
//! against a deployment whose keys come from its secrets.

use crate::internal_auth::{InternalAuthError, InternalAuthSettings, Signer};
use std::path::{Path, PathBuf};

/// The environment variable that holds the service key.
pub const SERVICE_SECRET_ENV: &str = "CHOREO_INTERNAL_AUTH__SERVICE_SECRET";
/// The environment variable that holds the admin key.
pub const ADMIN_SECRET_ENV: &str = "CHOREO_INTERNAL_AUTH__ADMIN_SECRET";

/// Where `choreo up` keeps the service key of the platform in `data_dir`.
pub fn service_secret_file(data_dir: &Path) -> PathBuf {
    data_dir.join("internal-service-secret")
}

/// Where `choreo up` keeps the admin key of the platform in `data_dir`.
pub fn admin_secret_file(data_dir: &Path) -> PathBuf {
    data_dir.join("internal-admin-secret")
}

#[derive(Debug, thiserror::Error)]
pub enum OperatorKeyError {
    #[error(
        "no admin key: set {ADMIN_SECRET_ENV} (the platform's internal_auth.admin_secret), or run from where `choreo up` keeps {}",
        file.display()
    )]
    Missing {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] InternalAuthError),
}

/// The operator's credential: the admin key from [`ADMIN_SECRET_ENV`],
/// else the one `choreo up` keeps in `data_dir`. Never made here: a key
/// nobody else holds opens nothing.
///
/// # Errors
/// When neither holds a key, or the key is too short.
pub fn operator(data_dir: &Path) -> Result<Signer, OperatorKeyError> {
    let secret = match std::env::var(ADMIN_SECRET_ENV) {
        Ok(secret) => secret,
        Err(_) => {
            let file = admin_secret_file(data_dir);
            std::fs::read_to_string(&file)
                .map_err(|source| OperatorKeyError::Missing { file, source })?
                .trim()
                .to_owned()
        }
    };
    Ok(admin(&secret)?)
}

/// The credential of a tool that holds the admin key `secret`.
///
/// # Errors
/// When the key is too short.
pub fn admin(secret: &str) -> Result<Signer, InternalAuthError> {
    let keys = InternalAuthSettings {
        service_secret: None,
        admin_secret: Some(secret.to_owned()),
    };
    Signer::admin(&keys, "choreo")
}

/// The credential of a tool run with a service's configuration (a replay,
/// a rebuild): that configuration's keys when it has any (the admin key
/// first), else the operator's.
///
/// # Errors
/// When there is no usable key.
pub fn for_service_tool(
    configured: &InternalAuthSettings,
    data_dir: &Path,
) -> Result<Signer, OperatorKeyError> {
    if configured.admin_secret.is_none() && configured.service_secret.is_none() {
        return operator(data_dir);
    }
    Ok(Signer::strongest(configured, "choreo")?)
}
