//! What the scenarios share: the platform `choreo up` started, its
//! processes and databases, and the calls a user makes to it.

use anyhow::Context;
use choreo_testkit::wait_until;
pub(crate) use choreo_testkit::{
    Edge, bearer_client,
    db::{database_url, execute, rows},
    free_port, free_port_block, get_json,
};
use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};
use tokio::process::Command;

pub(crate) const DEADLINE: Duration = Duration::from_secs(120);

pub(crate) fn pid_of(data: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(data.join("run").join(format!("{name}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// When an assertion fails mid-test, `choreo up` is killed on drop without
/// a chance to stop its children, which run in process groups of their own:
/// kill them from their pid files, so a failed run leaves no broker or
/// service holding ports and database connections.
pub(crate) struct Reaper(pub(crate) PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(files) = std::fs::read_dir(&self.0) else {
            return;
        };
        for file in files.flatten() {
            let pid = std::fs::read_to_string(file.path())
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

pub(crate) fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
}

/// The JSON body of the `curl -d '…'` line `choreo up` printed.
/// The bearer token in the printed `curl -H 'authorization: Bearer …'`.
pub(crate) fn printed_token(output: &[String]) -> Option<String> {
    let line = output.iter().find(|l| l.contains("-X POST"))?;
    let (_, rest) = line.split_once("authorization: Bearer ")?;
    Some(rest.split('\'').next()?.to_owned())
}

/// `choreo token` with `args`, against the platform's data folder.
pub(crate) async fn choreo_token(data: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_choreo"))
        .arg("token")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("CHOREO_AUTH__HS256_SECRET")
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "choreo token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

pub(crate) fn printed_order_body(output: &[String]) -> Option<Value> {
    let line = output.iter().find(|l| l.trim_start().starts_with("-d '"))?;
    let json = line.trim().strip_prefix("-d '")?.strip_suffix('\'')?;
    serde_json::from_str(json).ok()
}

pub(crate) async fn drop_databases(prefix: &str) -> anyhow::Result<()> {
    choreo_testkit::drop_platform_databases(prefix).await
}

/// The running platform, for the replay drills.
pub(crate) struct Platform<'a> {
    pub(crate) data: &'a Path,
    /// The edge, called as the operator.
    pub(crate) edge: &'a Edge,
    pub(crate) edge_port: u16,
    pub(crate) broker_port: u16,
    pub(crate) db_prefix: &'a str,
    pub(crate) http: &'a reqwest::Client,
    pub(crate) body: &'a Value,
}

/// Runs the futures at once and collects their results in order.
pub(crate) async fn all_of<T>(
    futures: Vec<impl std::future::Future<Output = anyhow::Result<T>>>,
) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::new();
    for result in futures::future::join_all(futures).await {
        out.push(result?);
    }
    Ok(out)
}

impl Platform<'_> {
    pub(crate) fn port_of(&self, service: &str) -> u16 {
        let offset = match service {
            "order" => 2,
            "inventory" => 3,
            "payment" => 4,
            _ => 5,
        };
        self.edge_port + offset
    }

    /// The keys `choreo up` gave its services, as a service's
    /// configuration holds them.
    pub(crate) fn internal_keys(&self) -> anyhow::Result<[(&'static str, String); 2]> {
        let key = |file: &str| std::fs::read_to_string(self.data.join(file));
        Ok([
            (
                "CHOREO_INTERNAL_AUTH__SERVICE_SECRET",
                key("internal-service-secret")?,
            ),
            (
                "CHOREO_INTERNAL_AUTH__ADMIN_SECRET",
                key("internal-admin-secret")?,
            ),
        ])
    }

    /// `choreo replay` as an operator runs it: with the service's own
    /// configuration in the environment.
    pub(crate) async fn replay(
        &self,
        service: &str,
        args: &[&str],
    ) -> anyhow::Result<std::process::Output> {
        let mut all = vec!["replay", "--service", service];
        all.extend_from_slice(args);
        self.as_service(service, &all).await
    }

    /// `choreo ARGS` run with `service`'s configuration in the environment.
    pub(crate) async fn as_service(
        &self,
        service: &str,
        args: &[&str],
    ) -> anyhow::Result<std::process::Output> {
        Ok(self.command_as(service)?.args(args).output().await?)
    }

    /// `choreo`, to run with `service`'s configuration in the environment.
    pub(crate) fn command_as(&self, service: &str) -> anyhow::Result<Command> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_choreo"));
        command
            .env(
                "CHOREO_DATABASE_URL",
                database_url(&format!("{}{service}", self.db_prefix)),
            )
            .env(
                "CHOREO_KAFKA__BOOTSTRAP_SERVERS",
                format!("127.0.0.1:{}", self.broker_port),
            )
            .env(
                "CHOREO_REGISTRY_URL",
                format!("http://127.0.0.1:{}", self.edge_port + 1),
            )
            .env(
                "CHOREO_HTTP_ADDR",
                format!("127.0.0.1:{}", self.port_of(service)),
            )
            .env(
                "CHOREO_PROVIDER__URL",
                format!("http://127.0.0.1:{}", self.edge_port + 6),
            )
            .env("CHOREO_DATA_DIR", self.data.join("not-a-choreo-up"))
            .envs(self.internal_keys()?);
        Ok(command)
    }

    /// A replay's summary (`--json`), after checking it succeeded.
    pub(crate) async fn replayed(&self, service: &str, args: &[&str]) -> anyhow::Result<Value> {
        let data = self.data.to_string_lossy().into_owned();
        let mut all = vec!["--json", "--data-dir", &data];
        all.extend_from_slice(args);
        let out = self.replay(service, &all).await?;
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        anyhow::ensure!(out.status.success(), "choreo replay failed: {printed}");
        let summary: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("a JSON summary: {printed}"))?;
        anyhow::ensure!(summary["interrupted"] == false, "{printed}");
        Ok(summary)
    }

    /// The one number `query` selects from `service`'s database.
    pub(crate) async fn number(&self, service: &str, query: &str) -> anyhow::Result<i64> {
        let found = rows(&format!("{}{service}", self.db_prefix), query).await?;
        let row: serde_json::Map<String, Value> = serde_json::from_str(
            found
                .first()
                .with_context(|| format!("no row for {query}"))?,
        )?;
        row.values()
            .next()
            .and_then(Value::as_i64)
            .with_context(|| format!("no number from {query}"))
    }

    pub(crate) async fn orders(&self) -> anyhow::Result<Vec<String>> {
        rows(
            &format!("{}order", self.db_prefix),
            "SELECT id, status, cancel_reason FROM orders ORDER BY id",
        )
        .await
    }

    /// What a recovery must bring back: the service's own state.
    pub(crate) async fn state(&self, service: &str) -> anyhow::Result<Vec<String>> {
        let db = format!("{}{service}", self.db_prefix);
        let mut state = match service {
            "inventory" => {
                // Every column, times included.
                let mut s = rows(&db, "SELECT * FROM products").await?;
                s.extend(rows(&db, "SELECT * FROM reservations").await?);
                s.extend(rows(&db, "SELECT * FROM reservation_lines").await?);
                s.extend(rows(&db, "SELECT * FROM product_changes").await?);
                s
            }
            "order" => {
                // Every column, times included, but the trace a row was
                // written in: a replay's is its own.
                let mut s = rows(&db, "SELECT id, customer_id, status, cancel_reason, cancel_detail, total_cents, currency, shipping_address, created_at, updated_at FROM orders").await?;
                s.extend(rows(&db, "SELECT * FROM order_lines").await?);
                s.extend(self.timeline().await?);
                s.extend(rows(&db, "SELECT * FROM idempotency_keys").await?);
                s
            }
            "shipping" => rows(&db, "SELECT * FROM shipments").await?,
            _ => {
                // Every column, times included: a replay restores when
                // things happened, not when it ran.
                let mut s = rows(&db, "SELECT * FROM wallets").await?;
                s.extend(rows(&db, "SELECT * FROM payments").await?);
                s.extend(rows(&db, "SELECT * FROM wallet_changes").await?);
                s
            }
        };
        state.sort();
        Ok(state)
    }

    /// Every order's timeline, as rows.
    pub(crate) async fn timeline(&self) -> anyhow::Result<Vec<String>> {
        rows(
            &format!("{}order", self.db_prefix),
            "SELECT order_id, event_id, event_type, service, occurred_at FROM order_timeline
             ORDER BY order_id, occurred_at, event_id",
        )
        .await
    }

    /// What the payment provider holds: every charge, once.
    pub(crate) async fn provider_ledger(&self) -> anyhow::Result<Vec<String>> {
        rows(
            &format!("{}provider", self.db_prefix),
            "SELECT * FROM charges ORDER BY 1",
        )
        .await
    }

    pub(crate) async fn place(&self, body: &Value) -> anyhow::Result<String> {
        self.place_as(self.http, body).await
    }

    pub(crate) async fn place_as(
        &self,
        client: &reqwest::Client,
        body: &Value,
    ) -> anyhow::Result<String> {
        let response = client
            .post(format!("{}/v1/orders", self.edge.base()))
            .json(body)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 201, "placing: {}", response.status());
        Ok(response.headers()["location"].to_str()?.to_owned())
    }

    pub(crate) async fn wait_decided(&self, location: &str) -> anyhow::Result<()> {
        wait_until(&format!("{location} to end"), DEADLINE, || async {
            // An admin reads every customer's orders.
            let order: Value = self
                .edge
                .admin()
                .get(format!("{}{location}?wait=5", self.edge.base()))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            // The confirmation is the last event of the saga.
            let complete = order["timeline"].as_array().map(Vec::len) == Some(5);
            (order["status"] == "CANCELLED" || complete).then_some(())
        })
        .await
    }

    pub(crate) async fn place_and_decide(&self, count: usize) -> anyhow::Result<()> {
        for _ in 0..count {
            let location = self.place(self.body).await?;
            self.wait_decided(&location).await?;
        }
        Ok(())
    }

    /// A wallet and orders competing for the last of it, after the backup:
    /// a new customer's wallet holding two and a half orders, three orders
    /// at once, then a top-up. A replay that decided the charges anew, or
    /// lost the admin changes, would not come back to the same wallet.
    pub(crate) async fn contend_for_a_wallet(&self) -> anyhow::Result<()> {
        let price = self
            .number(
                "inventory",
                "SELECT price_cents FROM products WHERE sku = 'TEA-01'",
            )
            .await?;
        self.edge
            .set_wallet("drill-customer", price * 5 / 2)
            .await?;
        let mut body = self.body.clone();
        body["customer_id"] = "drill-customer".into();
        body["items"] = serde_json::json!([{"sku": "TEA-01", "quantity": 1}]);
        let placed = all_of(
            (0..3)
                .map(|_| self.place_as(self.edge.admin(), &body))
                .collect::<Vec<_>>(),
        )
        .await?;
        for location in &placed {
            self.wait_decided(location).await?;
        }
        let left = self
            .number(
                "payment",
                "SELECT balance_cents FROM wallets WHERE customer_id = 'drill-customer'",
            )
            .await?;
        self.edge.set_wallet("drill-customer", left + 1000).await?;
        Ok(())
    }

    /// Admin changes and orders competing for the last units, after the
    /// backup: a new product with 3 units, 5 orders of one at once, then a
    /// restock of 2 more at a new price. A replay that decided the orders
    /// anew, or lost the admin changes, would not come back to the same
    /// stock.
    pub(crate) async fn contend(&self) -> anyhow::Result<()> {
        self.edge.set_product("DRILL-01", 900, 3).await?;
        let mut body = self.body.clone();
        body["items"] = serde_json::json!([{"sku": "DRILL-01", "quantity": 1}]);
        let placed = all_of((0..5).map(|_| self.place(&body)).collect::<Vec<_>>()).await?;
        for location in &placed {
            self.wait_decided(location).await?;
        }
        let left = self
            .number(
                "inventory",
                "SELECT available FROM products WHERE sku = 'DRILL-01'",
            )
            .await?;
        self.edge.set_product("DRILL-01", 950, left + 2).await?;
        Ok(())
    }

    /// Orders the order service decides itself, after the backup: three at
    /// once, one of which its customer cancels straight away (it may be
    /// decided already), and one placed with an `Idempotency-Key`, which a
    /// client retries after the incident. Returns the key and where the
    /// order is.
    pub(crate) async fn decide_in_order(&self) -> anyhow::Result<(String, String)> {
        let placed = all_of((0..3).map(|_| self.place(self.body)).collect::<Vec<_>>()).await?;
        let cancel = self
            .http
            .post(format!("{}{}/cancel", self.edge.base(), placed[0]))
            .send()
            .await?;
        anyhow::ensure!(
            cancel.status().is_success() || cancel.status() == 409,
            "cancelling: {}",
            cancel.status()
        );
        let key = format!("drill-{}", uuid::Uuid::new_v4());
        let (keyed, replayed) = self.place_keyed(&key).await?;
        anyhow::ensure!(!replayed, "a new key places a new order");
        for location in placed.iter().chain([&keyed]) {
            self.wait_decided(location).await?;
        }
        Ok((key, keyed))
    }

    /// Places the test's order under `key`: where the order is, and whether
    /// the answer says it is a replay of an earlier request.
    pub(crate) async fn place_keyed(&self, key: &str) -> anyhow::Result<(String, bool)> {
        let response = self
            .http
            .post(format!("{}/v1/orders", self.edge.base()))
            .header("Idempotency-Key", key)
            .json(self.body)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 201, "placing: {}", response.status());
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok((
            header("location").context("a Location")?,
            header("idempotent-replayed").as_deref() == Some("true"),
        ))
    }

    /// Every service through every event on its topics, nothing left in an
    /// outbox, and nothing produced or consumed between two looks: the
    /// sagas and their compensations have all run out (an order is decided
    /// before the releases and refunds its cancellation causes arrive).
    pub(crate) async fn wait_quiet(&self) -> anyhow::Result<()> {
        let last = Mutex::new(None);
        // What the last look found busy, for the error on a timeout.
        let busy = Mutex::new(String::new());
        let note = |what: String| {
            if let Ok(mut busy) = busy.lock() {
                *busy = what;
            }
        };
        wait_until("every saga to run out", DEADLINE, || async {
            let mut seen = Vec::new();
            for service in ["order", "inventory", "payment", "shipping"] {
                let unpublished = self
                    .number(
                        service,
                        "SELECT count(*) FROM outbox WHERE published_at IS NULL",
                    )
                    .await
                    .ok()?;
                let newest = self
                    .number(service, "SELECT coalesce(max(id), 0) FROM outbox")
                    .await
                    .ok()?;
                let offsets = rows_of_offsets(self.broker_port, service).await.ok()?;
                let lagging: Vec<&Value> = offsets.iter().filter(|r| r["lag"] != 0).collect();
                if unpublished > 0 || !lagging.is_empty() {
                    note(format!(
                        "{service}: {unpublished} unpublished, lagging on {lagging:?}"
                    ));
                    return None;
                }
                seen.push((newest, offsets));
            }
            let mut last = last.lock().ok()?;
            if last.as_ref() == Some(&seen) {
                return Some(());
            }
            note("something was produced or consumed between two looks".into());
            *last = Some(seen);
            None
        })
        .await
        .with_context(|| busy.lock().map(|b| b.clone()).unwrap_or_default())
    }

    pub(crate) fn hold_file(&self, service: &str) -> PathBuf {
        self.data.join("run").join(format!("{service}.hold"))
    }

    pub(crate) async fn wait_running(&self, service: &str) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/health/ready", self.port_of(service));
        wait_until(&format!("{service} to run again"), DEADLINE, || async {
            let ready = self
                .http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            (ready && pid_of(self.data, service).is_some()).then_some(())
        })
        .await
    }
}

pub(crate) const SAGA_PROCESSES: [&str; 5] = ["edge", "order", "inventory", "payment", "shipping"];

/// `choreo offsets --service S --json`.
pub(crate) async fn rows_of_offsets(broker_port: u16, service: &str) -> anyhow::Result<Vec<Value>> {
    let out = Command::new(env!("CARGO_BIN_EXE_choreo"))
        .args(["offsets", "--service", service, "--json"])
        .args(["--bootstrap-servers", &format!("127.0.0.1:{broker_port}")])
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}
