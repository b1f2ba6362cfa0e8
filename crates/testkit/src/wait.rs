//! Waiting for a condition with a deadline.

use std::{future::Future, time::Duration};

/// Polls `check` until it returns `Some`, or fails after `deadline` with
/// `what` in the message. The poll interval is short; the deadline is what a
/// slow CI machine needs, not what the test expects.
pub async fn wait_until<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = tokio::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if started.elapsed() > deadline {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
