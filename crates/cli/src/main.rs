//! `choreo`: the operator's tool for a Choreo platform.

mod audit;
mod bench;
mod chaos;
mod client;
mod dlq;
mod keys;
mod offsets;
mod rebuild;
mod replay;
mod saga;
mod setup;
mod token;
mod up;

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
    Replay(replay::ReplayArgs),
    /// Rebuild a read model from the topics alone: `order-timeline`, the
    /// saga steps each order shows.
    Rebuild(rebuild::RebuildArgs),
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
    // A replay prints its own progress; a log line per event would bury
    // it, and so would librdkafka's complaints about the local broker
    // refusing to describe groups (RUST_LOG=info brings them back).
    let quiet = matches!(cli.command, Command::Replay(_) | Command::Rebuild(_));
    let _telemetry =
        choreo_telemetry::init_tool("choreo", quiet.then_some("warn,librdkafka=off,rdkafka=off"));
    match cli.command {
        Command::Up(args) => up::run(args).await.context("choreo up"),
        Command::Topics(args) => setup::topics(args).await,
        Command::Schemas(args) => setup::schemas(args).await,
        Command::Dlq(args) => dlq::run(args).await,
        Command::Offsets(args) => offsets::run(args).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Rebuild(args) => rebuild::run(args).await,
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
