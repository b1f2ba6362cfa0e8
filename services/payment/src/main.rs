//! The payment service binary: configuration, telemetry, run until signalled.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: choreo_payment::Settings =
        choreo_kit::load_config().context("loading configuration")?;
    if choreo_service::one_shot(
        "payment",
        &settings,
        &settings.service,
        choreo_payment::migrations,
    )
    .await
    .context("migrating the payment database")?
    {
        return Ok(());
    }
    let _telemetry = choreo_telemetry::init("payment", settings.service.log_format);
    let shutdown = choreo_kit::shutdown_on_signals();
    let running = choreo_payment::start(settings, shutdown)
        .await
        .context("starting the payment service")?;
    running.wait().await?;
    Ok(())
}
