//! The inventory service binary: configuration, telemetry, run until signalled.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: choreo_inventory::Settings =
        choreo_kit::load_config().context("loading configuration")?;
    if std::env::args().any(|a| a == "--print-config") {
        println!("{}", choreo_kit::print_config(&settings));
        return Ok(());
    }
    if std::env::args().any(|a| a == "--migrate") {
        // A deployment's migration job: the schema changes once, before any
        // replica of the new version starts (each would also apply them).
        choreo_service::migrate(&settings.service, choreo_inventory::migrations())
            .await
            .context("migrating the inventory database")?;
        println!("inventory database migrated");
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
