//! Runs the platform's processes and restarts any that dies.
//!
//! Each child runs in its own process group, so a Ctrl-C at the terminal
//! reaches only `choreo up`, which then stops the children in order with
//! SIGTERM (their graceful shutdown) and SIGKILL after a deadline. A child
//! that exits on its own is restarted with exponential backoff, and the log
//! says so.
//!
//! An operator tool can hold a process: while its hold file lies in the run
//! folder (`<service>.hold`, one for every replica of a service), the process
//! is stopped (gracefully) and not restarted; once the file is removed it
//! starts again. `choreo replay` holds the service it replays into this way.

use nix::{sys::signal::Signal, unistd::Pid};
use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};
use tokio::{process::Command, sync::watch, task::JoinHandle};

/// How a supervised process is started.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    /// The process's name: a service's, or a replica's (`order-1`).
    pub(crate) name: String,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) log: PathBuf,
    /// Holds the running process's pid, for operators and failure drills.
    pub(crate) pid_file: PathBuf,
    /// While this file exists the process is stopped (see the module doc).
    pub(crate) hold_file: PathBuf,
}

/// A supervised process; [`Supervised::stop`] ends it for good.
pub(crate) struct Supervised {
    pub(crate) name: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// After running this long, a process's next crash starts the backoff anew.
const STABLE: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a process gets to finish its in-flight work after SIGTERM.
const GRACE: Duration = Duration::from_secs(15);

pub(crate) fn supervise(spec: ProcessSpec) -> Supervised {
    let (stop, mut stopped) = watch::channel(false);
    let name = spec.name.clone();
    let task = tokio::spawn(async move {
        // However supervision ends (stopped while the process runs, or
        // while it waits to be restarted), no pid file is left naming a
        // process that is gone: tools and faults read them as "running".
        let _pid_file = RemovedOnDrop(spec.pid_file.clone());
        let mut backoff = Duration::from_millis(500);
        let hold = spec.hold_file.clone();
        loop {
            if hold.exists() {
                tracing::info!(process = %spec.name, hold = %hold.display(), "held; not starting it until the hold is removed");
                if wait_for_release(&mut stopped, &hold).await {
                    return;
                }
                tracing::info!(process = %spec.name, "hold removed; starting it");
            }
            let started = Instant::now();
            let mut child = match spawn(&spec) {
                Ok(child) => child,
                Err(e) => {
                    tracing::error!(process = %spec.name, error = %e, "cannot start process");
                    if wait_or_stop(&mut stopped, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            let pid = child.id();
            if let Some(pid) = pid {
                if let Err(e) = std::fs::write(&spec.pid_file, pid.to_string()) {
                    tracing::warn!(process = %spec.name, error = %e, "cannot write pid file");
                }
            }
            tokio::select! {
                status = child.wait() => {
                    // Gone: no pid file names it until it runs again.
                    let _ = std::fs::remove_file(&spec.pid_file);
                    if *stopped.borrow() {
                        return;
                    }
                    if started.elapsed() > STABLE {
                        backoff = Duration::from_millis(500);
                    }
                    let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    tracing::warn!(
                        process = %spec.name, %status, restart_in = ?backoff,
                        "process exited; restarting (log: {})", spec.log.display()
                    );
                    if wait_or_stop(&mut stopped, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                _ = stopped.changed() => {
                    terminate(&spec.name, pid, &mut child).await;
                    let _ = std::fs::remove_file(&spec.pid_file);
                    return;
                }
                _ = held(&hold) => {
                    tracing::info!(process = %spec.name, "hold placed; stopping it");
                    terminate(&spec.name, pid, &mut child).await;
                    let _ = std::fs::remove_file(&spec.pid_file);
                    backoff = Duration::from_millis(500);
                }
            }
        }
    });
    Supervised { name, stop, task }
}

/// A file removed when this is dropped.
struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Supervised {
    /// Stops the process (SIGTERM, then SIGKILL after the grace period) and
    /// waits until it is gone.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        tracing::info!(process = %self.name, "stopped");
    }
}

fn spawn(spec: &ProcessSpec) -> std::io::Result<tokio::process::Child> {
    for file in [&spec.log, &spec.pid_file] {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)?;
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    command.spawn()
}

/// The hold file of `service`, in the run folder `run_dir`: it holds every
/// replica of the service.
pub(crate) fn hold_file(run_dir: &std::path::Path, service: &str) -> PathBuf {
    run_dir.join(format!("{service}.hold"))
}

/// The name of a service's replica `index`: the service's own for the first
/// (so that a platform of single replicas names its processes as before),
/// `<service>-<index>` for the others.
pub(crate) fn replica_name(service: &str, index: usize) -> String {
    match index {
        0 => service.to_owned(),
        i => format!("{service}-{i}"),
    }
}

/// The pid files of every running replica of `service` in `run_dir`.
pub(crate) fn replica_pid_files(run_dir: &std::path::Path, service: &str) -> Vec<PathBuf> {
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
pub(crate) fn is_replica_of(name: &str, service: &str) -> bool {
    name == service
        || name
            .strip_prefix(service)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

/// How often a hold file is looked for: a file, not a signal, so that any
/// tool (or an operator's `touch`) can place one.
const HOLD_POLL: Duration = Duration::from_millis(200);

/// Returns once `hold` exists.
async fn held(hold: &std::path::Path) {
    while !hold.exists() {
        tokio::time::sleep(HOLD_POLL).await;
    }
}

/// Waits until `hold` is gone; `true` when asked to stop meanwhile.
async fn wait_for_release(stopped: &mut watch::Receiver<bool>, hold: &std::path::Path) -> bool {
    while hold.exists() {
        if wait_or_stop(stopped, HOLD_POLL).await {
            return true;
        }
    }
    false
}

/// `true` when asked to stop while waiting.
async fn wait_or_stop(stopped: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => *stopped.borrow(),
        _ = stopped.changed() => true,
    }
}

async fn terminate(name: &str, pid: Option<u32>, child: &mut tokio::process::Child) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    match tokio::time::timeout(GRACE, child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            tracing::warn!(process = name, "did not stop within {GRACE:?}; killing it");
            let _ = child.kill().await;
        }
    }
}
