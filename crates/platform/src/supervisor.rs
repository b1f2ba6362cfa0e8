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
//!
//! A failure drill that kills a process on purpose names it first in a drill
//! file (`<process>.drill`, holding the pid it kills). Such a death is not a
//! crash: the process is restarted after the first backoff step, and the
//! backoff does not grow, as a deleted pod is replaced at once while a
//! crashing container backs off. Without it a suite that kills a replica
//! every few seconds drove every backoff to its ceiling, and the platform
//! spent most of the run waiting to restart (issue 27's goal suite: all three
//! order replicas down for over 120 s).

pub use choreo_service::run_dir::{
    hold_file, is_replica_of, pid_file, replica_name, replica_pid_files,
};
use nix::{sys::signal::Signal, unistd::Pid};
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};
use tokio::{process::Command, sync::watch, task::JoinHandle};

/// How a supervised process is started.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// The process's name: a service's, or a replica's (`order-1`).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub log: PathBuf,
    /// Holds the running process's pid, for operators and failure drills.
    pub pid_file: PathBuf,
    /// While this file exists the process is stopped (see the module doc).
    pub hold_file: PathBuf,
}

/// A supervised process; [`Supervised::stop`] ends it for good.
pub struct Supervised {
    pub name: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// After running this long, a process's next crash starts the backoff anew.
const STABLE: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a process gets to finish its in-flight work after SIGTERM.
const GRACE: Duration = Duration::from_secs(15);

pub fn supervise(spec: ProcessSpec) -> Supervised {
    let (stop, mut stopped) = watch::channel(false);
    let name = spec.name.clone();
    let task = tokio::spawn(async move {
        // However supervision ends (stopped while the process runs, or
        // while it waits to be restarted), no pid file is left naming a
        // process that is gone: tools and faults read them as "running".
        let _pid_file = RemovedOnDrop(spec.pid_file.clone());
        let mut backoff = FIRST_BACKOFF;
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
                        backoff = FIRST_BACKOFF;
                    }
                    let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    if pid.is_some_and(|pid| drilled(&spec.pid_file, pid)) {
                        tracing::info!(
                            process = %spec.name, %status, restart_in = ?FIRST_BACKOFF,
                            "process stopped by a failure drill; restarting"
                        );
                        if wait_or_stop(&mut stopped, FIRST_BACKOFF).await {
                            return;
                        }
                        continue;
                    }
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
                    backoff = FIRST_BACKOFF;
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
    pub async fn stop(self) {
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

/// The drill file of the process whose pid file is `pid_file`.
fn drill_file(pid_file: &Path) -> PathBuf {
    pid_file.with_extension("drill")
}

/// Names the process `pid` (whose pid file is `pid_file`) as about to be
/// killed by a failure drill; [`undrill`] takes it back when the drill did
/// not kill it after all (the signal found no process, a fail point armed
/// in it was disarmed).
///
/// # Errors
/// When the run folder cannot be written.
pub fn drill(pid_file: &Path, pid: i32) -> std::io::Result<()> {
    std::fs::write(drill_file(pid_file), pid.to_string())
}

/// Takes back [`drill`] for `pid`; a drill file naming another process (a
/// later drill's) is left alone.
pub fn undrill(pid_file: &Path, pid: i32) {
    let file = drill_file(pid_file);
    if std::fs::read_to_string(&file).is_ok_and(|named| named.trim() == pid.to_string()) {
        let _ = std::fs::remove_file(file);
    }
}

/// Whether the process `pid` that just ended was named by a drill; the
/// drill file is used up either way once it names this pid (a file naming
/// another pid is left for that process).
fn drilled(pid_file: &Path, pid: u32) -> bool {
    let file = drill_file(pid_file);
    let named = std::fs::read_to_string(&file)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    if named == Some(pid) {
        let _ = std::fs::remove_file(&file);
        true
    } else {
        false
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drill_file_excuses_only_the_pid_it_names_once() {
        let run = std::env::temp_dir().join(choreo_testkit::unique_name("drill"));
        std::fs::create_dir_all(&run).expect("run folder");
        let pid_file = run.join("order-1.pid");
        drill(&pid_file, 42).expect("drill file");
        assert!(
            !drilled(&pid_file, 41),
            "another process's death is a crash"
        );
        assert!(drilled(&pid_file, 42));
        assert!(!drilled(&pid_file, 42), "used up by the death it named");
        drill(&pid_file, 43).expect("drill file");
        undrill(&pid_file, 44);
        undrill(&pid_file, 43);
        assert!(!drilled(&pid_file, 43), "taken back");
        drill(&pid_file, 45).expect("drill file");
        undrill(&pid_file, 43);
        assert!(drilled(&pid_file, 45), "a later drill's file is left alone");
        let _ = std::fs::remove_dir_all(run);
    }
}
