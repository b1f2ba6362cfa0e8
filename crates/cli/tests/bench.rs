//! `choreo bench` against a real broker and the real PostgreSQL. The
//! ceilings report what happened (the commits are rows, the messages are on
//! the topic) and leave no scratch database behind; a run on a platform of
//! its own reports the orders its databases hold, the five messages each
//! saga writes, the saga's steps and the rates its search tried; an A/B
//! runs the bench on two platforms and sets them side by side, and
//! `compare` reads what a run wrote.

use anyhow::Context;
use choreo_testkit::{TestBroker, unique_name};
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use std::time::Duration;
use tokio::process::Command;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

async fn bench_databases() -> anyhow::Result<i64> {
    let mut conn = PgConnection::connect(ADMIN_URL).await?;
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'choreo\\_bench\\_%'",
    )
    .fetch_one(&mut conn)
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceilings_report_what_was_committed_and_carried_and_leave_nothing() -> anyhow::Result<()> {
    let broker = TestBroker::start().await?;
    let prefix = format!("{}.", unique_name("bench"));
    let choreo = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_choreo"));
        command
            .args(["bench", "ceilings", "--json"])
            .args(["--bootstrap-servers", &broker.bootstrap])
            .args(["--topic-prefix", &prefix])
            .args(["--pg-admin-url", ADMIN_URL])
            .args(extra)
            .env_remove("CHOREO_KAFKA__BOOTSTRAP_SERVERS");
        command
    };

    let before = bench_databases().await?;
    let refused = choreo(&["--concurrency", "0"]).output().await?;
    assert!(!refused.status.success(), "--concurrency 0 was accepted");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--concurrency must be at least 1"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        bench_databases().await?,
        before,
        "a refused run made a database"
    );

    let out = choreo(&[
        "--concurrency",
        "4",
        "--seconds",
        "1",
        "--messages",
        "2000",
        "--message-bytes",
        "300",
    ])
    .output()
    .await?;
    anyhow::ensure!(
        out.status.success(),
        "choreo bench ceilings: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).context("the JSON report")?;

    let commit = &report["commit"];
    let transactions = commit["transactions"].as_f64().context("transactions")?;
    let seconds = commit["seconds"].as_f64().context("seconds")?;
    assert!(transactions > 0.0, "no commits: {commit}");
    assert!(
        seconds >= 1.0,
        "committed for less than the second asked: {commit}"
    );
    assert!((commit["per_second"].as_f64().unwrap_or(0.0) - transactions / seconds).abs() < 1e-6);
    assert_eq!(commit["concurrency"], 4);
    assert!(
        commit["p50_ms"].as_f64() <= commit["p99_ms"].as_f64(),
        "{commit}"
    );
    assert_eq!(commit["synchronous_commit"], "on", "the server's default");
    let database = commit["database"].as_str().context("database")?;
    let mut admin = PgConnection::connect(ADMIN_URL).await?;
    let left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut admin)
            .await?;
    assert!(!left, "the scratch database {database} was left behind");

    let carried = &report["broker"];
    assert_eq!(carried["messages"], 2000);
    assert_eq!(carried["message_bytes"], 300);
    let topic = carried["topic"].as_str().context("topic")?.to_owned();
    assert!(topic.starts_with(&prefix), "{topic} is outside the prefix");
    // The topic holds exactly what the report says was carried.
    let bootstrap = broker.bootstrap.clone();
    let on_topic = tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("{topic}.check"))
            .create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let mut total = 0;
        for partition in metadata.topics()[0].partitions() {
            let (low, high) =
                consumer.fetch_watermarks(&topic, partition.id(), Duration::from_secs(10))?;
            total += high - low;
        }
        Ok(total)
    })
    .await??;
    assert_eq!(on_topic, 2000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reports_what_its_platform_did_and_compare_reads_the_results() -> anyhow::Result<()> {
    let prefix = format!("{}_", unique_name("choreo_t_bench"));
    let out = std::env::temp_dir().join(unique_name("choreo-bench-results"));
    let choreo = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_choreo"));
        command
            .args([
                "bench",
                "run",
                "--pg-admin-url",
                ADMIN_URL,
                "--db-prefix",
                &prefix,
            ])
            .arg("--out")
            .arg(&out)
            .args(args)
            .env_remove("CHOREO_AUTH__HS256_SECRET");
        command
    };

    for (args, says) in [
        (&["--rate=-3"][..], "--rate must be a positive number"),
        (&["--set", "FETCH WAIT"][..], "is not NAME=VALUE"),
        (
            &["--search-steps", "0"][..],
            "--search-steps must be at least 1",
        ),
        (
            &[
                "--b-set",
                "CHOREO_CONSUMER__FETCH_WAIT_MS=20",
                "--set",
                "CHOREO_CONSUMER__FETCH_WAIT_MS=20",
            ][..],
            "the B side (--b-set, --b-tansu-bin, --b-bin-dir) is the same as A",
        ),
        (
            &[
                "--edge",
                "http://127.0.0.1:1",
                "--secret",
                "s",
                "--b-set",
                "A=1",
            ][..],
            "runs on the bench's own platforms",
        ),
    ] {
        let refused = choreo(args).output().await?;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(
        !out.exists() || std::fs::read_dir(&out)?.next().is_none(),
        "a refused run wrote results"
    );

    // An A/B: platform A with a 20 ms fetch wait, then B with 100 ms.
    let run = choreo(&[
        "--clients",
        "2",
        "--seconds",
        "3",
        "--search-seconds",
        "1",
        "--search-steps",
        "2",
        "--profile-seconds",
        "2",
        "--idle-seconds",
        "1",
        "--set",
        "CHOREO_CONSUMER__FETCH_WAIT_MS=20",
        "--b-set",
        "CHOREO_CONSUMER__FETCH_WAIT_MS=100",
        "--drain-seconds",
        "60",
        "--ceiling-seconds",
        "1",
        "--ceiling-messages",
        "500",
        "--keep",
    ])
    .output()
    .await?;
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let result = async {
        anyhow::ensure!(
            run.status.success(),
            "choreo bench run: {}\n{stdout}",
            String::from_utf8_lossy(&run.stderr)
        );
        let files: Vec<std::path::PathBuf> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("results: "))
            .map(Into::into)
            .collect();
        assert_eq!(files.len(), 2, "an A and a B results file: {stdout}");
        assert_eq!(std::fs::read_dir(&out)?.count(), 2, "two files in {out:?}");
        check_run(
            &stdout,
            &files[0],
            &prefix,
            "CHOREO_CONSUMER__FETCH_WAIT_MS=20",
        )
        .await?;
        check_run(
            &stdout,
            &files[1],
            &format!("{prefix}b_"),
            "CHOREO_CONSUMER__FETCH_WAIT_MS=100",
        )
        .await?;
        // The two side by side, as `compare` would set them.
        let ab = stdout
            .split_once("A against B:")
            .with_context(|| format!("no A/B comparison: {stdout}"))?
            .1;
        anyhow::ensure!(ab.lines().any(|l| l.starts_with("closed: sagas/s")), "{ab}");
        compare_reads(&files[0]).await
    }
    .await;
    // `--keep` kept each platform's folder too: "kept: <folder> and databases …".
    for line in String::from_utf8_lossy(&run.stderr).lines() {
        if let Some((folder, _)) = line
            .strip_prefix("kept: ")
            .and_then(|rest| rest.split_once(" and databases "))
        {
            let _ = std::fs::remove_dir_all(folder);
        }
    }
    for side in ["", "b_"] {
        choreo_testkit::drop_platform_databases(&format!("{prefix}{side}")).await?;
    }
    let _ = std::fs::remove_dir_all(&out);
    result
}

