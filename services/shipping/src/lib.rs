//! The shipping service: schedules a shipment once an order is paid.
//!
//! It learns the address from `OrderPlaced` and the go-ahead from
//! `PaymentCompleted`; whichever arrives second schedules the shipment and
//! emits `ShipmentScheduled`.
//!
//! - `api`: the HTTP API (shipment lookup).
//! - `handlers/`: one module per event the service reacts to.
//! - `db`: its table.

mod api;
mod db;
mod handlers;

use choreo_events::Topic;
use choreo_kit::CancellationToken;
use choreo_service::{LaunchError, Running, ServiceSettings, Spec};
use serde::{Deserialize, Serialize};

pub use db::Shipment;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    #[serde(flatten)]
    pub service: ServiceSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            service: ServiceSettings::local("shipping", 8085),
        }
    }
}

const INPUTS: &[Topic] = &[Topic::Order, Topic::Payment];

/// Starts the service; it runs until `shutdown` is cancelled.
///
/// # Errors
/// When the database, broker or address cannot be set up.
pub async fn start(
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<Running, LaunchError> {
    let pool = choreo_service::connect(&settings.service, sqlx::migrate!("./migrations")).await?;
    let spec = Spec {
        name: "shipping",
        inputs: INPUTS,
        handler: handlers::ShippingHandler,
        router: api::router(pool.clone()),
    };
    choreo_service::launch(&settings.service, pool, spec, shutdown).await
}
