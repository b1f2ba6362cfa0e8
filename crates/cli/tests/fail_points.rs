//! The suite that kills payment and shipping inside their handlers passes,
//! and the same suite on a build with a planted bug (offsets committed
//! before the effect, `choreo chaos run --mutant commit-offset-first`)
//! fails and says which orders suffered: proof that the suites catch the
//! bug they exist for. Every order in that suite is meant to succeed, so
//! every event lost at a crash is one a saga needs.

mod support;

use serde_json::Value;
use support::{chaos, chaos_with, printed, suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_killed_at_their_fail_points_lose_nothing_and_a_planted_bug_is_caught()
-> anyhow::Result<()> {
    let reports = std::env::temp_dir().join(choreo_testkit::unique_name("chaos-points"));
    let output = chaos(&reports, &suite("handler-crashes")).await?;
    let text = printed(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("suite handler-crashes (seed 41): PASS"),
        "{text}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(
        reports.join("handler-crashes.json"),
    )?)?;
    // Each service died at its point, and was healed.
    let targets: Vec<&str> = report["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .filter_map(|f| f["target"].as_str())
        .collect();
    for target in [
        "payment@handler.before-commit",
        "shipping@handler.before-commit",
    ] {
        assert!(targets.contains(&target), "{target} not in {targets:?}");
    }

    // The same suite and seed on a build that commits offsets before
    // effects: the events in hand at the crashes are lost, and the run
    // says which orders suffered.
    let output = chaos_with(
        &reports,
        &[suite("handler-crashes")],
        &["--mutant", "commit-offset-first"],
    )
    .await?;
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("suite handler-crashes (seed 41): FAIL"),
        "{text}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(
        reports.join("handler-crashes.json"),
    )?)?;
    let wrong: Vec<&Value> = report["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter(|o| o["right"] == false)
        .collect();
    // An order whose event was lost never completes: it times out.
    assert!(
        wrong.iter().any(|o| o["reason"] == "TIMEOUT"),
        "the planted bug went unnoticed: {text}"
    );
    assert!(text.contains("VIOLATION"), "{text}");
    let _ = std::fs::remove_dir_all(&reports);
    Ok(())
}
