//! `choreo up` as a user runs it: the printed `curl` places an order that is
//! confirmed, its saga is one trace across all five processes, a service
//! that dies is restarted, one stopped with SIGTERM
//! under load exits 0 and loses nothing, `choreo dlq` shows and redrives a
//! poison message, `choreo replay` brings a service restored from a backup
//! back to the truth and changes nothing when run again, `choreo rebuild
//! order-timeline` mends a damaged timeline from the topics, and Ctrl-C
//! leaves nothing running.

use anyhow::Context;
use choreo_testkit::{OtlpReceiver, ReceivedSpan, unique_name, wait_until};
use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;
use std::{
    collections::{BTreeMap, BTreeSet},
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

/// A base port with the seven after it free too (edge, registry, services,
/// provider, and inventory's second replica).
fn free_port_block() -> u16 {
    // Below Linux's ephemeral range (32768 and up): a port probed free
    // there can be taken by an outgoing connection (a Kafka client's)
    // before the service binds it, and stay taken (seen once: payment
    // failed to start seven times in a chaos run).
    loop {
        let base = 20_000 + (uuid::Uuid::new_v4().as_u128() % 12_000) as u16;
        if (base..base + 8).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
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

/// A GET's JSON answer; `None` while there is none (for `wait_until`).
async fn get_json(client: &reqwest::Client, url: String) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

fn pid_of(data: &Path, name: &str) -> Option<i32> {
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
struct Reaper(PathBuf);

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

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
}

/// The JSON body of the `curl -d '…'` line `choreo up` printed.
/// The bearer token in the printed `curl -H 'authorization: Bearer …'`.
fn printed_token(output: &[String]) -> Option<String> {
    let line = output.iter().find(|l| l.contains("-X POST"))?;
    let (_, rest) = line.split_once("authorization: Bearer ")?;
    Some(rest.split('\'').next()?.to_owned())
}

/// A client sending `token` on every request.
fn bearer(token: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

/// `choreo token` with `args`, against the platform's data folder.
async fn choreo_token(data: &Path, args: &[&str]) -> anyhow::Result<String> {
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
        "provider",
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
        let http = bearer(&token)?;
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
        metrics_count_the_saga(&targets, &metrics_before).await?;
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
        the_dashboard_shows_the_sagas(&edge, &operator, order_id, rejected_id).await?;
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
        let alice = bearer(&choreo_token(&data, &["--customer", "alice"]).await?)?;
        let bob = bearer(&choreo_token(&data, &["--customer", "bob"]).await?)?;
        let read = |client: reqwest::Client| {
            let url = format!("{edge}{location}");
            async move { anyhow::Ok(client.get(url).send().await?.status()) }
        };
        assert_eq!(read(alice).await?, 200);
        assert_eq!(read(bob).await?, 404);

        sigterm_under_load(&data, &edge, edge_port, &http, &body, &output).await?;
        dead_letters(broker_port).await?;
        offsets(broker_port).await?;
        let admin = bearer(&choreo_token(&data, &["--customer", "operator", "--admin"]).await?)?;
        let platform = Platform {
            data: &data,
            edge: &edge,
            edge_port,
            broker_port,
            db_prefix: &db_prefix,
            http: &http,
            admin: &admin,
            body: &body,
        };
        platform.replay_refused_beside_a_running_service().await?;
        platform.restore_drill("inventory", true).await?;
        platform.restore_drill("payment", true).await?;
        platform.restore_drill("order", true).await?;
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

const SAGA_PROCESSES: [&str; 5] = ["edge", "order", "inventory", "payment", "shipping"];

/// The spans of one order's saga, as a tracing backend receives them: from
/// all five processes, in one trace, forming one tree under the client's
/// span, with a producer span before every consumer span.
async fn the_saga_is_one_trace(
    otlp: &OtlpReceiver,
    trace_id: &str,
    client_span: &str,
) -> anyhow::Result<()> {
    // Complete: every process has sent its spans, the three services that
    // read `order.events` have processed the OrderConfirmed, and no span's
    // parent is missing.
    let complete = |spans: &[ReceivedSpan]| {
        let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
        let confirmed_by: BTreeSet<&str> = spans
            .iter()
            .filter(|s| s.kind == "consumer" && s.attribute("event_type") == Some("OrderConfirmed"))
            .map(|s| s.service.as_str())
            .collect();
        SAGA_PROCESSES.iter().all(|p| services.contains(p))
            && ["inventory", "payment", "shipping"]
                .iter()
                .all(|s| confirmed_by.contains(s))
            && orphans(spans, client_span).is_empty()
    };
    let spans = match wait_until("the saga's spans from all five processes", DEADLINE, || {
        let spans = otlp.trace(trace_id);
        std::future::ready(complete(&spans).then_some(spans))
    })
    .await
    {
        Ok(spans) => spans,
        Err(e) => {
            let spans = otlp.trace(trace_id);
            let orphans = orphans(&spans, client_span);
            anyhow::bail!(
                "{e}: {} spans of the trace received ({} in all), parents missing for {orphans:?}; {}",
                spans.len(),
                otlp.spans().len(),
                describe(&spans)
            );
        }
    };
    let by_id: BTreeMap<&str, &ReceivedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    assert_eq!(by_id.len(), spans.len(), "span ids are unique");

    // One root: the edge's request, a child of the client's span.
    let roots: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id.as_deref() == Some(client_span))
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "one span under the client's: {}",
        describe(&spans)
    );
    let root = roots[0];
    assert_eq!(
        (
            root.service.as_str(),
            root.kind.as_str(),
            root.name.as_str()
        ),
        ("edge", "server", "POST /v1/orders")
    );
    assert_eq!(root.attribute("http.response.status_code"), Some("201"));
    // Which makes it a tree: every other span hangs off a span of the trace.
    assert!(orphans(&spans, client_span).is_empty());

    // The edge's call to the order service is the parent of its request.
    let order_request = spans
        .iter()
        .find(|s| s.service == "order" && s.kind == "server")
        .context("the order service's request span")?;
    let call = by_id[order_request.parent_span_id.as_deref().unwrap_or_default()];
    assert_eq!(
        (call.service.as_str(), call.kind.as_str()),
        ("edge", "client")
    );

    // Every hop over Kafka: a consumer span under a producer span, with
    // OpenTelemetry's messaging attributes.
    let consumers: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.kind == "consumer").collect();
    assert!(consumers.len() >= 7, "{}", describe(&spans));
    for consumer in consumers {
        let parent = by_id[consumer.parent_span_id.as_deref().unwrap_or_default()];
        assert_eq!(parent.kind, "producer", "{consumer:?} follows a send");
        assert_eq!(
            parent.attribute("messaging.destination.name"),
            consumer.attribute("messaging.destination.name")
        );
        assert_eq!(consumer.attribute("messaging.system"), Some("kafka"));
        assert_eq!(
            consumer.attribute("messaging.operation.type"),
            Some("process")
        );
        for key in [
            "messaging.destination.partition.id",
            "messaging.kafka.offset",
            "messaging.consumer.group.name",
            "messaging.message.id",
        ] {
            assert!(consumer.attribute(key).is_some(), "{key} on {consumer:?}");
        }
        assert_eq!(
            consumer.name,
            format!(
                "process {}",
                consumer
                    .attribute("messaging.destination.name")
                    .unwrap_or_default()
            )
        );
    }
    // Each saga service handles its events in a database transaction.
    for service in &SAGA_PROCESSES[1..] {
        for name in ["db.transaction", "handle"] {
            assert!(
                spans
                    .iter()
                    .any(|s| s.service == *service && s.name.starts_with(name)),
                "{service} has a {name} span: {}",
                describe(&spans)
            );
        }
    }
    Ok(())
}

/// Every line a saga process logged about the order is one JSON object
/// that names the order and its trace, whichever span the line came from.
fn logs_name_the_order_and_its_trace(
    data: &Path,
    order_id: &str,
    trace_id: &str,
) -> anyhow::Result<()> {
    let mut lines_about = BTreeMap::<&str, usize>::new();
    for service in SAGA_PROCESSES {
        // Any replica may have handled the order: replica 0 logs to
        // `<service>.log`, replica i to `<service>-<i>.log`.
        for log in logs_of(data, service)? {
            let text = std::fs::read_to_string(&log).with_context(|| log.display().to_string())?;
            for line in text.lines().filter(|l| l.contains(order_id)) {
                let entry: Value = serde_json::from_str(line).with_context(|| {
                    format!("{} logged a line that is not JSON: {line}", log.display())
                })?;
                assert_eq!(entry["order_id"], order_id, "{service}: {line}");
                assert_eq!(entry["trace_id"], trace_id, "{service}: {line}");
                *lines_about.entry(service).or_default() += 1;
            }
        }
    }
    for service in &SAGA_PROCESSES[1..] {
        assert!(
            lines_about.contains_key(service),
            "{service} logged the order's step: {lines_about:?}"
        );
    }
    Ok(())
}

/// The log files of every replica of `service`.
fn logs_of(data: &Path, service: &str) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let dir = data.join("logs");
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        let path = entry?.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str()?.strip_suffix(".log"))
        else {
            continue;
        };
        let replica = stem.strip_prefix(service).is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix('-')
                    .is_some_and(|i| i.parse::<u32>().is_ok())
        });
        if replica {
            logs.push(path);
        }
    }
    anyhow::ensure!(!logs.is_empty(), "no log of {service} in {}", dir.display());
    Ok(logs)
}

