//! Every process's log names the order and its trace.

use crate::helpers::*;
use anyhow::Context;
use serde_json::Value;
use std::{collections::BTreeMap, path::Path};

/// Every line a saga process logged about the order is one JSON object
/// that names the order and its trace, whichever span the line came from.
pub(crate) fn logs_name_the_order_and_its_trace(
    data: &Path,
    order_id: &str,
    trace_id: &str,
) -> anyhow::Result<()> {
    let mut lines_about = BTreeMap::<&str, usize>::new();
    for service in SAGA_PROCESSES {
        // Any replica may have handled the order: replica 0 logs to
        // `<service>.log`, replica i to `<service>-<i>.log`.
        for log in logs_of(data, service)? {
            let text = std::fs::read_to_string(&log).with_context(|| log.display().to_string())?;
            for line in text.lines().filter(|l| l.contains(order_id)) {
                let entry: Value = serde_json::from_str(line).with_context(|| {
                    format!("{} logged a line that is not JSON: {line}", log.display())
                })?;
                assert_eq!(entry["order_id"], order_id, "{service}: {line}");
                assert_eq!(entry["trace_id"], trace_id, "{service}: {line}");
                *lines_about.entry(service).or_default() += 1;
            }
        }
    }
    for service in &SAGA_PROCESSES[1..] {
        assert!(
            lines_about.contains_key(service),
            "{service} logged the order's step: {lines_about:?}"
        );
    }
    Ok(())
}

/// The log files of every replica of `service`.
pub(crate) fn logs_of(data: &Path, service: &str) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let dir = data.join("logs");
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        let path = entry?.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str()?.strip_suffix(".log"))
        else {
            continue;
        };
        let replica = stem.strip_prefix(service).is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix('-')
                    .is_some_and(|i| i.parse::<u32>().is_ok())
        });
        if replica {
            logs.push(path);
        }
    }
    anyhow::ensure!(!logs.is_empty(), "no log of {service} in {}", dir.display());
    Ok(logs)
}
