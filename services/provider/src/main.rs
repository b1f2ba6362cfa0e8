//! The provider stand-in's binary: configuration, telemetry, run until
//! signalled.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: choreo_provider::Settings =
        choreo_kit::load_config().context("loading configuration")?;
    if std::env::args().any(|a| a == "--print-config") {
        println!("{}", choreo_kit::print_config(&settings));
        return Ok(());
    }
    let _telemetry = choreo_telemetry::init("provider", settings.log_format);
    let shutdown = choreo_kit::shutdown_on_signals();
    let running = choreo_provider::start(settings, shutdown.clone())
        .await
        .context("starting the payment provider stand-in")?;
    running.task.await.context("provider task")??;
    tracing::info!("payment provider stand-in stopped");
    Ok(())
}
