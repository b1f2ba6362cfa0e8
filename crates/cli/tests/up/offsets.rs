//! `choreo offsets` shows each group's offsets and who holds each partition.

use crate::helpers::*;
use choreo_testkit::wait_until;
use serde_json::Value;
use std::collections::BTreeSet;
use tokio::process::Command;

/// `choreo offsets`: once the platform is quiet, every partition of
/// payment's inputs read to its end (its lag 0), the ends matching what is
/// on them; inventory's partitions each held by one of its two replicas,
/// named by instance id; an unknown service is refused by name.
pub(crate) async fn offsets(broker_port: u16) -> anyhow::Result<()> {
    let bootstrap = format!("127.0.0.1:{broker_port}");
    let run = |args: Vec<&'static str>| {
        let bootstrap = bootstrap.clone();
        async move {
            Command::new(env!("CARGO_BIN_EXE_choreo"))
                .arg("offsets")
                .args(args)
                .args(["--bootstrap-servers", &bootstrap])
                .output()
                .await
        }
    };
    let rows: Vec<Value> = wait_until("payment's group to reach the end", DEADLINE, || async {
        let out = run(vec!["--service", "payment", "--json"]).await.ok()?;
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).ok()?;
        rows.iter().all(|r| r["lag"] == 0).then_some(rows)
    })
    .await?;
    // Four partitions of each of payment's two input topics.
    assert_eq!(rows.len(), 8, "{rows:#?}");
    assert!(rows.iter().all(|r| r["service"] == "payment"));
    assert!(
        rows.iter()
            .any(|r| r["topic"] == "inventory.events" && r["end"].as_i64() > Some(0)),
        "{rows:#?}"
    );
    let table = run(vec![]).await?;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{text}");
    for service in ["order", "inventory", "payment", "shipping"] {
        assert!(text.contains(service), "{service} missing from {text}");
    }
    assert!(text.contains("HELD BY"), "{text}");
    let holders = wait_until(
        "inventory's partitions held by its replicas",
        DEADLINE,
        || async {
            let rows = rows_of_offsets(broker_port, "inventory").await.ok()?;
            let holders: Option<BTreeSet<String>> = rows
                .iter()
                .map(|r| r["held_by"].as_str().map(str::to_owned))
                .collect();
            holders.filter(|h| h.len() == 2)
        },
    )
    .await?;
    assert_eq!(
        holders.iter().map(String::as_str).collect::<Vec<_>>(),
        ["inventory-0", "inventory-1"]
    );
    let unknown = run(vec!["--service", "billing"]).await?;
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no service \"billing\""),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    Ok(())
}
