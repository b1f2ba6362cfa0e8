//! `choreo up` as a user runs it: the printed `curl` places an order that is
//! confirmed, its saga is one trace across all five processes, a service
//! that dies is restarted, one stopped with SIGTERM
//! under load exits 0 and loses nothing, `choreo dlq` shows and redrives a
//! poison message, `choreo replay` brings a service restored from a backup
//! back to the truth and changes nothing when run again, `choreo rebuild
//! order-timeline` mends a damaged timeline from the topics, and Ctrl-C
//! leaves nothing running.

mod dashboard;
mod dead_letters;
mod helpers;
mod logs;
mod metrics;
mod monitoring;
mod offsets;
mod rebuild;
mod restore;
mod sigterm;
mod traces;

use anyhow::Context;
use choreo_testkit::{OtlpReceiver, unique_name, wait_until};
use dashboard::*;
use dead_letters::*;
use helpers::*;
use logs::*;
use metrics::*;
use monitoring::*;
use nix::{sys::signal::Signal, unistd::Pid};
use offsets::*;
use serde_json::Value;
use sigterm::*;
use std::{
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};
use traces::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choreo_up_runs_a_platform_that_confirms_the_printed_order_and_stops_clean()
-> anyhow::Result<()> {
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_choreo"))
        .parent()
        .context("binary folder")?
        .to_path_buf();
    for service in [
        "order",
        "inventory",
        "payment",
        "shipping",
        "edge",
        "schema-registry",
        "provider",
    ] {
        anyhow::ensure!(
            bin_dir.join(format!("choreo-{service}")).exists(),
            "choreo-{service} is not built; `make test` (or `cargo build --workspace --bins`) builds it"
        );
    }
    let data = std::env::temp_dir().join(unique_name("choreo-up"));
    let db_prefix = format!("{}_", unique_name("choreo_t_up"));
    let edge_port = free_port_block(8);
    let edge = format!("http://127.0.0.1:{edge_port}");
    let broker_port = free_port();

    let _reaper = Reaper(data.join("run"));
    // Where an OpenTelemetry collector would be; every process exports to
    // it, the batch sent a tenth of a second after its first span.
    let otlp = OtlpReceiver::start().await?;
    let mut choreo = Command::new(env!("CARGO_BIN_EXE_choreo"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp.endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("CHOREO_LOG_FORMAT", "json")
        .arg("up")
        .arg("--data-dir")
        .arg(&data)
        .args(["--edge-port", &edge_port.to_string()])
        .args(["--broker-port", &broker_port.to_string()])
        .args(["--db-prefix", &db_prefix])
        // Two replicas of inventory: the saga, the dashboard and the
        // restore drill (which holds every replica) run against them.
        .args(["--replicas", "inventory=2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let output = Arc::new(Mutex::new(Vec::<String>::new()));
    for stream in [
        choreo
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        choreo
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
    ]
    .into_iter()
    .flatten()
    {
        let output = output.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut out) = output.lock() {
                    out.push(line);
                }
            }
        });
    }
    let said = |text: &'static str| {
        let output = output.clone();
        move || {
            let found = output
                .lock()
                .map(|o| o.iter().any(|l| l.contains(text)))
                .unwrap_or(false);
            std::future::ready(found.then_some(()))
        }
    };
    let result = async {
        wait_until(
            "choreo up to print its banner",
            DEADLINE,
            said("Ctrl-C stops everything"),
        )
        .await?;
        let banner = output.lock().map(|o| o.clone()).unwrap_or_default();
        assert!(
            banner.iter().any(|l| l.contains(&edge)),
            "the edge URL is printed"
        );
        assert!(banner.iter().any(|l| l.contains("schema registry")));
        assert!(
            banner
                .iter()
                .any(|l| l.contains(&format!("{edge}/ui#token="))),
            "the dashboard's URL is printed, with a token"
        );
        assert!(banner.iter().any(|l| l.contains("Kafka bootstrap")));

        // The printed curl, as a user would paste it.
        let body = printed_order_body(&banner).context("the banner has a curl with a JSON body")?;
        let token = printed_token(&banner).context("the curl carries a bearer token")?;
        let anonymous = reqwest::Client::new()
            .post(format!("{edge}/v1/orders"))
            .json(&body)
            .send()
            .await?;
        assert_eq!(anonymous.status(), 401, "no token, no order");
        let http = bearer_client(&token)?;
        let operator = choreo_token(&data, &["--customer", "operator", "--admin"]).await?;
        let targets = metrics_targets(&edge, &operator).await?;
        let metrics_before = scrape_all(&targets).await?;
        // The client's own trace, which the saga continues.
        let trace_id = uuid::Uuid::new_v4().simple().to_string();
        let client_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
        let response = http
            .post(format!("{edge}/v1/orders"))
            .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
            .json(&body)
            .send()
            .await?;
        assert_eq!(response.status(), 201);
        let location = response.headers()["location"].to_str()?.to_owned();
        let confirmed = wait_until("the printed order to be confirmed", DEADLINE, || async {
            let order = get_json(&http, format!("{edge}{location}?wait=5")).await?;
            // Payment's event reaches the order service on its own topic,
            // possibly just after the confirmation: wait for the whole
            // timeline, not only the status.
            let complete = order["timeline"].as_array().map(Vec::len) == Some(5);
            (order["status"] == "CONFIRMED" && complete).then_some(order)
        })
        .await?;
        assert_eq!(confirmed["timeline"][4]["event_type"], "OrderConfirmed");
        the_saga_is_one_trace(&otlp, &trace_id, client_span).await?;
        let order_id = confirmed["id"].as_str().context("the order's id")?;
        logs_name_the_order_and_its_trace(&data, order_id, &trace_id)?;
        let scraped = metrics_count_the_saga(&targets, &metrics_before).await?;
        dashboards_and_alerts_read_served_metrics(&scraped)?;
        // A saga that fails: no such product, so inventory rejects it.
        let mut unknown = body.clone();
        unknown["items"] = serde_json::json!([{"sku": "NO-SUCH-SKU", "quantity": 1}]);
        let rejected = http
            .post(format!("{edge}/v1/orders"))
            .json(&unknown)
            .send()
            .await?;
        assert_eq!(rejected.status(), 201);
        let rejected: Value = rejected.json().await?;
        let rejected_id = rejected["id"].as_str().context("the rejected order's id")?;
        the_dashboard_shows_the_sagas(&edge, &operator, order_id, rejected_id, &http, &unknown)
            .await?;
        every_replica_is_listed(&edge, &operator, &data).await?;

        // A service that dies is restarted, and the log says so.
        let order_pid = pid_of(&data, "order").context("order pid file")?;
        nix::sys::signal::kill(Pid::from_raw(order_pid), Signal::SIGKILL)?;
        wait_until("the order service to be restarted", DEADLINE, || async {
            let pid = pid_of(&data, "order")?;
            let healthy = http
                .get(format!("http://127.0.0.1:{}/health/live", edge_port + 2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            (pid != order_pid && healthy).then_some(())
        })
        .await?;
        wait_until(
            "the restart to be logged",
            DEADLINE,
            said("process exited; restarting"),
        )
        .await?;

        // `choreo token` signs for the same edge: the order is its
        // customer's to read, and invisible to another customer.
        let alice = bearer_client(&choreo_token(&data, &["--customer", "alice"]).await?)?;
        let bob = bearer_client(&choreo_token(&data, &["--customer", "bob"]).await?)?;
        let read = |client: reqwest::Client| {
            let url = format!("{edge}{location}");
            async move { anyhow::Ok(client.get(url).send().await?.status()) }
        };
        assert_eq!(read(alice).await?, 200);
        assert_eq!(read(bob).await?, 404);

        sigterm_under_load(&data, &edge, edge_port, &http, &body, &output).await?;
        dead_letters(broker_port).await?;
        offsets(broker_port).await?;
        let operator_edge = Edge::new(
            edge.clone(),
            &choreo_token(&data, &["--customer", "operator", "--admin"]).await?,
        )?;
        let platform = Platform {
            data: &data,
            edge: &operator_edge,
            edge_port,
            broker_port,
            db_prefix: &db_prefix,
            http: &http,
            body: &body,
        };
        platform.replay_refused_beside_a_running_service().await?;
        platform.restore_drill("inventory", true).await?;
        platform.restore_drill("payment", true).await?;
        platform.restore_drill("order", true).await?;
        platform.restore_drill("shipping", false).await?;
        platform.rebuild_the_order_timeline().await?;

        // The auditor reads the same databases and finds them consistent.
        let audit = Command::new(env!("CARGO_BIN_EXE_choreo"))
            .args(["audit", "--db-prefix", &db_prefix])
            .output()
            .await?;
        let printed = String::from_utf8_lossy(&audit.stdout);
        assert!(
            audit.status.success(),
            "choreo audit failed: {printed}{}",
            String::from_utf8_lossy(&audit.stderr)
        );
        assert!(printed.contains("no violations"), "{printed}");
        anyhow::Ok(())
    }
    .await;

    // Ctrl-C: everything stops and choreo exits cleanly.
    let pids: Vec<i32> = [
        "broker",
        "schema-registry",
        "order",
        "inventory",
        "payment",
        "shipping",
        "edge",
        "provider",
    ]
    .iter()
    .filter_map(|name| pid_of(&data, name))
    .collect();
    if let Some(pid) = choreo.id() {
        nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGINT)?;
    }
    let status = tokio::time::timeout(DEADLINE, choreo.wait()).await??;
    let leftovers: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    drop_databases(&db_prefix).await?;
    let _ = std::fs::remove_dir_all(&data);
    result?;
    assert!(
        status.success(),
        "choreo up exits 0 after Ctrl-C, got {status}"
    );
    assert_eq!(pids.len(), 8, "every process had a pid file");
    assert!(
        leftovers.is_empty(),
        "processes left running: {leftovers:?}"
    );
    Ok(())
}
