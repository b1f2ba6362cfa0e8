//! `choreo bench ceilings` against a real broker and the real PostgreSQL:
//! what it reports is what happened (the commits are rows, the messages
//! are on the topic), and it leaves no scratch database behind.

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
