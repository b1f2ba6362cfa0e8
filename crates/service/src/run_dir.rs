//! The run folder of a `choreo up` (`<data dir>/run`): the files through
//! which its supervisor and the tools run beside it agree on what runs.
//!
//! - `<name>.pid`: the pid of the running process `name`, written by the
//!   supervisor (for operators and failure drills);
//! - `<service>.hold`: while it exists, the supervisor keeps every replica
//!   of the service stopped. A file, not a signal, so that any tool (or an
//!   operator's `touch`) can place one: a replay or a rebuild holds the
//!   service it works on.

use crate::ServiceSettings;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// The pid file of the process `name` in the run folder `run_dir`.
pub fn pid_file(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}.pid"))
}

/// The hold file of `service`, in the run folder `run_dir`: it holds every
/// replica of the service.
pub fn hold_file(run_dir: &Path, service: &str) -> PathBuf {
    run_dir.join(format!("{service}.hold"))
}

/// The name of a service's replica `index`: the service's own for the first
/// (so that a platform of single replicas names its processes as before),
/// `<service>-<index>` for the others.
pub fn replica_name(service: &str, index: usize) -> String {
    match index {
        0 => service.to_owned(),
        i => format!("{service}-{i}"),
    }
}

/// The pid files of every running replica of `service` in `run_dir`.
pub fn replica_pid_files(run_dir: &Path, service: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let Some(stem) = p
                .extension()
                .filter(|x| *x == "pid")
                .and(p.file_stem())
                .and_then(|s| s.to_str())
            else {
                return false;
            };
            is_replica_of(stem, service)
        })
        .collect()
}

/// Whether the process `name` is a replica of `service` (`order`, `order-2`).
pub fn is_replica_of(name: &str, service: &str) -> bool {
    name == service
        || name
            .strip_prefix(service)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

/// Holds a service `choreo up` supervises, for as long as it lives: the
/// supervisor stops the service and starts it again once the hold is gone.
pub struct Hold {
    file: PathBuf,
    service: String,
}

impl Hold {
    /// `None` when no `choreo up` in `data_dir` runs the service.
    async fn place(data_dir: &Path, service: &str) -> anyhow::Result<Option<Self>> {
        let run_dir = data_dir.join("run");
        let running = || replica_pid_files(&run_dir, service);
        if running().is_empty() {
            return Ok(None);
        }
        let file = hold_file(&run_dir, service);
        std::fs::write(&file, "held by a replay or rebuild\n")
            .with_context(|| format!("placing the hold {}", file.display()))?;
        let hold = Self {
            file,
            service: service.to_owned(),
        };
        eprintln!(
            "stopping {service} (supervised by choreo up in {}) meanwhile",
            data_dir.display()
        );
        // The supervisor gives every replica its grace period, then kills it.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while !running().is_empty() {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{service} did not stop within 60 s; is the choreo up in {} still running?",
                data_dir.display()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(Some(hold))
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.file) {
            Ok(()) => eprintln!("{} is started again", self.service),
            Err(e) => eprintln!(
                "cannot remove the hold {} ({e}); remove it to start {} again",
                self.file.display(),
                self.service
            ),
        }
    }
}

/// Stops `service` for a replay or rebuild: holds it where the `choreo up`
/// in `data_dir` runs it; otherwise makes sure it is not running. A
/// service that is already held there, with no replica running, is known
/// stopped: its static members may still be listed in the group until
/// their sessions time out, and are not taken for running replicas.
///
/// # Errors
/// When the service runs and is not supervised there, or does not stop.
pub async fn stop_service(
    data_dir: &Path,
    service: &str,
    settings: &ServiceSettings,
    group: &str,
) -> anyhow::Result<Option<Hold>> {
    let hold = Hold::place(data_dir, service).await?;
    let run_dir = data_dir.join("run");
    let held =
        hold_file(&run_dir, service).exists() && replica_pid_files(&run_dir, service).is_empty();
    if !held {
        ensure_stopped(service, settings, group).await?;
    }
    Ok(hold)
}

/// Refuses while the service runs. The group's live members tell,
/// where the broker can describe groups (a static member stays listed
/// until its session times out, so a service stopped just now may still
/// be refused); otherwise the service's own health endpoint, at the
/// address its configuration names, is asked instead.
async fn ensure_stopped(
    service: &str,
    settings: &ServiceSettings,
    group: &str,
) -> anyhow::Result<()> {
    let members = match choreo_messaging::replay::live_members(&settings.kafka, group).await {
        Ok(members) => members,
        Err(e) => {
            eprintln!(
                "note: the broker cannot describe the group {group} ({}); asking {service}'s health endpoint at {} instead",
                choreo_telemetry::error_chain(&e),
                settings.http_addr
            );
            let url = format!("http://{}/health/live", settings.http_addr);
            let answered = reqwest::Client::new()
                .get(&url)
                .timeout(std::time::Duration::from_secs(2))
                .send()
                .await
                .is_ok();
            if answered {
                vec![format!("the service answering at {}", settings.http_addr)]
            } else {
                Vec::new()
            }
        }
    };
    anyhow::ensure!(
        members.is_empty(),
        "{service} is running: {list}. Stop it first (a replay beside it would race it on the same \
         events; a replica that stopped just now stays in its group until its session times out), \
         or pass the --data-dir of the choreo up that supervises it; --dry-run is safe meanwhile",
        list = members.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_named_by_their_service() {
        assert_eq!(replica_name("order", 0), "order");
        assert_eq!(replica_name("order", 2), "order-2");
        assert!(is_replica_of("order-2", "order"));
        assert!(!is_replica_of("order-x", "order"));
        assert!(!is_replica_of("order-", "order"));
    }
}
