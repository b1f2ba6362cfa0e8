//! `choreo chaos run` as a user runs it: a shipped suite passes under its
//! fault with reports a CI can read, and a suite whose expectation does not
//! hold fails with the violation named. (`fail_points.rs` runs the suite
//! that kills services from inside; it is a test binary of its own so that
//! its platforms do not share the two cores with these.)

mod support;

use serde_json::Value;
use support::{chaos, printed, suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_crash_suite_passes_and_reports_what_happened() -> anyhow::Result<()> {
    let reports = std::env::temp_dir().join(choreo_testkit::unique_name("chaos-reports"));
    let output = chaos(&reports, &suite("edge-crash")).await?;
    let text = printed(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("suite edge-crash (seed 5): PASS"), "{text}");

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("edge-crash.json"))?)?;
    assert_eq!(report["passed"], true);
    assert_eq!(report["orders"].as_array().map(Vec::len), Some(60));
    let faults = report["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0]["target"], "edge");
    assert!(faults[0]["healed_at"].as_f64() >= faults[0]["injected_at"].as_f64());
    // Every order decided, each as its kind allows, and more than one kind
    // of end reached.
    let orders = report["orders"].as_array().expect("orders");
    assert!(orders.iter().all(|o| o["right"] == true));
    let outcomes = report["outcomes"].as_object().expect("outcomes");
    assert!(outcomes.contains_key("CONFIRMED"), "{outcomes:?}");
    assert!(
        outcomes.keys().any(|k| k.starts_with("CANCELLED/")),
        "{outcomes:?}"
    );
    assert!(report["violations"].as_array().is_some_and(Vec::is_empty));

    let junit = std::fs::read_to_string(reports.join("junit.xml"))?;
    assert!(junit.contains("testcase name=\"edge-crash\""), "{junit}");
    assert!(!junit.contains("<failure"), "{junit}");
    let _ = std::fs::remove_dir_all(&reports);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_whose_expectation_does_not_hold_fails_and_says_why() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(choreo_testkit::unique_name("chaos-failing"));
    std::fs::create_dir_all(&dir)?;
    // Every order is meant to succeed, but the suite expects none to.
    let suite = dir.join("impossible.toml");
    std::fs::write(
        &suite,
        r#"
name = "impossible"
catalog = { TEA-01 = { price_cents = 500, stock = 100 } }
wallets = { alice = 100000 }
load = { orders = 3 }
expect = { CONFIRMED = 0 }
"#,
    )?;
    let output = chaos(&dir, &suite).await?;
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("suite impossible (seed 1): FAIL"), "{text}");
    assert!(
        text.contains("VIOLATION 3 orders CONFIRMED, expected 0..=0"),
        "{text}"
    );
    let junit = std::fs::read_to_string(dir.join("junit.xml"))?;
    assert!(junit.contains("<failure"), "{junit}");

    // A suite with a mistake is refused before anything starts.
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "name = \"broken\"\nload = { orders = 0 }\n")?;
    let output = chaos(&dir, &broken).await?;
    assert!(!output.status.success());
    assert!(printed(&output).contains("catalog"), "{}", printed(&output));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
