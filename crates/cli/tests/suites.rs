//! The shipped suites for fail-point crashes, database faults, duplicate
//! delivery and poison messages pass in one `choreo chaos run`, each on a
//! platform of its own, and their reports show the faults did what they
//! say: every service died at its point, the databases were cut and slowed,
//! the copies published, the poison dead-lettered by every consumer of its
//! topics.

mod support;

use serde_json::Value;
use support::{chaos_many, printed, suite};

fn report(dir: &std::path::Path, name: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(
        dir.join(format!("{name}.json")),
    )?)?)
}

fn targets(report: &Value) -> Vec<String> {
    report["faults"]
        .as_array()
        .map(|faults| {
            faults
                .iter()
                .filter_map(|f| Some(format!("{} {}", f["kind"].as_str()?, f["target"].as_str()?)))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_faults_duplicates_and_poison_lose_nothing_and_apply_nothing_twice()
-> anyhow::Result<()> {
    let reports = std::env::temp_dir().join(choreo_testkit::unique_name("chaos-suites"));
    let output = chaos_many(
        &reports,
        &[
            suite("crash-points"),
            suite("database-faults"),
            suite("duplicates"),
            suite("poison"),
        ],
    )
    .await?;
    let text = printed(&output);
    assert!(output.status.success(), "{text}");
    for name in ["crash-points", "database-faults", "duplicates", "poison"] {
        let report = report(&reports, name)?;
        assert_eq!(report["passed"], true, "{name}: {text}");
        let orders = report["orders"].as_array().expect("orders");
        assert!(orders.iter().all(|o| o["right"] == true), "{name}: {text}");
        assert_eq!(
            report["audit"]["violations"].as_array().map(Vec::len),
            Some(0)
        );
    }

    let faults = targets(&report(&reports, "crash-points")?);
    for fault in [
        "crash-at payment@handler.before-commit",
        "crash-at inventory@consumer.after-commit",
        "crash-at order@relay.after-publish",
        "crash-at shipping@handler.before-commit",
    ] {
        assert!(
            faults.contains(&fault.to_owned()),
            "{fault} not in {faults:?}"
        );
    }
    let faults = targets(&report(&reports, "database-faults")?);
    for fault in [
        "db-cut payment",
        "db-latency inventory",
        "db-cut order",
        "db-cut shipping",
    ] {
        assert!(
            faults.contains(&fault.to_owned()),
            "{fault} not in {faults:?}"
        );
    }
    // Every copy asked for was there to publish.
    let faults = targets(&report(&reports, "duplicates")?);
    for topic in ["order", "inventory", "payment", "shipping"] {
        let fault = format!("duplicate {topic}.events×40");
        assert!(faults.contains(&fault), "{fault} not in {faults:?}");
    }
    // Four poison messages on order.events (three consumers) and four on
    // inventory.events (two): twenty dead letters, each from its topic.
    let poison = report(&reports, "poison")?;
    let letters: Vec<&str> = poison["dead_letters"]
        .as_object()
        .expect("dead letters")
        .values()
        .flat_map(|l| l.as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(letters.len(), 20, "{letters:?}");
    assert!(
        letters
            .iter()
            .all(|l| l.starts_with("order.events/") || l.starts_with("inventory.events/")),
        "{letters:?}"
    );
    let _ = std::fs::remove_dir_all(&reports);
    Ok(())
}
