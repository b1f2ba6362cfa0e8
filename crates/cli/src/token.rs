//! `choreo token`: signs a bearer token the edge accepts, and keeps the
//! secret `choreo up` gives its edge.

use anyhow::Context;
use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// The customer the token speaks for (its `sub`).
    #[arg(long)]
    customer: String,
    /// Grant the admin scope (catalog, wallets, every customer's orders).
    #[arg(long)]
    admin: bool,
    /// How long the token stays valid.
    #[arg(long, default_value_t = 24)]
    ttl_hours: u64,
    /// The edge's HS256 secret; by default the one `choreo up` keeps in its
    /// data folder.
    #[arg(long, env = "CHOREO_AUTH__HS256_SECRET", hide_env_values = true)]
    secret: Option<String>,
    #[arg(long, env = "CHOREO_DATA_DIR", default_value = ".choreo")]
    data_dir: PathBuf,
}

pub(crate) fn run(args: TokenArgs) -> anyhow::Result<()> {
    let secret = match args.secret {
        Some(secret) => secret,
        None => {
            let file = secret_file(&args.data_dir);
            std::fs::read_to_string(&file)
                .with_context(|| {
                    format!(
                        "reading {}; run `choreo up` first or pass --secret",
                        file.display()
                    )
                })?
                .trim()
                .to_owned()
        }
    };
    let token = choreo_edge::hs256_token(
        &secret,
        &args.customer,
        args.admin,
        args.ttl_hours.saturating_mul(3600),
    )?;
    println!("{token}");
    Ok(())
}

/// A client builder that sends `token` as the bearer token of every request.
pub(crate) fn bearer(token: &str) -> anyhow::Result<reqwest::ClientBuilder> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    Ok(reqwest::Client::builder().default_headers(headers))
}

fn secret_file(data_dir: &Path) -> PathBuf {
    data_dir.join("edge-token-secret")
}

/// The secret the local edge signs with: `CHOREO_AUTH__HS256_SECRET` when
/// set, else the one kept in `data_dir` (made on first use, readable only by
/// its owner), so tokens stay valid across restarts.
pub(crate) fn local_secret(data_dir: &Path) -> anyhow::Result<String> {
    if let Ok(secret) = std::env::var("CHOREO_AUTH__HS256_SECRET") {
        // The edge refuses a shorter one and would only restart in a loop.
        anyhow::ensure!(
            secret.len() >= 32,
            "CHOREO_AUTH__HS256_SECRET is {} bytes; use at least 32",
            secret.len()
        );
        return Ok(secret);
    }
    let file = secret_file(data_dir);
    if let Ok(secret) = std::fs::read_to_string(&file) {
        return Ok(secret.trim().to_owned());
    }
    // 244 random bits from the OS generator, as 64 hex characters.
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| f.write_all(secret.as_bytes()))
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(secret)
}
