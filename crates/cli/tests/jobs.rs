//! What the Helm chart's hook jobs run before a release's replicas start.
//! `choreo-<service> --migrate`: the database gets the service's schema
//! over TLS, the process exits 0, and a second run changes nothing; a
//! database that is not there yet is waited for (up to
//! `CHOREO_DATABASE_WAIT_SECONDS`), then the job fails and says so.
//! `choreo topics`: it reaches the broker with the same librdkafka
//! properties (SASL, TLS) as the services.

use anyhow::Context;
use choreo_testkit::TestDatabase;
use sqlx::{Connection, PgConnection};
use std::path::PathBuf;
use tokio::{io::AsyncBufReadExt, process::Command};

/// A table each service's own migrations create; the outbox and inbox come
/// with every one.
const SERVICES: &[(&str, &str)] = &[
    ("order", "orders"),
    ("inventory", "products"),
    ("payment", "wallets"),
    ("shipping", "shipments"),
];

fn binary(service: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_choreo"))
        .parent()
        .context("binary folder")?
        .join(format!("choreo-{service}"));
    anyhow::ensure!(
        path.exists(),
        "choreo-{service} is not built; `make test` (or `cargo build --workspace --bins`) builds it"
    );
    Ok(path)
}

fn migration(service: &str, database_url: &str) -> anyhow::Result<Command> {
    let mut command = Command::new(binary(service)?);
    command
        .arg("--migrate")
        .env_clear()
        .env("CHOREO_DATABASE_URL", database_url);
    Ok(command)
}

async fn migrate(service: &str, database_url: &str) -> anyhow::Result<std::process::Output> {
    Ok(migration(service, database_url)?.output().await?)
}

async fn tables(url: &str) -> anyhow::Result<Vec<String>> {
    let mut conn = PgConnection::connect(url).await?;
    Ok(sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await?)
}

#[tokio::test]
async fn each_service_migrates_its_database_over_tls_and_exits() -> anyhow::Result<()> {
    for (service, own_table) in SERVICES {
        let db = TestDatabase::create(&format!("migrate_{service}")).await?;
        // A managed PostgreSQL insists on TLS; the local server offers it
        // (Debian's snakeoil certificate), so `require` proves the client
        // speaks it.
        let url = format!("{}?sslmode=require", db.url);
        let first = migrate(service, &url).await?;
        anyhow::ensure!(
            first.status.success(),
            "choreo-{service} --migrate failed: {}",
            String::from_utf8_lossy(&first.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&first.stdout).trim(),
            format!("{service} database migrated")
        );
        let migrated = tables(&db.url).await?;
        for table in [*own_table, "outbox", "inbox"] {
            assert!(
                migrated.iter().any(|t| t == table),
                "{service}: no table {table} after --migrate, only {migrated:?}"
            );
        }
        let again = migrate(service, &url).await?;
        anyhow::ensure!(
            again.status.success(),
            "choreo-{service} --migrate a second time failed: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert_eq!(tables(&db.url).await?, migrated, "{service}: second run");
        db.drop_db().await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_migration_against_an_unreachable_database_fails_and_says_so() -> anyhow::Result<()> {
    // Port 1 on loopback: nothing listens there; and no waiting for it.
    let out = migration("order", "postgres://postgres@127.0.0.1:1/choreo_order")?
        .env("CHOREO_DATABASE_WAIT_SECONDS", "0")
        .output()
        .await?;
    assert!(!out.status.success(), "--migrate exited 0 with no database");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("migrating the order database"),
        "the error does not say what failed: {stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn a_migration_waits_for_a_database_that_comes_up() -> anyhow::Result<()> {
    let db = TestDatabase::create("migrate_waits").await?;
    // The database's address, with nothing behind it yet: a port free now,
    // where a forwarder to the real server will listen later.
    let port = choreo_testkit::free_port();
    let real = reqwest::Url::parse(&db.url)?;
    let mut late = real.clone();
    late.set_port(Some(port))
        .map_err(|()| anyhow::anyhow!("a port in {}", db.url))?;
    let mut child = migration("order", late.as_str())?
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;

    // Once the job has said it is waiting, the database comes up.
    let stderr = child.stderr.take().context("stderr")?;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut said = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let waiting = line.contains("the database did not answer; retrying");
        said.push(line);
        if waiting {
            break;
        }
    }
    assert!(
        said.last().is_some_and(|l| l.contains("retrying")),
        "the job ended without waiting: {said:?}"
    );
    let upstream = format!(
        "{}:{}",
        real.host_str().context("host")?,
        real.port().unwrap_or(5432)
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let forwarder = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let status = child.wait().await?;
    forwarder.abort();
    assert!(
        status.success(),
        "the job failed once the database was up: {said:?}"
    );
    assert!(tables(&db.url).await?.contains(&"orders".to_owned()));
    db.drop_db().await?;
    Ok(())
}

#[tokio::test]
async fn choreo_topics_connects_with_the_services_librdkafka_properties() -> anyhow::Result<()> {
    // A value librdkafka refuses when it builds the client, before any
    // connection: the error shows the property reached it.
    let out = Command::new(env!("CARGO_BIN_EXE_choreo"))
        .arg("topics")
        .env_clear()
        .env("CHOREO_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .env(
            "CHOREO_KAFKA__PROPERTIES__SECURITY_PROTOCOL",
            "carrier_pigeon",
        )
        .output()
        .await?;
    assert!(!out.status.success(), "choreo topics ignored the property");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            r#"Invalid value "carrier_pigeon" for configuration property "security.protocol""#
        ),
        "{stderr}"
    );
    Ok(())
}
