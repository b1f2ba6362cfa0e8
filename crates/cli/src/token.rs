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
    /// How long the token stays valid; the edge accepts at most 24 hours
    /// unless its `auth.max_token_seconds` says more.
    #[arg(long, default_value_t = 24)]
    ttl_hours: u64,
    /// The edge's HS256 secret; by default the one `choreo up` keeps in its
    /// data folder.
    #[arg(long, env = "CHOREO_AUTH__HS256_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Read the secret from standard input instead (as the chart's notes
    /// hand it to a pod: never in an argument or the environment).
    #[arg(long, conflicts_with = "secret")]
    secret_stdin: bool,
    #[arg(long, env = "CHOREO_DATA_DIR", default_value = ".choreo")]
    data_dir: PathBuf,
}

pub(crate) fn run(args: TokenArgs) -> anyhow::Result<()> {
    let secret = match args.secret {
        Some(secret) => secret,
        None if args.secret_stdin => {
            let mut secret = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut secret)
                .context("reading the secret from standard input")?;
            let secret = secret.trim().to_owned();
            anyhow::ensure!(!secret.is_empty(), "standard input held no secret");
            secret
        }
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
    let token = choreo_kit::customer_token::hs256_token(
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
    kept_secret(&secret_file(data_dir))
}

/// The secret kept in `file`: read when it is there, else made (256 random
/// bits, as hex) and written readable only by its owner, so that what was
/// signed with it stays valid across restarts.
pub(crate) fn kept_secret(file: &Path) -> anyhow::Result<String> {
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
