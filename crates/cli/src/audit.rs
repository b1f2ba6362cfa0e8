//! `choreo audit`: check the saga invariants across every service's
//! database, read-only; exit 1 when any is broken.

use crate::setup::database_url;
use anyhow::Context;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// Any database URL on the server that holds the service databases.
    #[arg(
        long,
        env = "CHOREO_PG_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pg_admin_url: String,
    /// The service databases are `<prefix>order`, `<prefix>inventory`, ….
    #[arg(long, env = "CHOREO_DB_PREFIX", default_value = "choreo_", value_parser = crate::setup::db_prefix)]
    db_prefix: String,
    /// Each service's database URL, overriding the two options above.
    #[arg(long)]
    order_db: Option<String>,
    #[arg(long)]
    inventory_db: Option<String>,
    #[arg(long)]
    payment_db: Option<String>,
    #[arg(long)]
    shipping_db: Option<String>,
    /// The payment provider's ledger, reconciled with payment's charges;
    /// by default `<prefix>provider` when that database exists (the
    /// stand-in's, as `choreo up` runs it).
    #[arg(long)]
    provider_db: Option<String>,
    /// The order service's saga deadline, in seconds.
    #[arg(long, env = "CHOREO_SAGA_DEADLINE_SECONDS", default_value_t = 30.0)]
    deadline: f64,
    /// Seconds past the deadline before a PENDING order is a violation.
    #[arg(long, default_value_t = 10.0)]
    grace: f64,
    /// Seconds after an order was decided by which compensation must be done.
    #[arg(long, default_value_t = 10.0)]
    settle: f64,
    /// Seconds by which an outbox row must be published.
    #[arg(long, default_value_t = 60.0)]
    outbox: f64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn seconds(value: f64, name: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{name} must be a non-negative number of seconds"))
}

/// Returns whether the audit was clean.
pub(crate) async fn run(args: AuditArgs) -> anyhow::Result<bool> {
    let db = |explicit: &Option<String>, service: &str| {
        explicit.clone().unwrap_or_else(|| {
            database_url(&args.pg_admin_url, &format!("{}{service}", args.db_prefix))
        })
    };
    let databases = choreo_audit::Databases {
        order: db(&args.order_db, "order"),
        inventory: db(&args.inventory_db, "inventory"),
        payment: db(&args.payment_db, "payment"),
        shipping: db(&args.shipping_db, "shipping"),
        provider: match &args.provider_db {
            Some(url) => Some(url.clone()),
            None => {
                let name = format!("{}provider", args.db_prefix);
                crate::setup::database_exists(&args.pg_admin_url, &name)
                    .await?
                    .then(|| database_url(&args.pg_admin_url, &name))
            }
        },
    };
    if databases.provider.is_none() {
        eprintln!("no payment provider ledger: charges not reconciled with a provider");
    }
    let bounds = choreo_audit::Bounds {
        deadline: seconds(args.deadline, "deadline")?,
        grace: seconds(args.grace, "grace")?,
        settle: seconds(args.settle, "settle")?,
        outbox: seconds(args.outbox, "outbox")?,
    };
    let started = std::time::Instant::now();
    let report = choreo_audit::audit(&databases, bounds).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for violation in &report.violations {
            println!("{violation}");
        }
        println!(
            "audited {} orders and {} SKUs in {:.2?}: {}",
            report.orders,
            report.skus,
            started.elapsed(),
            match report.violations.len() {
                0 => "no violations".to_owned(),
                1 => "1 violation".to_owned(),
                n => format!("{n} violations"),
            }
        );
    }
    Ok(report.is_clean())
}