/// `/v1/admin/platform` lists each replica with its instance id, each of
/// which consumes (holds partitions of its group), and each has a pid file.
async fn every_replica_is_listed(edge: &str, admin_token: &str, data: &Path) -> anyhow::Result<()> {
    let admin = bearer(admin_token)?;
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
/// with its reason, and a click on the confirmed one shows its five steps.
/// It saves a screenshot in the test's temporary folder.
async fn the_dashboard_shows_the_sagas(
    edge: &str,
    admin_token: &str,
    confirmed: &str,
    cancelled: &str,
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
        // The header says "live" from its own 500 ms tick after a poll
        // answered, so it may still read "connecting…" when the cards are
        // filled (seen once in a clean-clone run).
        wait_until("the header to say live", DEADLINE, || async {
            let live = text_of("#live".to_owned()).await?;
            live.starts_with("live").then_some(())
        })
        .await?;
        let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
        std::fs::write(&screenshot, browser.screenshot().await?)?;
        println!("dashboard screenshot: {}", screenshot.display());
        anyhow::Ok(())
    }
    .await;
    let _ = browser.close().await;
    result
}

type Exposition = openmetrics_parser::MetricsExposition<
    openmetrics_parser::OpenMetricsType,
    openmetrics_parser::OpenMetricsValue,
