//! `choreo bench`: what the platform sustains on this machine, measured
//! against the machine's own limits (issue 10). So far: the ceilings.

mod ceilings;

use crate::setup::BrokerArgs;
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// The machine's limits: PostgreSQL's commit rate for a one-row insert
    /// transaction at a concurrency, and the broker's produce-to-consume
    /// rate for messages of a size.
    Ceilings(CeilingArgs),
}

#[derive(Debug, clap::Args)]
struct CeilingArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// A PostgreSQL database the user may create databases from; the
    /// measurement runs in a scratch database it drops.
    #[arg(
        long,
        env = "CHOREO_PG_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pg_admin_url: String,
    /// Connections committing at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to commit for.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Messages to carry through the broker.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Each message's size.
    #[arg(long, default_value_t = 512)]
    message_bytes: usize,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Ceilings {
    commit: ceilings::CommitCeiling,
    broker: ceilings::BrokerCeiling,
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Ceilings(args) => ceilings(args).await,
    }
}

async fn ceilings(args: CeilingArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(
        args.seconds > 0.0 && args.seconds.is_finite(),
        "--seconds must be a positive number"
    );
    anyhow::ensure!(args.messages > 0, "--messages must be at least 1");
    let kafka = args.broker.settings()?;
    let commit = ceilings::commit_rate(
        &args.pg_admin_url,
        args.concurrency,
        Duration::from_secs_f64(args.seconds),
    )
    .await?;
    let broker = ceilings::broker_rate(&kafka, args.messages, args.message_bytes).await?;
    let result = Ceilings { commit, broker };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    let Ceilings { commit, broker } = &result;
    println!(
        "PostgreSQL commits   {:>10.0}/s  ({} one-row transactions from {} connections in {:.1} s; \
         p50 {:.2} ms, p99 {:.2} ms; synchronous_commit={})",
        commit.per_second,
        commit.transactions,
        commit.concurrency,
        commit.seconds,
        commit.p50_ms,
        commit.p99_ms,
        commit.synchronous_commit
    );
    println!(
        "broker messages      {:>10.0}/s  ({} messages of {} bytes, produced and consumed in {:.2} s)",
        broker.per_second, broker.messages, broker.message_bytes, broker.seconds
    );
    Ok(())
}
