//! Choreo's messaging runtime, shared by every service.
//!
//! - [`outbox::enqueue`] writes an event in the caller's transaction; the
//!   [`relay::Relay`] publishes committed rows in order and marks them, one
//!   relay per database at a time.
//! - [`consumer::Consumer`] reads a service's input topics, partitions in
//!   parallel and each in order, with backpressure. It records each event id
//!   in the inbox in the same transaction as the handler's effect
//!   ([`apply`]), and stores the Kafka offset only after that transaction
//!   commits, so a redelivered event changes nothing. Transient failures are
//!   retried in place; events that can never be applied go to the service's
//!   dead-letter topic ([`dead_letter`]).
//! - [`retention`] purges published outbox rows and old inbox rows.
//! - [`Health`] tells readiness probes whether the runtime makes progress.
//! - [`fail_points`] are the named places where failure-injection suites
//!   kill a service (built only with the `failpoints` feature).
//! - [`admin`] creates topics explicitly (brokers here do not auto-create)
//!   and reads topics to their end for operator tools.
//! - [`replay`] re-reads a service's topics from an earlier position
//!   through the same steps as the consumer (its own topic in commit
//!   order, then its inputs), for recovery after an incident.
//!
//! Only the plain Kafka protocol is used (no transactions), so the same code
//! runs against Apache Kafka and the Tansu broker used locally.

pub mod admin;
mod backoff;
pub mod consumer;
pub mod dead_letter;
mod delivery;
mod error;
pub mod fail_points;
pub mod headers;
mod health;
pub mod inbox;
mod metrics;
pub mod outbox;
mod process;
pub mod producer;
pub mod relay;
pub mod replay;
pub mod retention;
mod settings;

pub use consumer::{Consumer, ConsumerSettings};
pub use delivery::{
    Batched, Delivery, Effect, Handler, HandlerError, Outcome, apply, apply_batch, apply_effect,
    handle_alone,
};
pub use error::MessagingError;
pub use health::{Health, Snapshot};
pub use metrics::{RuntimeMetrics, Summary};
pub use process::Processed;
pub use relay::Relay;
pub use retention::RetentionSettings;
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
