//! A PostgreSQL database that exists for one test.

use anyhow::Context;
use sqlx::{Connection, PgConnection};

/// The server tests create their databases on. Override with
/// `CHOREO_TEST_PG_URL` (it must point at a database the user can connect to
/// and have the right to `CREATE DATABASE`).
pub fn admin_url() -> String {
    std::env::var("CHOREO_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The url of database `name` on the tests' server.
pub fn database_url(name: &str) -> String {
    let admin = admin_url();
    let base = admin
        .rsplit_once('/')
        .map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

/// Rows of a query on database `db`, each rendered as one line of text, for
/// comparing a service's state before an incident with its state after the
/// recovery.
pub async fn rows(db: &str, query: &str) -> anyhow::Result<Vec<String>> {
    use sqlx::Row;
    let mut conn = PgConnection::connect(&database_url(db)).await?;
    let rows = sqlx::query(&format!("SELECT row_to_json(t)::text FROM ({query}) t"))
        .fetch_all(&mut conn)
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).map_err(Into::into))
        .collect()
}

/// Runs a statement on database `db`.
pub async fn execute(db: &str, statement: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(&database_url(db)).await?;
    sqlx::query(statement).execute(&mut conn).await?;
    Ok(())
}

/// A freshly created, empty database. Call [`TestDatabase::drop_db`] at the end
/// of the test; a test that panics leaves its database behind, named
/// `choreo_t_*`, so it can be inspected.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// Creates a database named `choreo_t_<label>_<random>`.
    pub async fn create(label: &str) -> anyhow::Result<Self> {
        let name = crate::unique_name(&format!("choreo_t_{label}"));
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {admin}"))?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {name}"))?;
        if !admin.contains('/') {
            anyhow::bail!("CHOREO_TEST_PG_URL has no database part: {admin}");
        }
        let url = database_url(&name);
        Ok(Self { name, url })
    }

    /// [`TestDatabase::create`], then connected and migrated as a service
    /// starting on it would be (`choreo_service::connect`: the outbox's and
    /// inbox's tables, then `migrations`).
    pub async fn migrated(
        label: &str,
        migrations: sqlx::migrate::Migrator,
    ) -> anyhow::Result<(Self, sqlx::PgPool)> {
        let db = Self::create(label).await?;
        let settings = choreo_service::ServiceSettings {
            database_url: db.url.clone(),
            ..choreo_service::ServiceSettings::local(label, 0)
        };
        let pool = choreo_service::connect(&settings, migrations)
            .await
            .with_context(|| format!("migrating {}", db.name))?;
        Ok((db, pool))
    }

    /// An outage, as the service sees one: every open connection is killed
    /// and new ones are refused until [`TestDatabase::bring_back`].
    pub async fn take_down(&self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&admin_url()).await?;
        sqlx::query(&format!(
            "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS false",
            self.name
        ))
        .execute(&mut conn)
        .await?;
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .execute(&mut conn)
        .await?;
        Ok(())
    }

    /// Ends the outage [`TestDatabase::take_down`] began.
    pub async fn bring_back(&self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&admin_url()).await?;
        sqlx::query(&format!(
            "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS true",
            self.name
        ))
        .execute(&mut conn)
        .await?;
        Ok(())
    }

    /// Drops the database, disconnecting whatever is still connected to it.
    pub async fn drop_db(&self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&admin_url()).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

/// Drops the databases a whole platform (`choreo up`, the bench's own) made,
/// each `<prefix><service>`, disconnecting whatever is still connected.
///
/// # Errors
/// When PostgreSQL cannot be reached or refuses a drop.
pub async fn drop_platform_databases(prefix: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(&admin_url()).await?;
    for service in [
        "registry",
        "order",
        "inventory",
        "payment",
        "shipping",
        "provider",
    ] {
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{prefix}{service}\" WITH (FORCE)"
        ))
        .execute(&mut conn)
        .await?;
    }
    Ok(())
}

/// Every row `queries` select, each as its JSON text: what two databases
/// are compared by.
///
/// # Errors
/// When a query fails.
pub async fn rows_as_json(pool: &sqlx::PgPool, queries: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut rows = Vec::new();
    for query in queries {
        rows.extend(
            sqlx::query_scalar::<_, String>(&format!(
                "SELECT row_to_json(t)::text FROM ({query}) t"
            ))
            .fetch_all(pool)
            .await?,
        );
    }
    Ok(rows)
}
