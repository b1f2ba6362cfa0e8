//! Choreo's messaging runtime, shared by every service.
//!
//! - [`outbox::enqueue`] writes an event in the caller's transaction; the
//!   [`relay::Relay`] publishes committed rows in order and marks them.
//! - [`consumer::Consumer`] reads a service's input topics, records each event
//!   id in the inbox in the same transaction as the handler's effect, and
//!   stores the Kafka offset only after that transaction commits. A
//!   redelivered event therefore changes nothing.
//! - [`admin`] creates topics explicitly (brokers here do not auto-create).
//!
//! Only the plain Kafka protocol is used (no transactions), so the same code
//! runs against Apache Kafka and the Tansu broker used locally.

pub mod admin;
pub mod consumer;
mod error;
pub mod inbox;
pub mod outbox;
pub mod relay;
mod settings;

pub use consumer::{Consumer, Delivery, Handler, HandlerError, Outcome};
pub use error::MessagingError;
pub use relay::Relay;
pub use settings::KafkaSettings;

/// Applies the outbox and inbox tables to a service database.
///
/// # Errors
/// When the database cannot be reached or a migration fails.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    // The service's own migrator shares `_sqlx_migrations`; each ignores the
    // other's versions.
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}
