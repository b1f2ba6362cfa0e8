//! The secrets of a local platform: the secret the edge signs customers'
//! tokens with, and the internal keys (`choreo_kit::internal_auth`). The
//! operator's credential the tools sign their calls with is
//! `choreo_kit::operator`, which finds the admin key kept here.

use anyhow::Context;
use choreo_kit::{
    internal_auth::InternalAuthSettings,
    operator::{ADMIN_SECRET_ENV, SERVICE_SECRET_ENV, admin_secret_file, service_secret_file},
};
use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

/// The keys `choreo up` gives its processes: each from the environment when
/// set, else kept in `data_dir` (made on first use, readable only by its
/// owner), so that the tools find the admin key there.
pub fn local(data_dir: &Path) -> anyhow::Result<InternalAuthSettings> {
    let key = |env: &str, file: PathBuf| match std::env::var(env) {
        Ok(secret) => Ok(secret),
        Err(_) => kept_secret(&file),
    };
    let keys = InternalAuthSettings {
        service_secret: Some(key(SERVICE_SECRET_ENV, service_secret_file(data_dir))?),
        admin_secret: Some(key(ADMIN_SECRET_ENV, admin_secret_file(data_dir))?),
    };
    // Refused here rather than by every process in a restart loop.
    choreo_kit::internal_auth::Gate::new(&keys, "choreo")?;
    Ok(keys)
}

/// A client builder that sends `token` as the bearer token of every request.
pub fn bearer(token: &str) -> anyhow::Result<reqwest::ClientBuilder> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    Ok(reqwest::Client::builder().default_headers(headers))
}

/// Where `choreo up` keeps the secret its edge signs customers' tokens with.
pub fn edge_secret_file(data_dir: &Path) -> PathBuf {
    data_dir.join("edge-token-secret")
}

/// The secret the local edge signs with: `CHOREO_AUTH__HS256_SECRET` when
/// set, else the one kept in `data_dir` (made on first use, readable only by
/// its owner), so tokens stay valid across restarts.
pub fn local_secret(data_dir: &Path) -> anyhow::Result<String> {
    if let Ok(secret) = std::env::var("CHOREO_AUTH__HS256_SECRET") {
        // The edge refuses a shorter one and would only restart in a loop.
        anyhow::ensure!(
            secret.len() >= 32,
            "CHOREO_AUTH__HS256_SECRET is {} bytes; use at least 32",
            secret.len()
        );
        return Ok(secret);
    }
    kept_secret(&edge_secret_file(data_dir))
}

/// The secret kept in `file`: read when it is there, else made (256 random
/// bits, as hex) and written readable only by its owner, so that what was
/// signed with it stays valid across restarts.
pub fn kept_secret(file: &Path) -> anyhow::Result<String> {
    if let Ok(secret) = std::fs::read_to_string(file) {
        return Ok(secret.trim().to_owned());
    }
    let secret = choreo_kit::internal_auth::random_secret();
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .and_then(|mut f| f.write_all(secret.as_bytes()))
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(secret)
}
