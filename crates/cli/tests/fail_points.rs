//! The suite that kills every saga service at its fail points passes, and
//! the same suite on a build with a planted bug (offsets committed before
//! the effect, `choreo chaos run --mutant commit-offset-first`) fails and
//! says which orders suffered: proof that the suites catch the bug they
//! exist for.

mod support;

use serde_json::Value;
use support::{chaos, chaos_with, printed, suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_killed_at_their_fail_points_lose_nothing_and_a_planted_bug_is_caught()
-> anyhow::Result<()> {
    let reports = std::env::temp_dir().join(choreo_testkit::unique_name("chaos-points"));
    let output = chaos(&reports, &suite("crash-points")).await?;
    let text = printed(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("suite crash-points (seed 23): PASS"),
        "{text}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("crash-points.json"))?)?;
    // Each service died at its point: four crashes, each one healed.
    let targets: Vec<&str> = report["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .filter_map(|f| f["target"].as_str())
        .collect();
    for target in [
        "payment@handler.before-commit",
        "inventory@consumer.after-commit",
        "order@relay.after-publish",
        "shipping@handler.before-commit",
    ] {
        assert!(targets.contains(&target), "{target} not in {targets:?}");
    }

    // The same suite and seed on a build that commits offsets before
    // effects: the events in hand at the crashes are lost, and the run
    // says which orders suffered.
    let output = chaos_with(
        &reports,
        &[suite("crash-points")],
        &["--mutant", "commit-offset-first"],
    )
    .await?;
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("suite crash-points (seed 23): FAIL"),
        "{text}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("crash-points.json"))?)?;
    let wrong: Vec<&Value> = report["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter(|o| o["right"] == false)
        .collect();
    let audit = report["audit"]["violations"].as_array().map_or(0, Vec::len);
    assert!(
        !wrong.is_empty() || audit > 0,
        "the planted bug went unnoticed: {text}"
    );
    assert!(text.contains("VIOLATION"), "{text}");
    let _ = std::fs::remove_dir_all(&reports);
    Ok(())
}
