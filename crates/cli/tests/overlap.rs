//! Faults that overlap and the relay's lease handed over between replicas,
//! on the real broker and real processes, in one `choreo chaos run`:
//! - `overlap-short`: order killed and the broker killed while order
//!   rejoins its group, shipping stopped past its session timeout across
//!   the broker's restart, copies and poison published while the broker
//!   comes back. The runner rides all of it out, its report marks the faults
//!   that met, and every consumer group catches up by its committed offsets
//!   with no service restarted for it.
//! - `relay-handover`: two replicas of order, inventory and payment, the
//!   relay's lease holder killed after publishing and before marking; a
//!   replica takes the lease over and publishes the rows again, and every
//!   copy is skipped by the inboxes.
//! - `broker-cut`: payment's two replicas cut off the broker past their
//!   session timeout, inventory cut meanwhile, then shipping, each through
//!   the proxy every client connects through; the cuts close the services'
//!   connections and refuse new ones, and every group catches up after.
//! - `replicas`: three replicas of every saga service, replicas killed,
//!   inventory scaled in to one and out to three, payment out to five and in
//!   to two, mid-load; every group rebalances over the replicas left and
//!   catches up (a replica scaled in was once kept in its group for good by
//!   the local broker, and its partitions with it).

mod support;

use serde_json::Value;
use support::{chaos_many, printed, suite};

fn faults(report: &Value) -> Vec<(String, String, Vec<String>)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    report["faults"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let overlapped = f["overlapped"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            (text(&f["kind"]), text(&f["target"]), overlapped)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_faults_and_relay_handovers_lose_nothing() -> anyhow::Result<()> {
    let reports = std::env::temp_dir().join(choreo_testkit::unique_name("chaos-overlap"));
    let output = chaos_many(
        &reports,
        &[
            suite("overlap-short"),
            suite("relay-handover"),
            suite("broker-cut"),
            suite("replicas"),
        ],
    )
    .await?;
    let text = printed(&output);
    assert!(output.status.success(), "{text}");
    let report = |name: &str| -> anyhow::Result<Value> {
        Ok(serde_json::from_str(&std::fs::read_to_string(
            reports.join(format!("{name}.json")),
        )?)?)
    };
    for name in ["overlap-short", "relay-handover", "broker-cut", "replicas"] {
        let report = report(name)?;
        // Passing includes every consumer group committed to the end of
        // its topics, the dead letters as expected, the audit clean.
        assert_eq!(report["passed"], true, "{name}: {text}");
        assert_eq!(report["violations"].as_array().map(Vec::len), Some(0));
    }

    let overlap = faults(&report("overlap-short")?);
    let (_, _, during_pause) = overlap
        .iter()
        .find(|(kind, ..)| kind == "pause")
        .expect("the pause in the report");
    // The copies are of the messages the topic held then (`payment.events×N`).
    for other in ["broker-kill broker", "duplicate payment.events×"] {
        assert!(
            during_pause.iter().any(|o| o.starts_with(other)),
            "{other} not marked as overlapping the pause: {during_pause:?}\n{text}"
        );
    }
    assert!(text.contains("overlapping broker-kill broker"), "{text}");
    assert!(text.contains("faults overlapped another"), "{text}");

    // Each relay killed between publishing and marking left rows its
    // successor published again: copies the inboxes skipped (the suite
    // passed, so no effect was applied twice and nothing was lost).
    let handover = report("relay-handover")?;
    let crashes = faults(&handover);
    assert_eq!(crashes.len(), 9, "{crashes:?}");
    assert!(
        crashes
            .iter()
            .all(|(kind, target, _)| kind == "crash-at" && target.ends_with("@relay.after-publish")),
        "{crashes:?}"
    );
    for topic in ["order.events", "inventory.events", "payment.events"] {
        let copies = handover["copies"][topic].as_u64().unwrap_or_default();
        assert!(copies > 0, "no copy on {topic}: {}", handover["copies"]);
    }

    // Each cut reached its service: open connections closed, new ones
    // refused (`payment (10 connections closed, 81 refused)`).
    let cuts = faults(&report("broker-cut")?);
    assert_eq!(cuts.len(), 3, "{cuts:?}");
    for (kind, target, _) in &cuts {
        assert_eq!(kind, "broker-cut");
        let numbers: Vec<u64> = target
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        assert!(
            numbers.len() == 2 && numbers.iter().all(|n| *n > 0),
            "a cut that closed or refused nothing: {target}\n{text}"
        );
    }

    // Every change of scale the suite asks for was made, and replicas were
    // killed by name (`payment-1`).
    let scaling = faults(&report("replicas")?);
    let scaled: Vec<&str> = scaling
        .iter()
        .filter(|(kind, ..)| kind == "scale")
        .map(|(_, target, _)| target.as_str())
        .collect();
    assert_eq!(
        scaled,
        [
            "inventory 3→1",
            "payment 3→5",
            "inventory 1→3",
            "payment 5→2"
        ],
        "{text}"
    );
    let killed = scaling
        .iter()
        .filter(|(kind, ..)| kind == "kill-replica")
        .count();
    assert_eq!(killed, 7, "{scaling:?}");
    Ok(())
}
