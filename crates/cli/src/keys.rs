//! The internal keys of a local platform (`choreo_kit::internal_auth`), and
//! the operator's credential the tools sign their calls to the services and
//! the registry with.

use choreo_kit::internal_auth::{InternalAuthSettings, Signer};
use std::path::{Path, PathBuf};

const SERVICE_ENV: &str = "CHOREO_INTERNAL_AUTH__SERVICE_SECRET";
const ADMIN_ENV: &str = "CHOREO_INTERNAL_AUTH__ADMIN_SECRET";

fn service_file(data_dir: &Path) -> PathBuf {
    data_dir.join("internal-service-secret")
}

fn admin_file(data_dir: &Path) -> PathBuf {
    data_dir.join("internal-admin-secret")
}

/// The keys `choreo up` gives its processes: each from the environment when
/// set, else kept in `data_dir` (made on first use, readable only by its
/// owner), so that the tools find the admin key there.
pub(crate) fn local(data_dir: &Path) -> anyhow::Result<InternalAuthSettings> {
    let key = |env: &str, file: PathBuf| match std::env::var(env) {
        Ok(secret) => Ok(secret),
        Err(_) => crate::token::kept_secret(&file),
    };
    let keys = InternalAuthSettings {
        service_secret: Some(key(SERVICE_ENV, service_file(data_dir))?),
        admin_secret: Some(key(ADMIN_ENV, admin_file(data_dir))?),
    };
    // Refused here rather than by every process in a restart loop.
    choreo_kit::internal_auth::Gate::new(&keys, "choreo")?;
    Ok(keys)
}

/// The operator's credential: the admin key from
/// `CHOREO_INTERNAL_AUTH__ADMIN_SECRET`, else the one `choreo up` keeps in
/// `data_dir`. Never made here: a key nobody else holds opens nothing.
pub(crate) fn operator(data_dir: &Path) -> anyhow::Result<Signer> {
    let secret = match std::env::var(ADMIN_ENV) {
        Ok(secret) => secret,
        Err(_) => {
            let file = admin_file(data_dir);
            std::fs::read_to_string(&file)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "no admin key: set {ADMIN_ENV} (the platform's internal_auth.admin_secret), or run from where `choreo up` keeps {} ({e})",
                        file.display()
                    )
                })?
                .trim()
                .to_owned()
        }
    };
    admin(&secret)
}

/// The credential of a tool that holds the admin key `secret`.
pub(crate) fn admin(secret: &str) -> anyhow::Result<Signer> {
    let keys = InternalAuthSettings {
        service_secret: None,
        admin_secret: Some(secret.to_owned()),
    };
    Ok(Signer::admin(&keys, "choreo")?)
}

/// The credential of a tool run with a service's configuration (`choreo
/// replay`, `rebuild`): that configuration's keys when it has any (the
/// admin key first), else the operator's.
pub(crate) fn for_service_tool(
    configured: &InternalAuthSettings,
    data_dir: &Path,
) -> anyhow::Result<Signer> {
    if configured.admin_secret.is_none() && configured.service_secret.is_none() {
        return operator(data_dir);
    }
    Ok(Signer::strongest(configured, "choreo")?)
}
