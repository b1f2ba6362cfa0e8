//! One-off set-up steps, shared by `choreo up` and the standalone
//! `choreo topics` / `choreo schemas` commands that deployments run as jobs.

use anyhow::Context;
use choreo_events::{NAMESPACE, RegistryClient, catalog, subject};
use choreo_messaging::KafkaSettings;
use sqlx::{Connection, PgConnection};

/// Where the broker is and which deployment's topics to use.
#[derive(Debug, clap::Args)]
pub struct BrokerArgs {
    #[arg(
        long,
        env = "CHOREO_KAFKA__BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    bootstrap_servers: String,
    #[arg(
        long,
        env = "CHOREO_KAFKA__TOPIC_PREFIX",
        default_value = "",
        global = true
    )]
    topic_prefix: String,
}

impl BrokerArgs {
    /// The flags' broker and prefix, with the librdkafka properties (SASL,
    /// TLS) the services read: a job that creates topics on a secured
    /// cluster needs the same `CHOREO_KAFKA__PROPERTIES__*` as they do.
    pub fn settings(&self) -> anyhow::Result<KafkaSettings> {
        #[derive(Default, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        struct Config {
            kafka: KafkaSettings,
        }
        let Config { kafka } = choreo_kit::load_config().context("reading the Kafka settings")?;
        Ok(KafkaSettings {
            bootstrap_servers: self.bootstrap_servers.clone(),
            topic_prefix: self.topic_prefix.clone(),
            ..kafka
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    #[arg(long, env = "CHOREO_KAFKA__PARTITIONS", default_value_t = 4)]
    partitions: i32,
    #[arg(long, env = "CHOREO_KAFKA__REPLICATION_FACTOR", default_value_t = 1)]
    replication_factor: i32,
}

#[derive(Debug, clap::Args)]
pub struct SchemasArgs {
    #[arg(
        long,
        env = "CHOREO_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    registry_url: String,
    #[arg(long, env = "CHOREO_KAFKA__TOPIC_PREFIX", default_value = "")]
    topic_prefix: String,
    /// Where `choreo up` keeps the admin key the registry is called with
    /// (unless `CHOREO_INTERNAL_AUTH__ADMIN_SECRET` is set).
    #[arg(long, env = "CHOREO_DATA_DIR", default_value = ".choreo")]
    data_dir: std::path::PathBuf,
}

pub async fn topics(args: TopicsArgs) -> anyhow::Result<()> {
    let kafka = KafkaSettings {
        partitions: args.partitions,
        replication_factor: args.replication_factor,
        ..args.broker.settings()?
    };
    create_topics(&kafka).await
}

pub async fn schemas(args: SchemasArgs) -> anyhow::Result<()> {
    let registry = RegistryClient::new(
        args.registry_url,
        choreo_kit::operator::operator(&args.data_dir)?,
    );
    register_schemas(&registry, &choreo_events::Topics::new(args.topic_prefix)).await
}

/// Creates the four saga topics and each saga service's dead-letter topic.
pub async fn create_topics(kafka: &KafkaSettings) -> anyhow::Result<()> {
    let names = kafka.topics().all();
    choreo_messaging::admin::ensure_topics(kafka, &names)
        .await
        .with_context(|| format!("creating topics on {}", kafka.bootstrap_servers))?;
    println!("topics ready: {}", names.join(", "));
    Ok(())
}

/// Registers every event schema under its TopicRecordNameStrategy subject.
/// Producers would register on first use anyway; doing it up front makes an
/// incompatible schema fail the deployment instead of the first publish.
pub async fn register_schemas(
    registry: &RegistryClient,
    topics: &choreo_events::Topics,
) -> anyhow::Result<()> {
    for (topic, name, text) in catalog() {
        let subject = subject(&topics.name(topic), &format!("{NAMESPACE}.{name}"));
        let id = registry
            .register(&subject, text)
            .await
            .with_context(|| format!("registering {subject} at {}", registry.base_url()))?;
        println!("schema {subject} -> id {id}");
    }
    Ok(())
}

/// Creates each database that does not exist yet.
pub async fn create_databases(admin_url: &str, names: &[String]) -> anyhow::Result<()> {
    for name in names {
        anyhow::ensure!(
            is_identifier(name),
            "{name:?} is not a database name Choreo makes: 1-63 letters, digits and '_', not starting with a digit"
        );
    }
    let mut conn = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
    for name in names {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut conn)
                .await
                .with_context(|| format!("creating database {name}"))?;
            println!("database {name} created");
        }
    }
    Ok(())
}

/// A plain SQL identifier, which needs no quoting and fits PostgreSQL's
/// 63 bytes: what a database name built from `CHOREO_DB_PREFIX` must be.
pub fn is_identifier(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `--db-prefix`: the start of an identifier, leaving room for the longest
/// service name (`inventory`, `registry`).
pub fn db_prefix(prefix: &str) -> Result<String, String> {
    if prefix.is_empty() || is_identifier(&format!("{prefix}inventory")) {
        Ok(prefix.to_owned())
    } else {
        Err(format!(
            "{prefix:?}: a database prefix is letters, digits and '_', not starting with a digit, at most 54 long"
        ))
    }
}

/// Whether the database `name` exists on the server at `admin_url`.
pub async fn database_exists(admin_url: &str, name: &str) -> anyhow::Result<bool> {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?,
    )
}

/// Drops each database (closing its connections) that exists.
pub async fn drop_databases(admin_url: &str, names: &[String]) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
    for name in names {
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .with_context(|| format!("dropping database {name}"))?;
    }
    Ok(())
}

/// `postgres://u@h:5432/admin` with the database part replaced by `name`.
pub fn database_url(admin_url: &str, name: &str) -> String {
    match admin_url.rfind('/') {
        Some(i) if i > "postgres://".len() => format!("{}/{name}", &admin_url[..i]),
        _ => format!("{admin_url}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_plain_identifiers() {
        for good in ["choreo_order", "t_1a2b_order", "_x"] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in [
            "",
            "1order",
            "order-db",
            "x\"; DROP DATABASE postgres; --",
            &"a".repeat(64),
        ] {
            assert!(!is_identifier(bad), "{bad}");
        }
        assert!(db_prefix("choreo_").is_ok());
        assert!(db_prefix("").is_ok());
        assert!(db_prefix("shop\"").is_err());
        assert!(db_prefix(&"p".repeat(55)).is_err());
    }
}