>;

/// The `/metrics` URL of every saga process, by kind: the edge, then each
/// of the four services with all its replicas, as `/v1/admin/platform`
/// lists them once each replica answers.
async fn metrics_targets(edge: &str, admin_token: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let admin = bearer(admin_token)?;
    wait_until("every replica to answer", DEADLINE, || async {
        let platform = get_json(&admin, format!("{edge}/v1/admin/platform")).await?;
        let listed = platform["services"].as_array()?;
        if !listed.iter().all(|s| s["reachable"] == true) {
            return None;
        }
        let mut targets = vec![vec![format!("{edge}/metrics")]];
        for service in &SAGA_PROCESSES[1..] {
            let urls: Vec<String> = listed
                .iter()
                .filter(|s| s["service"] == *service)
                .filter_map(|s| Some(format!("{}/metrics", s["url"].as_str()?)))
                .collect();
            if urls.is_empty() {
                return None;
            }
            targets.push(urls);
        }
        Some(targets)
    })
    .await
}

/// `/metrics` of each target, parsed as a scraper parses it.
async fn scrape_all(targets: &[Vec<String>]) -> anyhow::Result<Vec<Vec<Exposition>>> {
    let mut all = Vec::new();
    for replicas in targets {
        let mut parsed = Vec::new();
        for url in replicas {
            let response = reqwest::get(url).await?.error_for_status()?;
            let content_type = response.headers()["content-type"].to_str()?.to_owned();
            assert!(
                content_type.starts_with("application/openmetrics-text"),
                "{content_type}"
            );
            let text = response.text().await?;
            parsed.push(
                openmetrics_parser::openmetrics::parse_openmetrics(&text)
                    .map_err(|e| anyhow::anyhow!("{url} does not parse ({e:?}):\n{text}"))?,
            );
        }
        all.push(parsed);
    }
    Ok(all)
}

/// [`sample`] summed over the replicas of a service.
fn sample_replicas(replicas: &[Exposition], family: &str, labels: &[(&str, &str)]) -> f64 {
    replicas.iter().map(|e| sample(e, family, labels)).sum()
}

/// A counter's value, a gauge's, or a histogram's count, summed over the
/// series with `labels`; 0 for a series not there yet.
fn sample(exposition: &Exposition, family: &str, labels: &[(&str, &str)]) -> f64 {
    use openmetrics_parser::OpenMetricsValue as V;
    let Some(family) = exposition.families.get(family) else {
        return 0.0;
    };
    family
        .iter_samples()
        .filter(|s| {
            s.get_labelset().is_ok_and(|set| {
                labels
                    .iter()
                    .all(|(k, v)| set.get_label_value(k) == Some(*v))
            })
        })
        .map(|s| match &s.value {
            V::Counter(c) => c.value.as_f64(),
            V::Gauge(n) | V::Unknown(n) => n.as_f64(),
            V::Histogram(h) => h.count.unwrap_or(0) as f64,
            _ => 0.0,
        })
        .sum()
}

