//! The payment-provider suite: the provider declines, errors, times out
//! and dies while orders stream in, and still no charge is taken twice or
//! kept for a cancelled order. The same suite on a build whose payment
//! service charges under a new idempotency key on every try (`--mutant
//! provider-fresh-key`) fails with the orders charged twice named: the
//! reconciliation of the provider's ledger catches what a retry without its
//! key does.

mod support;

use serde_json::Value;
use support::{chaos, chaos_with, printed, suite};

fn report(dir: &std::path::Path) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(
        dir.join("payment-provider.json"),
    )?)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_provider_charges_each_order_once_and_a_keyless_retry_is_caught()
-> anyhow::Result<()> {
    let reports = std::env::temp_dir().join(choreo_testkit::unique_name("chaos-provider"));
    let output = chaos(&reports, &suite("payment-provider")).await?;
    let text = printed(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("suite payment-provider (seed 23): PASS"),
        "{text}"
    );
    let passed = report(&reports)?;
    let targets: Vec<String> = passed["faults"]
        .as_array()
        .expect("faults")
        .iter()
        .filter_map(|f| Some(format!("{} {}", f["kind"].as_str()?, f["target"].as_str()?)))
        .collect();
    for fault in [
        "provider-decline provider 20%",
        "provider-error provider 30%",
        "provider-timeout provider 30%",
        "kill provider",
    ] {
        assert!(
            targets.contains(&fault.to_owned()),
            "{fault} not in {targets:?}"
        );
    }
    // The provider's declines reached orders meant to succeed, which ended
    // PAYMENT_DECLINED, and that was judged right.
    let orders = passed["orders"].as_array().expect("orders");
    assert!(
        orders
            .iter()
            .any(|o| o["kind"] == "succeed" && o["reason"] == "PAYMENT_DECLINED"),
        "no declined charge reached an order: {text}"
    );
    assert!(orders.iter().all(|o| o["right"] == true), "{text}");

    let output = chaos_with(
        &reports,
        &[suite("payment-provider")],
        &["--mutant", "provider-fresh-key"],
    )
    .await?;
    let text = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("suite payment-provider (seed 23): FAIL"),
        "{text}"
    );
    let failed = report(&reports)?;
    let provider_violations: Vec<&Value> = failed["audit"]["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter(|v| v["invariant"] == "provider")
        .collect();
    assert!(
        !provider_violations.is_empty(),
        "the charges taken twice went unnoticed: {text}"
    );
    assert!(
        provider_violations
            .iter()
            .all(|v| v["order_id"].is_string()),
        "{provider_violations:?}"
    );
    let _ = std::fs::remove_dir_all(&reports);
    Ok(())
}
