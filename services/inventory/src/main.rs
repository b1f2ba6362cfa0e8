//! The inventory service binary: configuration, telemetry, run until signalled.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: choreo_inventory::Settings =
        choreo_kit::load_config().context("loading configuration")?;
    if choreo_service::one_shot(
        "inventory",
        &settings,
        &settings.service,
        choreo_inventory::migrations,
    )
    .await
    .context("migrating the inventory database")?
    {
        return Ok(());
    }
    let _telemetry = choreo_telemetry::init("inventory", settings.service.log_format);
    let shutdown = choreo_kit::shutdown_on_signals();
    let running = choreo_inventory::start(settings, shutdown)
        .await
        .context("starting the inventory service")?;
    running.wait().await?;
    Ok(())
}