/// The order's saga moved each process's counters by exactly its share:
/// one saga started and confirmed, two events published by the order
/// service, one event applied by each service's step.
async fn metrics_count_the_saga(
    targets: &[Vec<String>],
    before: &[Vec<Exposition>],
) -> anyhow::Result<()> {
    type Check = (
        usize,
        &'static str,
        &'static [(&'static str, &'static str)],
        f64,
    );
    const MOVES: [Check; 7] = [
        (1, "choreo_sagas_started", &[], 1.0),
        (1, "choreo_sagas_finished", &[("outcome", "confirmed")], 1.0),
        (
            1,
            "choreo_saga_duration_seconds",
            &[("outcome", "confirmed")],
            1.0,
        ),
        (
            1,
            "choreo_events_published",
            &[("topic", "order.events")],
            2.0,
        ),
        (
            2,
            "choreo_handler_duration_seconds",
            &[("event_type", "OrderPlaced"), ("outcome", "applied")],
            1.0,
        ),
        (
            3,
            "choreo_handler_duration_seconds",
            &[("event_type", "StockReserved"), ("outcome", "applied")],
            1.0,
        ),
        (
            4,
            "choreo_handler_duration_seconds",
            &[("event_type", "PaymentCompleted"), ("outcome", "applied")],
            1.0,
        ),
    ];
    let last = Arc::new(Mutex::new(String::new()));
    let moved = wait_until("the saga's metrics", DEADLINE, || {
        let last = last.clone();
        let note = move |seen: String| {
            if let Ok(mut l) = last.lock() {
                *l = seen;
            }
        };
        async move {
            let after = match scrape_all(targets).await {
                Ok(after) => after,
                Err(e) => {
                    note(e.to_string());
                    return None;
                }
            };
            let deltas: Vec<f64> = MOVES
                .iter()
                .map(|(p, family, labels, _)| {
                    sample_replicas(&after[*p], family, labels)
                        - sample_replicas(&before[*p], family, labels)
                })
                .collect();
            note(format!("{deltas:?}"));
            let counted = MOVES
                .iter()
                .zip(&deltas)
                .all(|((.., want), got)| got == want);
            // Lag is the group watch's reading, every 5 s.
            let lag = after[1]
                .iter()
                .all(|e| e.families.contains_key("choreo_consumer_lag"));
            (counted && lag).then_some(after)
        }
    })
    .await
    .with_context(|| {
        format!(
            "moves wanted {MOVES:?}, last seen {:?}",
            last.lock().map(|l| l.clone())
        )
    })?;
    let edge = &moved[0][0];
    for upstream in ["order", "inventory", "payment"] {
        let state = |s| {
            sample(
                edge,
                "choreo_circuit_breaker_state",
                &[("upstream", upstream), ("state", s)],
            )
        };
        assert_eq!(
            (state("closed"), state("open"), state("half_open")),
            (1.0, 0.0, 0.0),
            "{upstream}"
        );
    }
    for service in moved[1..].iter().flatten() {
        assert!(service.families.contains_key("choreo_outbox_backlog"));
        assert!(
            service
                .families
                .contains_key("choreo_outbox_oldest_age_seconds")
        );
    }
    Ok(())
}

/// Spans whose parent is neither in `spans` nor the client's span.
fn orphans(spans: &[ReceivedSpan], client_span: &str) -> Vec<String> {
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    spans
        .iter()
        .filter(|s| match s.parent_span_id.as_deref() {
            None => true,
            Some(parent) => parent != client_span && !ids.contains(parent),
        })
        .map(|s| format!("{} {}", s.service, s.name))
        .collect()
}

fn describe(spans: &[ReceivedSpan]) -> String {
    spans
        .iter()
        .map(|s| format!("{}:{}({})", s.service, s.name, s.kind))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn drop_databases(prefix: &str) -> anyhow::Result<()> {
    choreo_testkit::drop_platform_databases(prefix).await
}

/// SIGTERM to the payment service while orders stream in: it exits 0, the
/// supervisor starts it again, and every order still reaches its end (the
/// audit that follows checks nothing was charged twice).
async fn sigterm_under_load(
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

/// `choreo offsets`: once the platform is quiet, every partition of
/// payment's inputs read to its end (its lag 0), the ends matching what is
/// on them; inventory's partitions each held by one of its two replicas,
/// named by instance id; an unknown service is refused by name.
async fn offsets(broker_port: u16) -> anyhow::Result<()> {
    let bootstrap = format!("127.0.0.1:{broker_port}");
    let run = |args: Vec<&'static str>| {
        let bootstrap = bootstrap.clone();
        async move {
            Command::new(env!("CARGO_BIN_EXE_choreo"))
                .arg("offsets")
                .args(args)
                .args(["--bootstrap-servers", &bootstrap])
                .output()
                .await
        }
    };
    let rows: Vec<Value> = wait_until("payment's group to reach the end", DEADLINE, || async {
        let out = run(vec!["--service", "payment", "--json"]).await.ok()?;
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).ok()?;
        rows.iter().all(|r| r["lag"] == 0).then_some(rows)
    })
    .await?;
    // Four partitions of each of payment's two input topics.
    assert_eq!(rows.len(), 8, "{rows:#?}");
    assert!(rows.iter().all(|r| r["service"] == "payment"));
    assert!(
        rows.iter()
            .any(|r| r["topic"] == "inventory.events" && r["end"].as_i64() > Some(0)),
        "{rows:#?}"
    );
    let table = run(vec![]).await?;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{text}");
    for service in ["order", "inventory", "payment", "shipping"] {
        assert!(text.contains(service), "{service} missing from {text}");
    }
    assert!(text.contains("HELD BY"), "{text}");
    let holders = wait_until(
        "inventory's partitions held by its replicas",
        DEADLINE,
        || async {
            let rows = rows_of_offsets(broker_port, "inventory").await.ok()?;
            let holders: Option<BTreeSet<String>> = rows
                .iter()
                .map(|r| r["held_by"].as_str().map(str::to_owned))
                .collect();
            holders.filter(|h| h.len() == 2)
        },
    )
    .await?;
    assert_eq!(
        holders.iter().map(String::as_str).collect::<Vec<_>>(),
        ["inventory-0", "inventory-1"]
    );
    let unknown = run(vec!["--service", "billing"]).await?;
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no service \"billing\""),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    Ok(())
}

