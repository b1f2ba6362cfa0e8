//! `choreo dlq` lists, shows and redrives a poison message.

use crate::helpers::*;
use anyhow::Context;
use choreo_testkit::wait_until;
use serde_json::Value;
use tokio::process::Command;

/// Runs `choreo dlq …` against the platform's broker.
pub(crate) async fn dlq(broker_port: u16, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_choreo"))
        .arg("dlq")
        .args(args)
        .args(["--bootstrap-servers", &format!("127.0.0.1:{broker_port}")])
        .output()
        .await?)
}

pub(crate) async fn dlq_list(broker_port: u16) -> anyhow::Result<Vec<Value>> {
    let out = dlq(broker_port, &["list", "--json"]).await?;
    anyhow::ensure!(
        out.status.success(),
        "choreo dlq list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Bytes that are not Avro on `order.events`: each of its consumers
/// (inventory, payment and shipping) dead-letters them and carries on; an
/// operator lists and shows them, and a redrive for inventory comes back as
/// a new dead letter (the bytes are still bad) without the other two seeing
/// it again.
pub(crate) async fn dead_letters(broker_port: u16) -> anyhow::Result<()> {
    let producer = choreo_testkit::RawProducer::new(&format!("127.0.0.1:{broker_port}"))?;
    producer
        .send("order.events", None, "not-an-order", b"garbage", &[])
        .await?;
    let letters = wait_until(
        "every consumer to dead-letter the garbage",
        DEADLINE,
        || async {
            let letters = dlq_list(broker_port).await.ok()?;
            (letters.len() >= 3).then_some(letters)
        },
    )
    .await?;
    let mut services: Vec<&str> = letters
        .iter()
        .filter_map(|l| l["service"].as_str())
        .collect();
    services.sort_unstable();
    assert_eq!(
        services,
        ["inventory", "payment", "shipping"],
        "{letters:#?}"
    );
    let inventory_letter = letters
        .iter()
        .find(|l| l["service"] == "inventory")
        .and_then(|l| l["id"].as_str())
        .context("inventory's letter has an id")?
        .to_owned();

    let shown = dlq(broker_port, &["show", &inventory_letter]).await?;
    let shown_text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{shown_text}");
    assert!(
        shown_text.contains("source:     order.events"),
        "{shown_text}"
    );
    assert!(
        shown_text.contains("key:        not-an-order"),
        "{shown_text}"
    );
    assert!(shown_text.contains("value does not decode"), "{shown_text}");

    // A mistyped id redrives nothing.
    let unknown = uuid::Uuid::new_v4().to_string();
    let refused = dlq(broker_port, &["redrive", "--ids", &unknown]).await?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no dead letter"));
    assert_eq!(dlq_list(broker_port).await?.len(), 3);

    let redriven = dlq(broker_port, &["redrive", "--service", "inventory", "--all"]).await?;
    assert!(
        redriven.status.success(),
        "{}",
        String::from_utf8_lossy(&redriven.stderr)
    );
    // More garbage with the same key follows the redriven copy on its
    // partition: once payment and shipping have dead-lettered it, they have
    // also passed the redriven copy, so counts that stay at two prove they
    // skipped the redrive rather than not having reached it yet.
    producer
        .send("order.events", None, "not-an-order", b"more garbage", &[])
        .await?;
    let count = |letters: &[Value], service: &str, redriven: bool| {
        letters
            .iter()
            .filter(|l| l["service"] == service && l["redriven_at"].is_null() != redriven)
            .count()
    };
    let after = wait_until("every consumer to pass the redrive", DEADLINE, || async {
        let letters = dlq_list(broker_port).await.ok()?;
        let of = |service: &str| letters.iter().filter(|l| l["service"] == service).count();
        (of("inventory") >= 3 && of("payment") >= 2 && of("shipping") >= 2).then_some(letters)
    })
    .await?;
    // Inventory: the redriven letter, the redriven copy still failing, and
    // the new garbage; payment and shipping: the two pieces of garbage,
    // nothing more.
    assert_eq!(count(&after, "inventory", true), 1, "{after:#?}");
    assert_eq!(count(&after, "inventory", false), 2, "{after:#?}");
    for other in ["payment", "shipping"] {
        assert_eq!(
            count(&after, other, false),
            2,
            "{other} skipped the redrive: {after:#?}"
        );
    }
    assert_eq!(after.len(), 7, "{after:#?}");
    Ok(())
}
