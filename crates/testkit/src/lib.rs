//! The one test harness: what every crate's black-box tests share. The two
//! platform fixtures are built on it: `saga-tests`' `Platform` (the whole
//! platform in one process) and the `choreo up` test's (the platform as
//! processes); both call the edge through [`Edge`].
//!
//! Everything here is real: a PostgreSQL database created for one test and
//! dropped after it, a Tansu broker process on a free port with its own
//! storage (or librdkafka's mock cluster, a second implementation of the
//! protocol, for the tests its features allow), and waits that poll a
//! condition against a deadline instead of sleeping for a guessed time.

mod broker;
pub mod db;
mod delivery_order;
mod edge;
mod events;
pub mod metrics;
mod mock_broker;
mod ports;
mod publish;
mod reactions;
mod wait;

pub use broker::{Broker, TestBroker};
pub use choreo_telemetry::collector::{OtlpReceiver, ReceivedSpan};
pub use db::{TestDatabase, drop_platform_databases, rows_as_json};
pub use delivery_order::{apply_in_batches, interleave, redeliver};
pub use edge::{Edge, bearer_client, get_json};
pub use events::{order_placed, shipping_address};
pub use mock_broker::MockBroker;
pub use ports::{free_port, free_port_block};
pub use publish::{RawProducer, framed, publish_event};
pub use reactions::Emissions;
pub use wait::wait_until;

/// The internal keys of this test process (`choreo_kit::internal_auth`),
/// made once: every process a test starts checks them, and every call a
/// test makes signs with them.
pub fn internal_auth() -> choreo_kit::internal_auth::InternalAuthSettings {
    static KEYS: std::sync::OnceLock<choreo_kit::internal_auth::InternalAuthSettings> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(choreo_kit::internal_auth::generate)
        .clone()
}

/// Signs a test's calls as an operator's tool does (the admin key), which
/// every route takes.
pub fn operator() -> choreo_kit::internal_auth::Signer {
    choreo_kit::internal_auth::Signer::admin(&internal_auth(), "test")
        .unwrap_or_else(|e| panic!("the test's own keys: {e}"))
}

/// A client of the process `audience` (`order`, `provider`, `registry`, …)
/// whose every call carries the operator's credential, valid for the
/// minute after this call.
pub fn operator_client(audience: &str) -> reqwest::Client {
    signed_client(&operator(), audience)
}

/// A client of `audience` whose every call carries a credential `signer`
/// made now, valid for the minute after.
pub fn signed_client(
    signer: &choreo_kit::internal_auth::Signer,
    audience: &str,
) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        signer.authorization(audience),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap_or_else(|e| panic!("a plain HTTP client: {e}"))
}

/// A short random name, unique per call, for databases, topics and groups, so
/// that concurrent test runs on one machine never collide.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..12])
}
