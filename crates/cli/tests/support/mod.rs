//! Running the real `choreo chaos run`, as a user or a CI job would.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use tokio::process::Command;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub async fn chaos(report_dir: &Path, suite: &Path) -> anyhow::Result<std::process::Output> {
    chaos_with(report_dir, &[suite.to_path_buf()], &[]).await
}

/// Runs several suites in one `choreo chaos run`, one after the other.
pub async fn chaos_many(
    report_dir: &Path,
    suites: &[PathBuf],
) -> anyhow::Result<std::process::Output> {
    chaos_with(report_dir, suites, &[]).await
}

pub async fn chaos_with(
    report_dir: &Path,
    suites: &[PathBuf],
    flags: &[&str],
) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_choreo"))
        .args(["chaos", "run"])
        .args(suites)
        .arg("--report-dir")
        .arg(report_dir)
        .args(flags)
        .output()
        .await?)
}

pub fn suite(name: &str) -> PathBuf {
    repo_root().join(format!("saga-tests/suites/{name}.toml"))
}

/// What the command printed, stdout then stderr.
pub fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