/// Runs `choreo dlq …` against the platform's broker.
async fn dlq(broker_port: u16, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_choreo"))
        .arg("dlq")
        .args(args)
        .args(["--bootstrap-servers", &format!("127.0.0.1:{broker_port}")])
        .output()
        .await?)
}

async fn dlq_list(broker_port: u16) -> anyhow::Result<Vec<Value>> {
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
async fn dead_letters(broker_port: u16) -> anyhow::Result<()> {
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

/// The running platform, for the replay drills.
struct Platform<'a> {
    data: &'a Path,
    edge: &'a str,
    edge_port: u16,
    broker_port: u16,
    db_prefix: &'a str,
    http: &'a reqwest::Client,
    /// Carries an admin token.
    admin: &'a reqwest::Client,
    body: &'a Value,
}

/// Runs the futures at once and collects their results in order.
async fn all_of<T>(
    futures: Vec<impl std::future::Future<Output = anyhow::Result<T>>>,
) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::new();
    for result in futures::future::join_all(futures).await {
        out.push(result?);
    }
    Ok(out)
}

fn pg_admin_url() -> String {
    std::env::var("CHOREO_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The url of database `name` on the test server.
fn database_url(name: &str) -> String {
    let admin = pg_admin_url();
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

/// Rows of a query, each rendered as one line of text, for comparing a
/// service's state before an incident with its state after the recovery.
async fn rows(db: &str, query: &str) -> anyhow::Result<Vec<String>> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(&database_url(db)).await?;
    let rows = sqlx::query(&format!("SELECT row_to_json(t)::text FROM ({query}) t"))
        .fetch_all(&mut conn)
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(Into::into))
        .collect()
}

/// Runs a statement on database `db`.
async fn execute(db: &str, statement: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&database_url(db)).await?;
    sqlx::query(statement).execute(&mut conn).await?;
    Ok(())
}

