//! The edge binary: configuration, telemetry, run until signalled.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: choreo_edge::Settings =
        choreo_kit::load_config().context("loading configuration")?;
    if std::env::args().any(|a| a == "--print-config") {
        println!("{}", choreo_kit::print_config(&settings));
        return Ok(());
    }
    let _telemetry = choreo_telemetry::init("edge", settings.log_format);
    let shutdown = choreo_kit::shutdown_on_signals();
    let running = choreo_edge::start(settings, shutdown)
        .await
        .context("starting the edge")?;
    running.wait().await;
    Ok(())
}
