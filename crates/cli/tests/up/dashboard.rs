//! The dashboard and the admin routes show the sagas and every replica.

use crate::helpers::*;
use anyhow::Context;
use choreo_testkit::wait_until;
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::Stdio,
};
use tokio::process::Command;

/// `/v1/admin/platform` lists each replica with its instance id, each of
/// which consumes (holds partitions of its group), and each has a pid file.
pub(crate) async fn every_replica_is_listed(
    edge: &str,
    admin_token: &str,
    data: &Path,
) -> anyhow::Result<()> {
    let admin = bearer_client(admin_token)?;
    let platform: Value = wait_until(
        "both inventory replicas to hold partitions",
        DEADLINE,
        || async {
            let platform = get_json(&admin, format!("{edge}/v1/admin/platform")).await?;
            let inventory: Vec<&Value> = platform["services"]
                .as_array()?
                .iter()
                .filter(|s| s["service"] == "inventory")
                .collect();
            // Lag is read per partition the replica holds.
            let consuming = inventory.iter().all(|s| {
                s["runtime"]["consumer_lag"]
                    .as_object()
                    .is_some_and(|lag| !lag.is_empty())
            });
            (inventory.len() == 2 && consuming).then_some(platform.clone())
        },
    )
    .await?;
    let instances: Vec<&str> = platform["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["service"] == "inventory")
        .filter_map(|s| s["instance"].as_str())
        .collect();
    assert_eq!(instances, ["inventory-0", "inventory-1"], "{platform:#}");
    for name in ["inventory", "inventory-1"] {
        assert!(pid_of(data, name).is_some(), "no pid file for {name}");
    }
    Ok(())
}

/// The saga dashboard in headless Chromium, as an operator uses it: opened
/// with an admin token, it shows the confirmed order and the cancelled one
/// with its reason, a click on the confirmed one shows its five steps, and
/// the saga's graph shows every step with its figures and every reaction,
/// and orders placed (with `customer`, each `doomed` to be cancelled) while
/// it is open show on its charts. It saves a screenshot in the test's
/// temporary folder.
pub(crate) async fn the_dashboard_shows_the_sagas(
    edge: &str,
    admin_token: &str,
    confirmed: &str,
    cancelled: &str,
    customer: &reqwest::Client,
    doomed: &Value,
) -> anyhow::Result<()> {
    use fantoccini::{ClientBuilder, Locator};
    let port = free_port();
    let _driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting chromedriver (`make test` installs Debian's chromium-driver)")?;
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"],
        }
    });
    let capabilities = match capabilities {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    };
    let browser = wait_until("chromedriver to take a session", DEADLINE, || {
        let capabilities = capabilities.clone();
        async move {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .ok()
        }
    })
    .await?;
    let result = async {
        browser
            .goto(&format!("{edge}/ui#token={admin_token}"))
            .await?;
        let text_of = |css: String| {
            let browser = browser.clone();
            async move {
                let found = browser.find(Locator::Css(&css)).await.ok()?;
                found.text().await.ok()
            }
        };
        let row = |id: &str, status: &str| format!("tr[data-order='{id}'][data-status='{status}']");
        wait_until("the confirmed order on the dashboard", DEADLINE, || {
            text_of(format!("{} td.status", row(confirmed, "CONFIRMED")))
        })
        .await?;
        let reason = wait_until("the cancelled order on the dashboard", DEADLINE, || {
            text_of(format!("{} td.reason", row(cancelled, "CANCELLED")))
        })
        .await?;
        assert_eq!(reason, "OUT_OF_STOCK");
        browser
            .find(Locator::Css(&row(confirmed, "CONFIRMED")))
            .await?
            .click()
            .await?;
        wait_until("the confirmed order's five steps", DEADLINE, || {
            let browser = browser.clone();
            async move {
                let steps = browser.find_all(Locator::Css("#timeline li")).await.ok()?;
                (steps.len() == 5).then_some(())
            }
        })
        .await?;
        let last = text_of("#timeline li:last-child".to_owned())
            .await
            .unwrap_or_default();
        assert!(last.contains("OrderConfirmed"), "{last}");
        // A card is filled from the edge's next poll of `/v1/admin/platform`,
        // which may come after the timeline (seen once: payment's was empty).
        for service in ["order", "inventory", "payment", "shipping"] {
            wait_until(&format!("{service}'s card"), DEADLINE, || async move {
                let card = text_of(format!("[data-service='{service}']")).await?;
                card.contains("dead letters").then_some(())
            })
            .await?;
        }
        // The saga's graph: a box per step with its figures, an arrow per
        // reaction and per command, as the choreography lists them.
        use choreo_events::{Record, choreography::CHOREOGRAPHY};
        let is_step = |r: &Record| !matches!(r, Record::ProductSet | Record::WalletSet);
        let arrows: usize = CHOREOGRAPHY
            .iter()
            .flat_map(|c| {
                c.reactions
                    .iter()
                    .filter(|r| is_step(&r.on))
                    .map(|r| r.emits)
            })
            .chain(
                CHOREOGRAPHY
                    .iter()
                    .flat_map(|c| c.commands.iter().map(|c| c.emits)),
            )
            .map(|emits| emits.iter().filter(|r| is_step(r)).count())
            .sum();
        let steps = Record::ALL.iter().filter(|r| is_step(r)).count();
        wait_until("the saga's graph", DEADLINE, || {
            let browser = browser.clone();
            async move {
                let boxes = browser.find_all(Locator::Css("#flow g.step")).await.ok()?;
                let lines = browser
                    .find_all(Locator::Css("#flow path.reaction"))
                    .await
                    .ok()?;
                (boxes.len() == steps && lines.len() == arrows).then_some(())
            }
        })
        .await?;
        let confirmed_box = text_of("#flow g.step[data-record='OrderConfirmed']".to_owned())
            .await
            .unwrap_or_default();
        assert!(
            confirmed_box.contains("/min · p50") && confirmed_box.contains("waiting"),
            "{confirmed_box}"
        );
        let shipping_arrow = browser
            .find(Locator::Css(
                "#flow path.reaction[data-from='PaymentCompleted'][data-to='ShipmentScheduled']",
            ))
            .await?;
        assert_eq!(
            shipping_arrow.attr("data-by").await?.as_deref(),
            Some("shipping")
        );
        // The header says "live" from its own 500 ms tick after a poll
        // answered, so it may still read "connecting…" when the cards are
        // filled (seen once in a clean-clone run).
        wait_until("the header to say live", DEADLINE, || async {
            let live = text_of("#live".to_owned()).await?;
            live.starts_with("live").then_some(())
        })
        .await?;
        // The charts: sagas placed while the page is open are a spike of
        // cancelled sagas per second with a p99, and each saga service has
        // a lag line and an outbox line.
        let figure = |css: &'static str, attr: &'static str| {
            let browser = browser.clone();
            async move {
                let line = browser.find(Locator::Css(css)).await.ok()?;
                line.attr(attr).await.ok()??.parse::<f64>().ok()
            }
        };
        wait_until("a first rate on the sagas chart", DEADLINE, || async {
            let points = figure("#chart-sagas path[data-name='cancelled']", "data-points").await?;
            (points >= 1.0).then_some(())
        })
        .await?;
        for _ in 0..3 {
            let placed = customer
                .post(format!("{edge}/v1/orders"))
                .json(doomed)
                .send()
                .await?;
            assert_eq!(placed.status(), 201);
        }
        wait_until(
            "the cancelled sagas and their p99 on the charts",
            DEADLINE,
            || async {
                let rate = figure("#chart-sagas path[data-name='cancelled']", "data-max").await?;
                let p99 = figure("#chart-p99 path[data-name='p99']", "data-max").await?;
                (rate > 0.0 && p99 > 0.0).then_some(())
            },
        )
        .await?;
        for chart in ["#chart-lag", "#chart-outbox"] {
            let mut names = Vec::new();
            for line in browser
                .find_all(Locator::Css(&format!("{chart} path.series")))
                .await?
            {
                names.push(line.attr("data-name").await?.unwrap_or_default());
            }
            assert_eq!(
                names,
                ["inventory", "order", "payment", "shipping"],
                "{chart}"
            );
        }
        let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
        std::fs::write(&screenshot, browser.screenshot().await?)?;
        println!("dashboard screenshot: {}", screenshot.display());
        anyhow::Ok(())
    }
    .await;
    let _ = browser.close().await;
    result
}
