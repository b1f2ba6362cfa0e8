//! Shared process plumbing for every Choreo binary and service library.
//!
//! Services are libraries with a thin `main.rs`; this crate holds what those
//! mains and the in-process test harness both need: loading layered typed
//! configuration, turning SIGINT/SIGTERM into a cancellation token,
//! serving an axum router until that token fires, the credentials between
//! processes (`internal_auth`), the signing of customers' tokens
//! (`customer_token`), and what to say when PostgreSQL has no connection
//! left (`postgres`).

pub mod config;
pub mod customer_token;
pub mod http;
mod http_metrics;
pub mod internal_auth;
pub mod operator;
pub mod postgres;
pub mod shutdown;

pub use config::{ConfigError, load_config, print_config};
pub use http::{
    CallerTraces, HttpError, HttpMetrics, IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, idempotency_key,
    serve, serve_with,
};
pub use http_metrics::{DURATION_BUCKETS, method_label};
pub use shutdown::{shutdown_on_signals, wait_for_signal};
pub use tokio_util::sync::CancellationToken;
