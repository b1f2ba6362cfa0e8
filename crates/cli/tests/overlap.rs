//! Faults that overlap, on the real broker and real processes: order killed
//! and the broker killed while order rejoins its group, shipping stopped
//! past its session timeout across the broker's restart, copies and poison
//! published while the broker comes back. The runner rides all of it out,
//! its report marks the faults that met, and every consumer group catches up
//! by its committed offsets with no service restarted for it.

mod support;

use serde_json::Value;
use support::{chaos, printed, suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_paused_across_a_broker_restart_catches_up_by_its_committed_offsets()
-> anyhow::Result<()> {
    let reports = std::env::temp_dir().join(choreo_testkit::unique_name("chaos-overlap"));
    let output = chaos(&reports, &suite("overlap-short")).await?;
    let text = printed(&output);
    assert!(output.status.success(), "{text}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(
        reports.join("overlap-short.json"),
    )?)?;
    // Passing includes every consumer group committed to the end of its
    // topics, the poison dead-lettered by each consumer, the audit clean.
    assert_eq!(report["passed"], true, "{text}");
    assert_eq!(report["violations"].as_array().map(Vec::len), Some(0));

    let faults = report["faults"].as_array().expect("faults");
    let overlapped = |kind: &str| -> Vec<String> {
        faults
            .iter()
            .find(|f| f["kind"] == kind)
            .and_then(|f| f["overlapped"].as_array())
            .map(|o| {
                o.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let during_pause = overlapped("pause");
    // The copies are of the messages the topic held then (`payment.events×N`).
    for other in ["broker-kill broker", "duplicate payment.events×"] {
        assert!(
            during_pause.iter().any(|o| o.starts_with(other)),
            "{other} not marked as overlapping the pause: {during_pause:?}\n{text}"
        );
    }
    assert!(text.contains("overlapping broker-kill broker"), "{text}");
    assert!(text.contains("faults overlapped another"), "{text}");
    Ok(())
}
