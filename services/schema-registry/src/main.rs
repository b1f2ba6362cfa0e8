//! The schema registry process: configuration, telemetry, then the library's
//! [`start`] until SIGINT or SIGTERM.

use anyhow::Context;
use choreo_schema_registry::{Settings, start};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = choreo_kit::load_config().context("loading configuration")?;
    if std::env::args().skip(1).any(|a| a == "--print-config") {
        println!("{}", choreo_kit::print_config(&settings));
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let shutdown = choreo_kit::shutdown_on_signals();
    let mut running = start(settings, shutdown.clone()).await?;
    tokio::select! {
        () = shutdown.cancelled() => {}
        // The server only stops early when it fails; report that at once
        // rather than waiting for a signal.
        finished = &mut running.task => {
            finished.context("registry task")??;
            anyhow::bail!("the registry stopped without being asked to");
        }
    }
    running.task.await.context("registry task")??;
    tracing::info!("schema registry stopped");
    Ok(())
}
