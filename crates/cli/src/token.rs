//! `choreo token`: signs a bearer token the edge accepts, with the secret
//! `choreo up` gives its edge (`choreo_platform::keys`).

use anyhow::Context;
use choreo_platform::keys::edge_secret_file;
use std::path::PathBuf;

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
            let file = edge_secret_file(&args.data_dir);
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
