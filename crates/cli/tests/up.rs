//! `choreo up` as a user runs it: the printed `curl` places an order that is
//! confirmed, a service that dies is restarted, and Ctrl-C leaves nothing
//! running.

use anyhow::Context;
use choreo_testkit::{unique_name, wait_until};
use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

const DEADLINE: Duration = Duration::from_secs(120);

/// A base port with the five after it free too (edge, registry, services).
fn free_port_block() -> u16 {
    loop {
        let base = 20_000 + (uuid::Uuid::new_v4().as_u128() % 30_000) as u16;
        if (base..base + 6).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(19_092)
}

fn pid_of(data: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(data.join("run").join(format!("{name}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
}

/// The JSON body of the `curl -d '…'` line `choreo up` printed.
fn printed_order_body(output: &[String]) -> Option<Value> {
    let line = output.iter().find(|l| l.trim_start().starts_with("-d '"))?;
    let json = line.trim().strip_prefix("-d '")?.strip_suffix('\'')?;
    serde_json::from_str(json).ok()
}

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
    ] {
        anyhow::ensure!(
            bin_dir.join(format!("choreo-{service}")).exists(),
            "choreo-{service} is not built; `make test` (or `cargo build --workspace --bins`) builds it"
        );
    }
    let data = std::env::temp_dir().join(unique_name("choreo-up"));
    let db_prefix = format!("{}_", unique_name("choreo_t_up"));
    let edge_port = free_port_block();
    let edge = format!("http://127.0.0.1:{edge_port}");

    let mut choreo = Command::new(env!("CARGO_BIN_EXE_choreo"))
        .arg("up")
        .arg("--data-dir")
        .arg(&data)
        .args(["--edge-port", &edge_port.to_string()])
        .args(["--broker-port", &free_port().to_string()])
        .args(["--db-prefix", &db_prefix])
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
        assert!(banner.iter().any(|l| l.contains("Kafka bootstrap")));

        // The printed curl, as a user would paste it.
        let body = printed_order_body(&banner).context("the banner has a curl with a JSON body")?;
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{edge}/v1/orders"))
            .json(&body)
            .send()
            .await?;
        assert_eq!(response.status(), 201);
        let location = response.headers()["location"].to_str()?.to_owned();
        let confirmed = wait_until("the printed order to be confirmed", DEADLINE, || async {
            let order: Value = http
                .get(format!("{edge}{location}?wait=5"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (order["status"] == "CONFIRMED").then_some(order)
        })
        .await?;
        assert_eq!(confirmed["timeline"].as_array().map(Vec::len), Some(5));

        // A service that dies is restarted, and the log says so.
        let order_pid = pid_of(&data, "order").context("order pid file")?;
        nix::sys::signal::kill(Pid::from_raw(order_pid), Signal::SIGKILL)?;
        wait_until("the order service to be restarted", DEADLINE, || async {
            let pid = pid_of(&data, "order")?;
            let healthy = http
                .get(format!("http://127.0.0.1:{}/health", edge_port + 2))
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

        // The auditor reads the same databases and finds them consistent.
        let audit = Command::new(env!("CARGO_BIN_EXE_choreo"))
            .args(["audit", "--db-prefix", &db_prefix])
            .output()
            .await?;
        let printed = String::from_utf8_lossy(&audit.stdout);
        assert!(audit.status.success(), "choreo audit failed: {printed}");
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
    assert_eq!(pids.len(), 7, "every process had a pid file");
    assert!(
        leftovers.is_empty(),
        "processes left running: {leftovers:?}"
    );
    Ok(())
}

async fn drop_databases(prefix: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let admin = std::env::var("CHOREO_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    for service in ["registry", "order", "inventory", "payment", "shipping"] {
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{prefix}{service}\" WITH (FORCE)"
        ))
        .execute(&mut conn)
        .await?;
    }
    Ok(())
}
