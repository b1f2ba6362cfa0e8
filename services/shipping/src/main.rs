//! The shipping service binary: configuration, telemetry, run until signalled.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: choreo_shipping::Settings =
        choreo_kit::load_config().context("loading configuration")?;
    if choreo_service::one_shot(
        "shipping",
        &settings,
        &settings.service,
        choreo_shipping::migrations,
    )
    .await
    .context("migrating the shipping database")?
    {
        return Ok(());
    }
    let _telemetry = choreo_telemetry::init("shipping", settings.service.log_format);
    let shutdown = choreo_kit::shutdown_on_signals();
    let running = choreo_shipping::start(settings, shutdown)
        .await
        .context("starting the shipping service")?;
    running.wait().await?;
    Ok(())
}
