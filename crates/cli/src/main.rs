//! `choreo`: the operator's tool for a Choreo platform.

mod audit;
mod dlq;
mod offsets;
mod on_service;
mod saga;
mod token;

use choreo_lab::{bench, chaos};
use choreo_platform::{setup, up};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "choreo",
    version,
    about = "Event-driven sagas over Kafka: run, set up and operate Choreo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set up and start the whole platform locally, supervised; Ctrl-C stops it.
    Up(up::UpArgs),
    /// Create the saga topics (existing ones are left alone).
    Topics(setup::TopicsArgs),
    /// Register every event schema in the schema registry.
    Schemas(setup::SchemasArgs),
    /// Check the saga invariants across every service's database (read-only);
    /// exits 1 when one is broken.
    Audit(audit::AuditArgs),
    /// Dead letters: list, show, and redrive them once the cause is fixed.
    Dlq(dlq::DlqArgs),
    /// Each service's consumer group: committed offset, end and lag per
    /// partition of its input topics.
    Offsets(offsets::OffsetsArgs),
    /// Re-read a service's topics from an earlier position through its own
    /// code (after a bad deploy, a restored database): its own published
    /// facts first, then its inputs; what it had applied is skipped.
    Replay(on_service::ReplayCommand),
    /// Rebuild a read model from the topics alone: `order-timeline`, the
    /// saga steps each order shows.
    Rebuild(on_service::RebuildCommand),
    /// Sign a bearer token for the local edge.
    Token(token::TokenArgs),
    /// The saga's choreography: `choreo saga graph` draws it.
    Saga(saga::SagaArgs),
    /// Failure-injection suites: run the platform under faults and judge it.
    Chaos(chaos::ChaosArgs),
    /// Measure the platform against the machine's own limits.
    Bench(bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = choreo_telemetry::init_tool("choreo", None);
    match cli.command {
        Command::Up(args) => up::run(args).await.context("choreo up"),
        Command::Topics(args) => setup::topics(args).await,
        Command::Schemas(args) => setup::schemas(args).await,
        Command::Dlq(args) => dlq::run(args).await,
        Command::Offsets(args) => offsets::run(args).await,
        // Both return only when the service's binary could not be run.
        Command::Replay(args) => Err(on_service::replay(args)),
        Command::Rebuild(args) => Err(on_service::rebuild(args)),
        Command::Token(args) => token::run(args),
        Command::Saga(args) => {
            saga::run(args);
            Ok(())
        }
        Command::Bench(args) => bench::run(args).await,
        Command::Chaos(args) => {
            if !chaos::run(args).await.context("choreo chaos")? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Audit(args) => {
            if !audit::run(args).await.context("choreo audit")? {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
