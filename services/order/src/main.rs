//! The order service binary: configuration, telemetry, run until signalled.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: choreo_order::Settings =
        choreo_kit::load_config().context("loading configuration")?;
    if choreo_service::one_shot(
        "order",
        &settings,
        &settings.service,
        choreo_order::migrations,
    )
    .await
    .context("migrating the order database")?
    {
        return Ok(());
    }
    let _telemetry = choreo_telemetry::init("order", settings.service.log_format);
    let shutdown = choreo_kit::shutdown_on_signals();
    let running = choreo_order::start(settings, shutdown)
        .await
        .context("starting the order service")?;
    running.wait().await?;
    Ok(())
}
