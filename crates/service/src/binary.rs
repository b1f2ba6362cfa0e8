//! The one `main` of every saga service binary (`choreo-order`, …), so
//! that each service's `main.rs` is a single call naming its
//! [`SagaService`]:
//!
//! - no arguments: run the service until SIGTERM or Ctrl-C;
//! - `--print-config`: print its configuration (secrets redacted);
//! - `--migrate`: migrate its database and exit (a deployment's migration
//!   job, so the schema changes once, before any replica of a new version
//!   starts);
//! - `replay …`: re-read its topics through its own code ([`crate::replay`];
//!   what `choreo replay --service <name>` runs);
//! - the service's own tools ([`SagaService::tools`]: the order service's
//!   `rebuild-timeline`).

use crate::{LaunchError, Running, ServiceSettings, replay::ReplayArgs};
use anyhow::Context;
use choreo_events::choreography::Consumer;
use choreo_kit::{CancellationToken, internal_auth::Signer};
use choreo_messaging::Handler;
use clap::{ArgAction, ArgMatches, Args, FromArgMatches};
use serde::{Serialize, de::DeserializeOwned};
use sqlx::migrate::Migrator;
use std::{future::Future, pin::Pin};

/// A saga service, as the skeleton runs it.
pub trait SagaService: 'static {
    /// Its part of the choreography: its name (also its consumer group),
    /// the topics it consumes and the one it publishes on.
    const CHOREOGRAPHY: &'static Consumer;
    /// Its configuration (`choreo_kit::load_config`).
    type Settings: Serialize + DeserializeOwned + Default + Send + 'static;
    /// Its reaction to its inputs.
    type Handler: Handler;
    /// How it re-derives its state from its own topic, for a replay.
    type Recovery: Handler;

    /// The settings every service shares, within its own.
    fn service(settings: &Self::Settings) -> &ServiceSettings;

    /// Its own migrations (the outbox and inbox come with [`crate::connect`]).
    fn migrations() -> Migrator;

    /// Starts it; it runs until `shutdown` is cancelled.
    fn start(
        settings: Self::Settings,
        shutdown: CancellationToken,
    ) -> impl Future<Output = Result<Running, LaunchError>>;

    /// The handler a replay applies its inputs through, its calls out
    /// (payment's provider) signed by `signer`.
    ///
    /// # Errors
    /// When a part of it cannot be set up.
    fn replay_handler(
        settings: &Self::Settings,
        signer: Signer,
    ) -> Result<Self::Handler, LaunchError>;

    /// Its recovery handler; `None` when it decides from its inputs alone,
    /// the same way every time, so that a replay reads its inputs only.
    fn recovery() -> Option<Self::Recovery>;

    /// Commands of its own beside the ones every service has.
    fn tools() -> Vec<Tool<Self::Settings>> {
        Vec::new()
    }
}

/// A future a [`Tool`] runs to its end.
pub type ToolRun = Pin<Box<dyn Future<Output = anyhow::Result<()>>>>;

/// A command of a service's own: its clap command and what runs it, given
/// the service's settings and the parsed arguments.
pub struct Tool<Settings> {
    pub command: fn() -> clap::Command,
    pub run: fn(Settings, ArgMatches) -> ToolRun,
}

/// Parses the arguments and runs the service `S`, or the command asked for.
///
/// # Errors
/// When the configuration cannot be loaded, the service cannot start or
/// stops on its own, or the command fails.
pub fn main<S: SagaService>() -> anyhow::Result<()> {
    let name = S::CHOREOGRAPHY.service;
    let tools = S::tools();
    let mut cli = clap::Command::new(name)
        .bin_name(format!("choreo-{name}"))
        .about(format!(
            "The {name} service: runs until SIGTERM or Ctrl-C, or runs one of its commands"
        ))
        .version(env!("CARGO_PKG_VERSION"))
        .arg(
            clap::Arg::new("print-config")
                .long("print-config")
                .action(ArgAction::SetTrue)
                .help("Print the configuration (secrets redacted) and exit"),
        )
        .arg(
            clap::Arg::new("migrate")
                .long("migrate")
                .action(ArgAction::SetTrue)
                .help("Migrate the database and exit (a deployment's migration job)"),
        )
        .subcommand(
            ReplayArgs::augment_args(clap::Command::new("replay")).about(
                "Re-read the service's topics from an earlier position through its own code: its own published facts first, then its inputs; what it had applied is skipped",
            ),
        );
    for tool in &tools {
        cli = cli.subcommand((tool.command)());
    }
    let matches = cli.get_matches();
    let settings: S::Settings = choreo_kit::load_config().context("loading configuration")?;
    if matches.get_flag("print-config") {
        println!("{}", choreo_kit::print_config(&settings));
        return Ok(());
    }
    // A command (a replay, a rebuild) does one thing at a time, waiting on
    // the database most of it: on one thread, the answer wakes the task
    // where it waits, instead of handing it to another thread each time.
    let mut runtime = if matches.subcommand().is_some() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        if matches.get_flag("migrate") {
            // The job's logs (a database it waits for) on stderr; stdout
            // says what it did.
            let _telemetry = choreo_telemetry::init_tool(name, None);
            crate::migrate(S::service(&settings), S::migrations())
                .await
                .with_context(|| format!("migrating the {name} database"))?;
            println!("{name} database migrated");
            return Ok(());
        }
        match matches.subcommand() {
            None => run::<S>(settings).await,
            Some((command, arguments)) => {
                // A command prints its own progress; a log line per event
                // would bury it, and so would librdkafka's complaints about
                // a broker refusing to describe groups (RUST_LOG=info
                // brings them back).
                let _telemetry =
                    choreo_telemetry::init_tool(name, Some("warn,librdkafka=off,rdkafka=off"));
                if command == "replay" {
                    let args = ReplayArgs::from_arg_matches(arguments)?;
                    return crate::replay::run::<S>(args, settings).await;
                }
                let tool = tools
                    .iter()
                    .find(|t| (t.command)().get_name() == command)
                    .with_context(|| format!("no command {command}"))?;
                (tool.run)(settings, arguments.clone()).await
            }
        }
    })
}

async fn run<S: SagaService>(settings: S::Settings) -> anyhow::Result<()> {
    let name = S::CHOREOGRAPHY.service;
    let _telemetry = choreo_telemetry::init(name, S::service(&settings).log_format);
    let shutdown = choreo_kit::shutdown_on_signals();
    let running = S::start(settings, shutdown)
        .await
        .with_context(|| format!("starting the {name} service"))?;
    running.wait().await?;
    Ok(())
}

/// The [`SagaService::Recovery`] of a service that needs none (its
/// [`SagaService::recovery`] is `None`): it reacts to nothing.
pub struct NoRecovery<I>(std::marker::PhantomData<fn() -> I>);

impl<I: choreo_events::Input + Send + 'static> Handler for NoRecovery<I> {
    type Input = I;

    fn reacts_to(&self, _: choreo_events::Record) -> bool {
        false
    }

    async fn handle(
        &self,
        _: &mut sqlx::PgConnection,
        _: &choreo_messaging::Delivery,
        _: I,
    ) -> Result<choreo_messaging::Outcome, choreo_messaging::HandlerError> {
        Ok(choreo_messaging::Outcome::Ignored)
    }
}