/// One side's results file against what its platform's databases hold.
async fn check_run(
    stdout: &str,
    file: &std::path::Path,
    prefix: &str,
    setting: &str,
) -> anyhow::Result<()> {
    let report: Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    assert_eq!(report["format"], 1);
    assert_eq!(report["build"], "debug");
    assert!(
        report["machine"]["cores"].as_u64() >= Some(1),
        "{}",
        report["machine"]
    );
    assert_eq!(report["platform"]["settings"], serde_json::json!([setting]));
    assert!(
        report["platform"]["broker_bin"]
            .as_str()
            .is_some_and(|b| b.ends_with("tansu")),
        "{}",
        report["platform"]
    );

    // What the order database holds is what the report says was placed:
    // the warm-up's one per client, then every phase's and search step's.
    let phases = report["phases"].as_array().context("phases")?;
    assert_eq!(phases.len(), 2);
    assert_eq!(phases[0]["mode"], "closed");
    assert_eq!(phases[0]["clients"], 2);
    assert_eq!(phases[1]["mode"], "open");
    let mut placed = 2;
    for phase in phases {
        let n = phase["placed"].as_u64().context("placed")?;
        assert!(n > 0, "nothing placed: {phase}");
        assert_eq!(phase["refused"], 0, "{phase}");
        assert_eq!(phase["unfinished"], 0, "{phase}");
        assert_eq!(phase["confirmed"].as_u64(), Some(n), "{phase}");
        assert_eq!(phase["completion"]["count"].as_u64(), Some(n), "{phase}");
        // Each confirmed saga writes OrderPlaced, StockReserved,
        // PaymentCompleted, ShipmentScheduled and OrderConfirmed: counted
        // on the broker, not by the bench.
        assert_eq!(phase["messages_per_saga"], 5.0, "{phase}");
        assert!(
            phase["transactions_per_saga"].as_f64() >= Some(5.0),
            "fewer write transactions than events: {phase}"
        );
        // One charge per confirmed saga in the provider stand-in's ledger,
        // counted apart from the platform's own transactions.
        assert_eq!(phase["provider_transactions_per_saga"], 1.0, "{phase}");
        assert!(phase["message_bytes"].as_u64() > Some(50), "{phase}");
        // The timeline as the order service has it at the end: it may
        // confirm on ShipmentScheduled before it reads PaymentCompleted (two
        // topics), so only the ends of the chain are fixed.
        let steps: Vec<&str> = phase["steps"]
            .as_array()
            .context("steps")?
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert_eq!(steps.first(), Some(&"POST → OrderPlaced"), "{phase}");
        assert!(
            steps.contains(&"OrderPlaced → StockReserved")
                && steps.iter().any(|s| s.ends_with("→ OrderConfirmed")),
            "{phase}"
        );
        let sagas_per_second = phase["sagas_per_second"].as_f64().context("rate")?;
        assert!(sagas_per_second > 0.0, "{phase}");
        placed += n;
    }

    // The search: rates tried one after the other, each judged, and the
    // open loop at half the highest that held (half the closed loop's
    // rate when none did).
    let search = &report["search"];
    assert_eq!(search["seconds_per_step"], 1.0, "{search}");
    let steps = search["steps"].as_array().context("search steps")?;
    assert!((1..=2).contains(&steps.len()), "{search}");
    let closed_rate = phases[0]["sagas_per_second"].as_f64().context("rate")?;
    assert_eq!(
        steps[0]["rate_per_second"].as_f64(),
        Some((closed_rate / 2.0).round().max(1.0)),
        "the search starts at half the closed loop: {search}"
    );
    let mut held: Option<f64> = None;
    for step in steps {
        let rate = step["rate_per_second"].as_f64().context("step rate")?;
        let sustained = step["sustained"].as_bool().context("sustained")?;
        assert_eq!(step["why"].is_null(), sustained, "{step}");
        if sustained {
            assert_eq!(step["unfinished"], 0, "{step}");
            assert!(step["saga"]["p99_ms"].as_f64() <= Some(250.0), "{step}");
            held = Some(held.map_or(rate, |h: f64| h.max(rate)));
        }
        placed += step["placed"].as_u64().context("step placed")?;
    }
    assert_eq!(search["highest_sustained"].as_f64(), held, "{search}");
    assert_eq!(
        phases[1]["rate_per_second"].as_f64(),
        Some((held.unwrap_or(closed_rate) / 2.0).round().max(1.0)),
        "{search}"
    );
    assert!(stdout.contains("highest sustained: "), "{stdout}");

    // The processor time of the platform's processes, by their pid files,
    // and of PostgreSQL's backends.
    for phase in phases {
        let cpu = phase["cpu"].as_array().context("cpu")?;
        for process in [
            "broker",
            "order",
            "inventory",
            "edge",
            "postgres (all backends)",
        ] {
            let row = cpu
                .iter()
                .find(|p| p["process"] == process)
                .with_context(|| format!("no {process} in {cpu:?}"))?;
            assert!(row["cores"].as_f64() > Some(0.0), "{row}");
            assert!(row["ms_per_saga"].as_f64() > Some(0.0), "{row}");
        }
    }
    // The idle platform's processor use, measured before the phases.
    let idle = &report["idle"];
    assert_eq!(idle["seconds"], 1.0, "{idle}");
    let idle_cpu = idle["cpu"].as_array().context("idle cpu")?;
    for process in ["broker", "order", "postgres (all backends)"] {
        let row = idle_cpu
            .iter()
            .find(|p| p["process"] == process)
            .with_context(|| format!("no idle {process} in {idle_cpu:?}"))?;
        assert!(row["cores"].as_f64() >= Some(0.0), "{row}");
    }
    assert!(
        stdout.contains("idle platform, 1 s without orders"),
        "{stdout}"
    );

    // The traced loop's sagas, cut into stages from the services' spans:
    // each hop's delivery, relay and handler, the shares summing to one.
    let profile = &report["profile"];
    let traced = profile["sagas"].as_u64().context("profiled sagas")?;
    assert!(traced > 0, "{profile}");
    placed += traced;
    let stages: Vec<&str> = profile["stages"]
        .as_array()
        .context("stages")?
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for stage in [
        "edge POST /v1/orders",
        "order relay",
        "broker → inventory (OrderPlaced)",
        "inventory handle OrderPlaced",
        "broker → payment (StockReserved)",
        "broker → order (ShipmentScheduled)",
    ] {
        assert!(stages.contains(&stage), "no {stage} in {stages:?}");
    }
    let shares: f64 = profile["costs"]
        .as_array()
        .context("costs")?
        .iter()
        .filter_map(|c| c["share"].as_f64())
        .sum();
    assert!((shares - 1.0).abs() < 1e-6, "{profile}");
    assert!(stdout.contains("where a saga's time goes"), "{stdout}");

    let url = format!("postgres://postgres@127.0.0.1:5432/{prefix}order");
    let mut order = PgConnection::connect(&url).await?;
    let (orders, confirmed): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE status = 'CONFIRMED') FROM orders")
            .fetch_one(&mut order)
            .await?;
    assert_eq!(u64::try_from(orders)?, placed);
    assert_eq!(confirmed, orders);

    let ceilings = &report["ceilings"];
    assert!(
        ceilings["commit"]["per_second"].as_f64() > Some(0.0),
        "{ceilings}"
    );
    assert_eq!(ceilings["commit"]["concurrency"], 2);
    assert_eq!(
        ceilings["broker"]["message_bytes"], phases[0]["message_bytes"],
        "the broker ceiling uses the sagas' message size"
    );
    // The first bench issue's three goals and issue 26's five.
    let goals = report["goals"].as_array().context("goals")?;
    assert_eq!(goals.len(), 8, "{goals:?}");
    assert!(stdout.contains("closed loop, 2 clients"), "{stdout}");
    Ok(())
}

