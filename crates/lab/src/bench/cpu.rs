//! Where the machine's CPU goes during a phase: the processor time of each
//! platform process (by the pid files `choreo up` keeps), of every
//! PostgreSQL backend together, and of the bench itself, from `/proc`.

use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, path::Path, time::Instant};

/// Linux reports `/proc/<pid>/stat` times in `USER_HZ` ticks, which the
/// kernel fixes at 100 a second for user space whatever its own tick.
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

/// The row of the bench's own process.
pub(crate) const BENCH_PROCESS: &str = "bench (the load)";

/// The row of every PostgreSQL process together.
const POSTGRES: &str = "postgres (all backends)";

/// One process's share of a phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProcessCpu {
    pub process: String,
    /// Processor time over the phase's wall time: 1.0 is one core busy.
    pub cores: f64,
    /// Processor time per ended saga.
    pub ms_per_saga: f64,
}

/// The processor time used so far, by process.
pub(crate) struct Sample {
    at: Instant,
    ticks: BTreeMap<String, u64>,
    /// PostgreSQL's by backend, not summed: backends come and go (a pool
    /// closing an idle connection), and a sum falls when a busy one exits.
    postgres: BTreeMap<u32, u64>,
}

/// Reads the processor time of the processes whose pid files are in
/// `run_dir` (none when it is `None`), PostgreSQL's and the bench's own.
pub(crate) fn sample(run_dir: Option<&Path>) -> Sample {
    let mut ticks = BTreeMap::new();
    let pid_files = run_dir
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "pid"));
    for path in pid_files {
        let pid = std::fs::read_to_string(&path).ok();
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        if let (Some(pid), Some(name)) = (pid, name) {
            if let Some((_, used)) = stat(pid.trim()) {
                ticks.insert(name, used);
            }
        }
    }
    if let Some((_, used)) = stat("self") {
        ticks.insert(BENCH_PROCESS.to_owned(), used);
    }
    Sample {
        at: Instant::now(),
        ticks,
        postgres: postgres_ticks(),
    }
}

/// Each PostgreSQL process's processor time so far, in ticks, by pid.
pub(crate) fn postgres_ticks() -> BTreeMap<u32, u64> {
    let mut ticks = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((comm, used)) = stat(&pid.to_string()) {
            if comm == "postgres" {
                ticks.insert(pid, used);
            }
        }
    }
    ticks
}

/// A process's command name and user plus system time, in ticks.
fn stat(pid: &str) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: the name may hold spaces and parentheses,
    // so the fields are counted from its last `)`.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // utime and stime are the 14th and 15th fields; `state` is the 3rd.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// What each process used between `before` and `after`, busiest first. A
/// platform process seen only once (restarted, or gone) is left out: its
/// time cannot be told. PostgreSQL's row counts each backend alive at the
/// end, from zero when it started in between; what a backend used after
/// `before` and before it exited is missed.
pub(crate) fn used(before: &Sample, after: &Sample, sagas: usize) -> Vec<ProcessCpu> {
    let wall = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
    let share = |process: &str, ticks: u64| {
        let seconds = ticks as f64 / TICKS_PER_SECOND;
        ProcessCpu {
            process: process.to_owned(),
            cores: seconds / wall,
            ms_per_saga: if sagas == 0 {
                0.0
            } else {
                seconds * 1000.0 / sagas as f64
            },
        }
    };
    let mut out: Vec<ProcessCpu> = after
        .ticks
        .iter()
        .filter_map(|(name, &end)| Some(share(name, end.checked_sub(*before.ticks.get(name)?)?)))
        .collect();
    let postgres = after
        .postgres
        .iter()
        .map(|(pid, &end)| end.saturating_sub(before.postgres.get(pid).copied().unwrap_or(0)))
        .sum();
    out.push(share(POSTGRES, postgres));
    out.sort_by(|a, b| b.cores.total_cmp(&a.cores));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_sees_its_own_processor_time_grow() {
        let before = sample(None);
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed().as_millis() < 200 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = sample(None);
        let used = used(&before, &after, 10);
        let bench = used
            .iter()
            .find(|p| p.process == BENCH_PROCESS)
            .expect("the bench's own row");
        // Busy for the whole 0.2 s, give or take a tick.
        assert!(bench.cores > 0.5, "{used:?}");
        assert!(bench.ms_per_saga >= 15.0, "{used:?}");
    }

    #[test]
    fn postgres_is_counted_by_backend_so_one_exiting_does_not_hide_the_rest() {
        let before = Sample {
            at: Instant::now(),
            ticks: BTreeMap::new(),
            // Backend 1 was busy and exits; 2 goes on.
            postgres: BTreeMap::from([(1, 500), (2, 10)]),
        };
        let after = Sample {
            at: before.at + std::time::Duration::from_secs(1),
            ticks: BTreeMap::new(),
            // 3 started in between.
            postgres: BTreeMap::from([(2, 30), (3, 5)]),
        };
        let used = used(&before, &after, 5);
        let postgres = used
            .iter()
            .find(|p| p.process == POSTGRES)
            .expect("PostgreSQL's row");
        // 20 ticks of 2 and 5 of 3: a quarter of a core, 50 ms per saga.
        assert!((postgres.cores - 0.25).abs() < 1e-9, "{used:?}");
        assert!((postgres.ms_per_saga - 50.0).abs() < 1e-9, "{used:?}");
    }
}
