//! How full a PostgreSQL server is: the number of connections it allows,
//! how many are open and who holds them. What a process says when it
//! cannot get a connection, instead of a bare "pool timed out".

use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use std::{fmt, str::FromStr, time::Duration};

/// How long the diagnosis may take: it runs when something already failed.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// One database's and role's share of the open connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Empty for connections to no database (replication, a launcher).
    pub database: String,
    pub user: String,
    pub connections: u32,
}

/// A server's connections as `pg_stat_activity` and its settings tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupancy {
    /// `host:port`, as the URL named it.
    pub server: String,
    /// `max_connections`.
    pub allowed: u32,
    /// Kept for superusers (`superuser_reserved_connections`, and
    /// `reserved_connections` from PostgreSQL 16 on): not for Choreo's
    /// processes, which need not be superusers.
    pub reserved: u32,
    /// Who holds the client connections open now (the reader's own
    /// included), the most first.
    pub holders: Vec<Holder>,
}

impl Occupancy {
    /// Reads the server `url` points at, over one connection of its own
    /// (closed after), which may take a superuser's reserved slot when the
    /// rest are gone.
    ///
    /// # Errors
    /// When even that connection cannot be had, or the server does not
    /// answer within a few seconds.
    pub async fn read(url: &str) -> Result<Self, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?;
        let server = format!("{}:{}", options.get_host(), options.get_port());
        let read = async {
            let mut conn = PgConnection::connect_with(&options).await?;
            let (allowed, reserved): (i32, i32) = sqlx::query_as(
                "SELECT current_setting('max_connections')::int,
                        current_setting('superuser_reserved_connections')::int
                          + coalesce(current_setting('reserved_connections', true)::int, 0)",
            )
            .fetch_one(&mut conn)
            .await?;
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT coalesce(datname, ''), coalesce(usename, ''), count(*)
                 FROM pg_stat_activity WHERE backend_type = 'client backend'
                 GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
            )
            .fetch_all(&mut conn)
            .await?;
            conn.close().await?;
            let count = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
            let holders: Vec<Holder> = rows
                .into_iter()
                .map(|(database, user, connections)| Holder {
                    database,
                    user,
                    connections: count(connections),
                })
                .collect();
            Ok(Self {
                server,
                allowed: count(allowed.into()),
                reserved: count(reserved.into()),
                holders,
            })
        };
        tokio::time::timeout(READ_TIMEOUT, read)
            .await
            .unwrap_or_else(|_| {
                Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {READ_TIMEOUT:?}"),
                )))
            })
    }

    /// Client connections open now.
    pub fn open(&self) -> u32 {
        self.holders.iter().map(|h| h.connections).sum()
    }

    /// Connections a new process that is no superuser can still open.
    pub fn free(&self) -> u32 {
        self.allowed
            .saturating_sub(self.reserved)
            .saturating_sub(self.open())
    }
}

impl fmt::Display for Occupancy {
    /// "PostgreSQL at 127.0.0.1:5432 allows 100 connections (3 kept for
    /// superusers); 97 are open: 40 to choreo_order (postgres), …"
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PostgreSQL at {} allows {} connections ({} kept for superusers); {} are open",
            self.server,
            self.allowed,
            self.reserved,
            self.open()
        )?;
        const SHOWN: usize = 8;
        for (i, holder) in self.holders.iter().take(SHOWN).enumerate() {
            let to = if holder.database.is_empty() {
                "to no database".to_owned()
            } else {
                format!("to {}", holder.database)
            };
            write!(
                f,
                "{} {} {to} ({})",
                if i == 0 { ":" } else { "," },
                holder.connections,
                holder.user
            )?;
        }
        let rest: u32 = self.holders.iter().skip(SHOWN).map(|h| h.connections).sum();
        if rest > 0 {
            write!(f, ", {rest} elsewhere")?;
        }
        Ok(())
    }
}

/// Whether `error` may mean the server had no connection left to give: it
/// said so (SQLSTATE 53300, `too_many_connections`), or a pool gave up
/// waiting for one.
pub fn out_of_connections(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db.code().as_deref() == Some("53300"),
        _ => false,
    }
}

/// What to add to the message of `error`, met connecting to `url`, when it
/// may be the server running out of connections: its occupancy and what to
/// do, or why that could not be read. Empty otherwise.
pub async fn explain(url: &str, error: &sqlx::Error) -> String {
    if !out_of_connections(error) {
        return String::new();
    }
    match Occupancy::read(url).await {
        Ok(occupancy) => format!(" ({occupancy}; stop what holds them, or raise max_connections)"),
        Err(e) => format!(" (and the server's connections could not be read either: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occupancy(holders: &[(&str, u32)]) -> Occupancy {
        let holders: Vec<Holder> = holders
            .iter()
            .map(|(database, connections)| Holder {
                database: (*database).to_owned(),
                user: "postgres".to_owned(),
                connections: *connections,
            })
            .collect();
        Occupancy {
            server: "127.0.0.1:5432".to_owned(),
            allowed: 100,
            reserved: 3,
            holders,
        }
    }

    #[test]
    fn it_names_the_limit_the_reserve_and_who_holds_what() {
        let full = occupancy(&[("choreo_order", 40), ("choreo_inventory", 30), ("", 2)]);
        assert_eq!(
            full.to_string(),
            "PostgreSQL at 127.0.0.1:5432 allows 100 connections (3 kept for superusers); 72 are open: \
             40 to choreo_order (postgres), 30 to choreo_inventory (postgres), 2 to no database (postgres)"
        );
        assert_eq!(full.free(), 25);
    }

    #[test]
    fn beyond_eight_holders_the_rest_are_summed_and_free_never_goes_below_zero() {
        let many: Vec<(String, u32)> = (0..10).map(|i| (format!("db{i}"), 11)).collect();
        let many: Vec<(&str, u32)> = many.iter().map(|(d, n)| (d.as_str(), *n)).collect();
        let crowded = occupancy(&many);
        assert!(
            crowded
                .to_string()
                .ends_with(", 11 to db7 (postgres), 22 elsewhere")
        );
        assert_eq!(crowded.free(), 0);
    }
}
