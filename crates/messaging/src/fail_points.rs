//! Named places where a failure-injection suite can kill a service, built on
//! the `fail` crate.
//!
//! The runtime owns the moments that decide whether a crash loses or
//! duplicates an effect, so every service that runs on it has the same
//! points:
//!
//! - [`HANDLER_BEFORE_COMMIT`]: the handler has run inside its transaction,
//!   which is not committed yet. A crash here must redeliver the event.
//! - [`CONSUMER_AFTER_COMMIT`]: the effect and the inbox entry are
//!   committed, the offset is not stored yet. A crash here redelivers an
//!   event that the inbox must skip.
//! - [`RELAY_AFTER_PUBLISH`]: the broker has acknowledged a batch of outbox
//!   rows, which are not marked published yet. A crash here publishes them
//!   again; the consumers' inboxes must drop the copies.
//!
//! A point configured with `return` kills the process on the spot with
//! SIGKILL, as the kernel's OOM killer or a power cut would: no destructor,
//! no final offset commit, no clean leave from the consumer group. Any other
//! `fail` action (`sleep(ms)`, `pause`, `5%return`, `1*return->off`) works
//! as the `fail` crate documents.
//!
//! [`MUTANT_COMMIT_OFFSET_FIRST`] is not a crash: switched on, the consumer
//! commits an event's offset to the broker before applying it, the bug the
//! suites exist to catch (a crash between the two loses the event). The
//! chaos runner's `--mutant` flag turns it on to prove that a shipped suite
//! fails on such a build. [`MUTANT_PROVIDER_FRESH_KEY`] is the payment
//! service's: switched on, each charge it sends its provider carries a new
//! idempotency key, so a charge retried after a timeout is taken twice.
//!
//! The points do nothing unless the crate is built with the `failpoints`
//! feature (`make build` and `make test` ask for it; a release build, an
//! image and a plain `cargo build` have none), and a
//! point does nothing until it is configured: at start-up from the
//! `fail_points` setting, or at run time through the service's
//! `/admin/fail-points` routes.

/// Inside the handler's transaction, before it commits.
pub const HANDLER_BEFORE_COMMIT: &str = "handler.before-commit";
/// After the handler's transaction committed, before the offset is stored.
pub const CONSUMER_AFTER_COMMIT: &str = "consumer.after-commit";
/// After the broker acknowledged outbox rows, before they are marked.
pub const RELAY_AFTER_PUBLISH: &str = "relay.after-publish";
/// Switched on: offsets are committed before the effect is applied (a bug).
pub const MUTANT_COMMIT_OFFSET_FIRST: &str = "mutant.commit-offset-first";
/// Switched on: payment charges its provider under a new key on every try
/// (a bug).
pub const MUTANT_PROVIDER_FRESH_KEY: &str = "mutant.provider-fresh-key";

/// Every point a service has, for listings and for checking suite files.
pub const ALL: [&str; 5] = [
    HANDLER_BEFORE_COMMIT,
    CONSUMER_AFTER_COMMIT,
    RELAY_AFTER_PUBLISH,
    MUTANT_COMMIT_OFFSET_FIRST,
    MUTANT_PROVIDER_FRESH_KEY,
];

/// A fail point setting that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum FailPointError {
    #[error(
        "this build has no fail points (build with `--features choreo-messaging/failpoints`, as `make build` does)"
    )]
    NotBuilt,
    #[error("no fail point named {name:?}; the points are {}", ALL.join(", "))]
    Unknown { name: String },
    #[error("fail point {name}: {reason}")]
    Actions { name: String, reason: String },
    #[error("{entry:?} is not `point=actions`")]
    Malformed { entry: String },
}

/// Whether this build has fail points at all.
pub const fn built() -> bool {
    fail::has_failpoints()
}

/// Sets the actions of the point `name` (`off` turns it off).
///
/// # Errors
/// [`FailPointError`] for a build without fail points, an unknown point or
/// actions the `fail` crate cannot parse; nothing changes then.
pub fn configure(name: &str, actions: &str) -> Result<(), FailPointError> {
    check(name)?;
    fail::cfg(name, actions).map_err(|reason| FailPointError::Actions {
        name: name.to_owned(),
        reason,
    })?;
    tracing::warn!(fail_point = name, actions, "fail point configured");
    Ok(())
}

/// Applies a `point=actions;point=actions` list (the `FAILPOINTS` syntax of
/// the `fail` crate). Every entry is checked before any is applied.
///
/// # Errors
/// As [`configure`], or [`FailPointError::Malformed`] for an entry without
/// `=`.
pub fn configure_all(list: &str) -> Result<(), FailPointError> {
    let mut entries = Vec::new();
    for entry in list.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, actions) = entry
            .split_once('=')
            .ok_or_else(|| FailPointError::Malformed {
                entry: entry.to_owned(),
            })?;
        let (name, actions) = (name.trim(), actions.trim());
        check(name)?;
        entries.push((name, actions));
    }
    for (name, actions) in entries {
        configure(name, actions)?;
    }
    Ok(())
}

/// Whether `name` can be configured in this build.
fn check(name: &str) -> Result<(), FailPointError> {
    if !built() {
        return Err(FailPointError::NotBuilt);
    }
    if !ALL.contains(&name) {
        return Err(FailPointError::Unknown {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The configured points and their actions.
pub fn configured() -> Vec<(String, String)> {
    let mut list = fail::list();
    list.sort();
    list
}

/// A point where a configured `return` kills the process.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
pub(crate) fn crash_point(name: &'static str) {
    fail::fail_point!(name, |_| crash(name));
}

/// Whether the mutant switch `name` is on (always off in a build without
/// fail points).
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
pub fn mutant(name: &'static str) -> bool {
    fail::fail_point!(name, |_| true);
    false
}

#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
fn crash(name: &str) {
    // Written straight to stderr: the process is gone before any buffered
    // writer could flush.
    eprintln!("fail point {name}: killing the process (SIGKILL)");
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    // SIGKILL cannot be caught; should raising it fail, abort instead.
    std::process::abort();
}