/// `compare` sets a file beside itself, and refuses what is not one.
async fn compare_reads(file: &std::path::Path) -> anyhow::Result<()> {
    let compared = Command::new(env!("CARGO_BIN_EXE_choreo"))
        .args(["bench", "compare"])
        .args([file, file])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&compared.stdout);
    assert!(
        compared.status.success(),
        "{}",
        String::from_utf8_lossy(&compared.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("closed: sagas/s"))
        .with_context(|| format!("no sagas/s row: {text}"))?;
    assert!(line.ends_with("+0.0 %"), "{line}");

    let not_results = Command::new(env!("CARGO_BIN_EXE_choreo"))
        .args(["bench", "compare"])
        .arg(file)
        .arg("Cargo.toml")
        .output()
        .await?;
    assert!(!not_results.status.success());
    assert!(
        String::from_utf8_lossy(&not_results.stderr).contains("Cargo.toml is not JSON"),
        "{}",
        String::from_utf8_lossy(&not_results.stderr)
    );
    Ok(())
}

/// `bench replay`, for each service it can fill the input of, replays every
/// generated event into an empty database, applying each once, then
/// replays them again and skips them all; its
/// figures are what the replays counted, and it leaves no database behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_applies_every_event_once_then_skips_them_all() -> anyhow::Result<()> {
    let out = std::env::temp_dir().join(unique_name("choreo-bench-replay"));
    let choreo = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_choreo"));
        command
            .args(["bench", "replay", "--pg-admin-url", ADMIN_URL])
            .arg("--out")
            .arg(&out)
            .args(args);
        command
    };
    let replay_databases = || async {
        let mut conn = PgConnection::connect(ADMIN_URL).await?;
        anyhow::Ok(
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_database WHERE datname LIKE 'choreo\\_benchreplay\\_%'",
            )
            .fetch_one(&mut conn)
            .await?,
        )
    };
    let refused = choreo(&["--orders", "0"]).output().await?;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--orders must be at least 1"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let before = replay_databases().await?;
    // Inventory: two events an order, and the catalog (one ProductSet a
    // product) on its own topic. Shipping: a payment an order and a cancel
    // for one in ten; it reads no topic of its own. Payment: a reservation
    // an order and a cancel for one in ten, and on its own topic a wallet
    // for each of the 300 customers, a charge an order and a refund for
    // each cancel. Order: a reservation and a shipment for each of the 270
    // confirmed orders and a rejection for each of the 30 cancelled ones;
    // on its own topic each order placed, then confirmed or cancelled.
    for (service, events, own) in [
        ("inventory", 600, 5),
        ("shipping", 330, 0),
        ("payment", 330, 630),
        ("order", 570, 600),
    ] {
        let run = choreo(&[
            "--service",
            service,
            "--orders",
            "300",
            "--partitions",
            "2",
            "--products",
            "5",
        ])
        .output()
        .await?;
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        let result = async {
            anyhow::ensure!(
                run.status.success(),
                "choreo bench replay --service {service}: {}\n{stdout}",
                String::from_utf8_lossy(&run.stderr)
            );
            let file = stdout
                .lines()
                .find_map(|l| l.strip_prefix("results: "))
                .with_context(|| format!("no results file: {stdout}"))?;
            let report: Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
            assert_eq!(report["service"], service);
            assert_eq!(report["orders"], 300);
            assert_eq!(report["input_events"], events, "{report:#}");
            assert_eq!(report["own_events"], own, "{report:#}");
            let sides = report["sides"].as_array().context("sides")?;
            assert_eq!(sides.len(), 1, "{report:#}");
            let (restore, again) = (&sides[0]["restore"], &sides[0]["again"]);
            for (field, value) in [
                ("own_reread", own),
                ("own_applied", own),
                ("reread", events),
                ("applied", events),
                ("skipped", 0),
            ] {
                assert_eq!(restore[field], value, "into an empty database: {restore:#}");
            }
            for (field, value) in [
                ("own_reread", own),
                ("own_applied", 0),
                ("reread", events),
                ("applied", 0),
                ("skipped", events),
            ] {
                assert_eq!(again[field], value, "over the rebuilt database: {again:#}");
            }
            for replay in [restore, again] {
                let seconds = replay["seconds"].as_f64().context("seconds")?;
                let rate = replay["events_per_second"].as_f64().context("rate")?;
                assert!(
                    (rate - (events + own) as f64 / seconds).abs() < 1e-6,
                    "{replay:#}"
                );
                assert!(
                    replay["commits_per_event"].as_f64() > Some(0.0),
                    "{replay:#}"
                );
                assert!(
                    replay["replay_cpu_us_per_event"].as_f64() > Some(0.0),
                    "{replay:#}"
                );
            }
            anyhow::ensure!(stdout.contains("into an empty database"), "{stdout}");
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&out);
        }
        result?;
    }
    let _ = std::fs::remove_dir_all(&out);
    assert_eq!(
        replay_databases().await?,
        before,
        "the bench left a database behind"
    );
    Ok(())
}