impl Platform<'_> {
    fn port_of(&self, service: &str) -> u16 {
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
    fn internal_keys(&self) -> anyhow::Result<[(&'static str, String); 2]> {
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
    async fn replay(&self, service: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let mut all = vec!["replay", "--service", service];
        all.extend_from_slice(args);
        self.as_service(service, &all).await
    }

    /// `choreo ARGS` run with `service`'s configuration in the environment.
    async fn as_service(
        &self,
        service: &str,
        args: &[&str],
    ) -> anyhow::Result<std::process::Output> {
        Ok(Command::new(env!("CARGO_BIN_EXE_choreo"))
            .args(args)
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
            .envs(self.internal_keys()?)
            .output()
            .await?)
    }

    /// A replay's summary (`--json`), after checking it succeeded.
    async fn replayed(&self, service: &str, args: &[&str]) -> anyhow::Result<Value> {
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
    async fn number(&self, service: &str, query: &str) -> anyhow::Result<i64> {
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

    async fn orders(&self) -> anyhow::Result<Vec<String>> {
        rows(
            &format!("{}order", self.db_prefix),
            "SELECT id, status, cancel_reason FROM orders ORDER BY id",
        )
        .await
    }

    /// What a recovery must bring back: the service's own state.
    async fn state(&self, service: &str) -> anyhow::Result<Vec<String>> {
        let db = format!("{}{service}", self.db_prefix);
        let mut state = match service {
            "inventory" => {
                let mut s = rows(&db, "SELECT sku, available, reserved, shipped, stocked_total FROM products ORDER BY sku").await?;
                s.extend(
                    rows(
                        &db,
                        "SELECT order_id, status FROM reservations ORDER BY order_id",
                    )
                    .await?,
                );
                s
            }
            "order" => {
                let mut s = rows(&db, "SELECT id, customer_id, status, cancel_reason, cancel_detail, total_cents, currency, shipping_address, created_at FROM orders").await?;
                s.extend(rows(&db, "SELECT * FROM order_lines").await?);
                s.extend(self.timeline().await?);
                s.extend(
                    rows(
                        &db,
                        "SELECT customer_id, key, request, order_id FROM idempotency_keys",
                    )
                    .await?,
                );
                s
            }
            _ => {
                let mut s = rows(
                    &db,
                    "SELECT customer_id, balance_cents FROM wallets ORDER BY customer_id",
                )
                .await?;
                s.extend(rows(&db, "SELECT order_id, status, charged_cents, refunded_cents FROM payments ORDER BY order_id").await?);
                s
            }
        };
        state.sort();
        Ok(state)
    }

    /// Every order's timeline, as rows.
    async fn timeline(&self) -> anyhow::Result<Vec<String>> {
        rows(
            &format!("{}order", self.db_prefix),
            "SELECT order_id, event_id, event_type, service, occurred_at FROM order_timeline
             ORDER BY order_id, occurred_at, event_id",
        )
        .await
    }

    /// What the payment provider holds: every charge, once.
    async fn provider_ledger(&self) -> anyhow::Result<Vec<String>> {
        rows(
            &format!("{}provider", self.db_prefix),
            "SELECT * FROM charges ORDER BY 1",
        )
        .await
    }

    async fn place(&self, body: &Value) -> anyhow::Result<String> {
        self.place_as(self.http, body).await
    }

    async fn place_as(&self, client: &reqwest::Client, body: &Value) -> anyhow::Result<String> {
        let response = client
            .post(format!("{}/v1/orders", self.edge))
            .json(body)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 201, "placing: {}", response.status());
        Ok(response.headers()["location"].to_str()?.to_owned())
    }

    async fn wait_decided(&self, location: &str) -> anyhow::Result<()> {
        wait_until(&format!("{location} to end"), DEADLINE, || async {
            // An admin reads every customer's orders.
            let order: Value = self
                .admin
                .get(format!("{}{location}?wait=5", self.edge))
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

    async fn place_and_decide(&self, count: usize) -> anyhow::Result<()> {
        for _ in 0..count {
            let location = self.place(self.body).await?;
            self.wait_decided(&location).await?;
        }
        Ok(())
    }

    async fn set_product(&self, sku: &str, price_cents: i64, available: i64) -> anyhow::Result<()> {
        let response = self
            .admin
            .put(format!("{}/v1/admin/products/{sku}", self.edge))
            .json(&serde_json::json!({"name": "Drill kettle", "price_cents": price_cents, "available": available}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "setting {sku}: {}",
            response.status()
        );
        Ok(())
    }

    async fn set_wallet(&self, customer: &str, balance_cents: i64) -> anyhow::Result<()> {
        let response = self
            .admin
            .put(format!(
                "{}/v1/admin/customers/{customer}/wallet",
                self.edge
            ))
            .json(&serde_json::json!({ "balance_cents": balance_cents }))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "setting {customer}'s wallet: {}",
            response.status()
        );
        Ok(())
    }

    /// A wallet and orders competing for the last of it, after the backup:
    /// a new customer's wallet holding two and a half orders, three orders
    /// at once, then a top-up. A replay that decided the charges anew, or
    /// lost the admin changes, would not come back to the same wallet.
    async fn contend_for_a_wallet(&self) -> anyhow::Result<()> {
        let price = self
            .number(
                "inventory",
                "SELECT price_cents FROM products WHERE sku = 'TEA-01'",
            )
            .await?;
        self.set_wallet("drill-customer", price * 5 / 2).await?;
        let mut body = self.body.clone();
        body["customer_id"] = "drill-customer".into();
        body["items"] = serde_json::json!([{"sku": "TEA-01", "quantity": 1}]);
        let placed = all_of(
            (0..3)
                .map(|_| self.place_as(self.admin, &body))
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
        self.set_wallet("drill-customer", left + 1000).await?;
        Ok(())
    }

    /// Admin changes and orders competing for the last units, after the
    /// backup: a new product with 3 units, 5 orders of one at once, then a
    /// restock of 2 more at a new price. A replay that decided the orders
    /// anew, or lost the admin changes, would not come back to the same
    /// stock.
    async fn contend(&self) -> anyhow::Result<()> {
        self.set_product("DRILL-01", 900, 3).await?;
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
        self.set_product("DRILL-01", 950, left + 2).await?;
        Ok(())
    }

    /// Orders the order service decides itself, after the backup: three at
    /// once, one of which its customer cancels straight away (it may be
    /// decided already), and one placed with an `Idempotency-Key`, which a
    /// client retries after the incident. Returns the key and where the
    /// order is.
    async fn decide_in_order(&self) -> anyhow::Result<(String, String)> {
        let placed = all_of((0..3).map(|_| self.place(self.body)).collect::<Vec<_>>()).await?;
        let cancel = self
            .http
            .post(format!("{}{}/cancel", self.edge, placed[0]))
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
    async fn place_keyed(&self, key: &str) -> anyhow::Result<(String, bool)> {
        let response = self
            .http
            .post(format!("{}/v1/orders", self.edge))
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
    async fn wait_quiet(&self) -> anyhow::Result<()> {
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

    fn hold_file(&self, service: &str) -> PathBuf {
        self.data.join("run").join(format!("{service}.hold"))
    }

    async fn wait_running(&self, service: &str) -> anyhow::Result<()> {
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

    /// A replay beside the running service is refused, and moves nothing;
    /// a dry run shows what would be re-read and moves nothing either.
    async fn replay_refused_beside_a_running_service(&self) -> anyhow::Result<()> {
        let group_before = rows_of_offsets(self.broker_port, "inventory").await?;
        let refused = self.replay("inventory", &["--from-beginning"]).await?;
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{said}");
        assert!(said.contains("inventory is running"), "{said}");

        let dry = self
            .replay("inventory", &["--from-beginning", "--dry-run", "--json"])
            .await?;
        assert!(
            dry.status.success(),
            "{}",
            String::from_utf8_lossy(&dry.stderr)
        );
        let plan: Vec<Value> = serde_json::from_slice(&dry.stdout)?;
        let (own, plan): (Vec<Value>, Vec<Value>) =
            plan.into_iter().partition(|r| r["phase"] == "own");
        assert_eq!(
            own.len(),
            4,
            "inventory's own topic is read first: {own:#?}"
        );
        assert!(
            own.iter().all(|r| r["topic"] == "inventory.events"),
            "{own:#?}"
        );
        let events: i64 = plan.iter().filter_map(|r| r["to"].as_i64()).sum::<i64>()
            - plan.iter().filter_map(|r| r["from"].as_i64()).sum::<i64>();
        let ends: i64 = group_before.iter().filter_map(|r| r["end"].as_i64()).sum();
        assert_eq!(plan.len(), 4, "{plan:#?}");
        assert!(plan.iter().all(|r| r["phase"] == "inputs"), "{plan:#?}");
        assert_eq!(
            events, ends,
            "the whole of inventory's input, from its start: {plan:#?}"
        );
        assert_eq!(
            rows_of_offsets(self.broker_port, "inventory").await?,
            group_before
        );

        let unknown = self
            .replay(
                "inventory",
                &["--from-beginning", "--topic", "payment", "--dry-run"],
            )
            .await?;
        let said = String::from_utf8_lossy(&unknown.stderr);
        assert!(!unknown.status.success());
        assert!(
            said.contains("inventory does not consume \"payment\""),
            "{said}"
        );
        Ok(())
    }

    /// The recovery drill of the README's runbook: back up the service's
    /// database, run more orders, restore the backup (the service forgets
    /// them), replay from the backup's time. The service's state, every
    /// order's outcome and the provider's ledger are then what they were
    /// before the incident; replaying again, twice, applies nothing.
    async fn restore_drill(&self, service: &str, contended: bool) -> anyhow::Result<()> {
        let db = format!("{}{service}", self.db_prefix);
        let dump = self.data.join(format!("{service}.dump"));
        let backup_at = chrono::Utc::now();
        let dumped = Command::new("pg_dump")
            .args(["--format=custom", "--file"])
            .arg(&dump)
            .arg(database_url(&db))
            .status()
            .await?;
        anyhow::ensure!(dumped.success(), "pg_dump {db}: {dumped}");
        self.place_and_decide(4).await?;
        let mut keyed = None;
        if contended {
            match service {
                "inventory" => self.contend().await?,
                "payment" => self.contend_for_a_wallet().await?,
                _ => keyed = Some(self.decide_in_order().await?),
            }
        }
        // An order ends before every service has read its last event
        // (inventory ships on OrderConfirmed): the truth is the state once
        // every saga has run out.
        self.wait_quiet().await?;
        let (truth, outcomes, ledger) = (
            self.state(service).await?,
            self.orders().await?,
            self.provider_ledger().await?,
        );

        // The incident: the service stopped, its database restored.
        std::fs::write(self.hold_file(service), "drill\n")?;
        wait_until(&format!("{service} to stop"), DEADLINE, || async {
            pid_of(self.data, service).is_none().then_some(())
        })
        .await?;
        let restored = Command::new("pg_restore")
            .args(["--clean", "--if-exists", "--dbname"])
            .arg(database_url(&db))
            .arg(&dump)
            .status()
            .await?;
        anyhow::ensure!(restored.success(), "pg_restore {db}: {restored}");
        assert_ne!(
            self.state(service).await?,
            truth,
            "the backup predates the last orders"
        );

        let from = backup_at.to_rfc3339();
        let summary = self.replayed(service, &["--from-timestamp", &from]).await?;
        let applied: i64 = summary["partitions"]
            .as_array()
            .context("partitions")?
            .iter()
            .filter_map(|p| p["tally"]["applied"].as_i64())
            .sum();
        assert!(
            applied >= 4,
            "the forgotten orders' events are applied again: {summary:#}"
        );
        std::fs::remove_file(self.hold_file(service))?;
        self.wait_running(service).await?;
        assert_eq!(
            self.state(service).await?,
            truth,
            "{service} is back where it was"
        );
        assert_eq!(
            self.orders().await?,
            outcomes,
            "no order changed its outcome"
        );
        assert_eq!(
            self.provider_ledger().await?,
            ledger,
            "nobody was charged again"
        );
        if let Some((key, location)) = &keyed {
            assert_eq!(
                self.place_keyed(key).await?,
                (location.clone(), true),
                "a retry after the incident finds the order its key placed"
            );
        }

        // Replaying everything, twice, finds it all applied. The replay
        // stops the supervised service and starts it again itself.
        for _ in 0..2 {
            let summary = self.replayed(service, &["--from-beginning"]).await?;
            let partitions = summary["partitions"].as_array().context("partitions")?;
            let (applied, reread): (i64, i64) = partitions.iter().fold((0, 0), |(a, r), p| {
                (
                    a + p["tally"]["applied"].as_i64().unwrap_or(0),
                    r + p["tally"]["reread"].as_i64().unwrap_or(0),
                )
            });
            assert_eq!(applied, 0, "{summary:#}");
            assert!(reread > 0, "{summary:#}");
            self.wait_running(service).await?;
            assert_eq!(self.state(service).await?, truth);
            assert_eq!(self.provider_ledger().await?, ledger);
        }
        assert_eq!(self.orders().await?, outcomes);
        Ok(())
    }
}

impl Platform<'_> {
    /// `choreo rebuild order-timeline --json`, checked to succeed.
    async fn rebuild(&self, args: &[&str]) -> anyhow::Result<Value> {
        let data = self.data.to_string_lossy().into_owned();
        let mut all = vec!["rebuild", "order-timeline", "--json", "--data-dir", &data];
        all.extend_from_slice(args);
        let out = self.as_service("order", &all).await?;
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        anyhow::ensure!(out.status.success(), "choreo rebuild failed: {printed}");
        serde_json::from_slice(&out.stdout).with_context(|| format!("a JSON report: {printed}"))
    }

    /// A bad deploy damaged the order timeline: it lost every
    /// StockReserved step and recorded a payment that never happened.
    /// `choreo rebuild order-timeline` shows what it would mend (and a dry
    /// run changes nothing), mends it from the topics alone, and a second
    /// rebuild finds nothing to mend.
    async fn rebuild_the_order_timeline(&self) -> anyhow::Result<()> {
        let truth = self.timeline().await?;
        let location = self.place(self.body).await?;
        self.wait_decided(&location).await?;
        self.wait_quiet().await?;
        let truth_with_it = self.timeline().await?;
        assert!(truth_with_it.len() > truth.len());
        let shown = |location: String| async move {
            let order: Value = self
                .admin
                .get(format!("{}{location}", self.edge))
                .send()
                .await?
                .json()
                .await?;
            anyhow::Ok(order["timeline"].clone())
        };
        let before = shown(location.clone()).await?;

        let db = format!("{}order", self.db_prefix);
        let lost = self
            .number(
                "order",
                "SELECT count(*) FROM order_timeline WHERE event_type = 'StockReserved'",
            )
            .await?;
        assert!(lost > 0);
        execute(
            &db,
            "DELETE FROM order_timeline WHERE event_type = 'StockReserved'",
        )
        .await?;
        execute(
            &db,
            "INSERT INTO order_timeline (order_id, event_id, event_type, service, occurred_at)
             SELECT id, gen_random_uuid(), 'PaymentCompleted', 'payment', now() FROM orders ORDER BY id LIMIT 1",
        )
        .await?;
        let damaged = self.timeline().await?;
        assert_ne!(shown(location.clone()).await?, before);

        let dry = self.rebuild(&["--dry-run"]).await?;
        assert_eq!(dry["added"], lost, "{dry:#}");
        assert_eq!(dry["removed"], 1, "{dry:#}");
        assert_eq!(dry["committed"], false, "{dry:#}");
        assert_eq!(self.timeline().await?, damaged, "a dry run changes nothing");

        let rebuilt = self.rebuild(&[]).await?;
        assert_eq!(rebuilt["added"], lost, "{rebuilt:#}");
        assert_eq!(rebuilt["removed"], 1, "{rebuilt:#}");
        assert_eq!(rebuilt["committed"], true, "{rebuilt:#}");
        assert_eq!(
            rebuilt["orders_missing"],
            serde_json::json!([]),
            "{rebuilt:#}"
        );
        self.wait_running("order").await?;
        assert_eq!(self.timeline().await?, truth_with_it);
        assert_eq!(
            shown(location.clone()).await?,
            before,
            "the order shows its steps again"
        );

        let again = self.rebuild(&[]).await?;
        assert_eq!(again["added"], 0, "{again:#}");
        assert_eq!(again["removed"], 0, "{again:#}");
        assert_eq!(again["entries_after"], truth_with_it.len(), "{again:#}");
        self.wait_running("order").await?;
        assert_eq!(self.timeline().await?, truth_with_it);
        Ok(())
    }
}

/// `choreo offsets --service S --json`.
async fn rows_of_offsets(broker_port: u16, service: &str) -> anyhow::Result<Vec<Value>> {
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
