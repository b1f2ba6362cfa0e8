//! A service stopped with SIGTERM under load exits 0 and loses nothing.

use crate::helpers::*;
use anyhow::Context;
use choreo_testkit::wait_until;
use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;
use std::{
    path::Path,
    sync::{Arc, Mutex},
};

/// SIGTERM to the payment service while orders stream in: it exits 0, the
/// supervisor starts it again, and every order still reaches its end (the
/// audit that follows checks nothing was charged twice).
pub(crate) async fn sigterm_under_load(
    data: &Path,
    edge: &str,
    edge_port: u16,
    http: &reqwest::Client,
    body: &Value,
    output: &Arc<Mutex<Vec<String>>>,
) -> anyhow::Result<()> {
    let payment_pid = pid_of(data, "payment").context("payment pid file")?;
    let mut placing = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (http, body, edge) = (http.clone(), body.clone(), edge.to_owned());
        placing.spawn(async move {
            let response = http
                .post(format!("{edge}/v1/orders"))
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(response.status() == 201, "placing: {}", response.status());
            Ok(response.headers()["location"].to_str()?.to_owned())
        });
    }
    nix::sys::signal::kill(Pid::from_raw(payment_pid), Signal::SIGTERM)?;
    let mut locations = Vec::new();
    while let Some(placed) = placing.join_next().await {
        locations.push(placed??);
    }

    wait_until("payment to exit 0 and be restarted", DEADLINE, || async {
        let pid = pid_of(data, "payment")?;
        let ready = http
            .get(format!("http://127.0.0.1:{}/health/ready", edge_port + 4))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let exited_clean = output.lock().ok()?.iter().any(|l| {
            l.contains("process exited; restarting")
                && l.contains("payment")
                && l.contains("exit status: 0")
        });
        (pid != payment_pid && ready && exited_clean).then_some(())
    })
    .await?;
    for location in &locations {
        wait_until(&format!("{location} to end"), DEADLINE, || async {
            let order = get_json(http, format!("{edge}{location}?wait=5")).await?;
            matches!(order["status"].as_str(), Some("CONFIRMED" | "CANCELLED")).then_some(())
        })
        .await?;
    }
    Ok(())
}
