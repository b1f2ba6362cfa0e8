//! The skeleton every saga service (order, inventory, payment, shipping) runs
//! in, so each service's own code is only its domain: its tables, its HTTP
//! API and one handler module per event it reacts to.
//!
//! [`launch`] connects the service's own database and migrates it, starts
//! the outbox relay, the consumer and the retention purge, and serves the
//! HTTP API with its health probes (`health`). All of it stops when the
//! shutdown token is cancelled: HTTP stops accepting, the consumer stops
//! fetching, finishes the events in hand and commits their offsets, the
//! relay finishes its batch. What has not stopped within the grace period is
//! abandoned: its events are redelivered after the restart and deduplicated.

mod binary;
mod fail_points;
mod health;
mod metrics;
pub mod replay;
pub mod run_dir;

pub use binary::{NoRecovery, SagaService, Tool, ToolRun, main};

use axum::Router;
use choreo_events::RegistryClient;
use choreo_kit::{
    CancellationToken,
    internal_auth::{Gate, InternalAuthError, InternalAuthSettings, Signer},
};
use choreo_messaging::{
    Consumer, ConsumerSettings, Handler, Health, KafkaSettings, Relay, RetentionSettings,
    admin::BrokerProbe, retention,
};
use choreo_telemetry::LogFormat;
use serde::{Deserialize, Serialize};
use sqlx::{
    PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use std::{net::SocketAddr, time::Duration};
use tokio::task::JoinSet;

/// Settings every saga service shares; each service flattens these into its
/// own settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceSettings {
    pub http_addr: SocketAddr,
    pub database_url: String,
    pub database_max_connections: u32,
    /// How long a starting service (or `--migrate`) waits for a database
    /// it cannot reach before it gives up; 0 gives up at once.
    pub database_wait_seconds: f64,
    pub registry_url: String,
    pub kafka: KafkaSettings,
    pub consumer: ConsumerSettings,
    pub retention: RetentionSettings,
    /// After SIGTERM, how long in-flight work may take before it is
    /// abandoned (to be redelivered after the restart) and the process exits.
    pub shutdown_grace_seconds: f64,
    pub log_format: LogFormat,
    /// Fail points armed at start-up, as `point=actions;…` (the `fail`
    /// crate's syntax, see `choreo_messaging::fail_points`). Empty: none.
    /// Refused in a build without fail points.
    pub fail_points: String,
    /// The keys calls between Choreo processes are signed with
    /// (`choreo_kit::internal_auth`); the service needs both.
    pub internal_auth: InternalAuthSettings,
}

impl ServiceSettings {
    /// Local defaults for the service `name`: its own database
    /// `choreo_<name>` on the local server and its own port.
    pub fn local(name: &str, port: u16) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            database_url: format!("postgres://postgres@127.0.0.1:5432/choreo_{name}"),
            database_max_connections: 10,
            database_wait_seconds: 60.0,
            registry_url: "http://127.0.0.1:8081".into(),
            kafka: KafkaSettings::default(),
            consumer: ConsumerSettings::default(),
            retention: RetentionSettings::default(),
            shutdown_grace_seconds: 30.0,
            log_format: LogFormat::Text,
            fail_points: String::new(),
            internal_auth: InternalAuthSettings::default(),
        }
    }
}

/// Says so when an input topic keeps events longer than the inbox
/// remembers them: a redelivery or replay of an event older than the
/// inbox window would find no record of it and apply it again.
async fn compare_retention(kafka: KafkaSettings, topics: Vec<String>, inbox_days: f64) {
    let window = Duration::from_secs_f64(inbox_days.max(0.0) * 86_400.0);
    match choreo_messaging::admin::topic_retention(&kafka, &topics).await {
        Ok(retention) => {
            for (topic, ms) in retention {
                // Negative: forever. Unreported: nothing to compare.
                let kept = match ms {
                    None => continue,
                    Some(ms) => u64::try_from(ms).ok().map(Duration::from_millis),
                };
                if kept.is_none_or(|kept| kept > window) {
                    let kept = kept.map_or("forever".to_owned(), |k| {
                        format!("{:.1} days", k.as_secs_f64() / 86_400.0)
                    });
                    tracing::warn!(
                        %topic,
                        %kept,
                        inbox_days,
                        "the topic keeps events longer than the inbox remembers them: an event redelivered or replayed after {inbox_days} days would be applied again. Raise retention.inbox_days to the topic's retention, or replay only from within the window"
                    );
                }
            }
        }
        Err(e) => tracing::info!(
            error = %choreo_telemetry::error_chain(&e),
            "could not read the input topics' retention to compare it with the inbox window"
        ),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("connecting to the database")]
    Database(#[source] sqlx::Error),
    /// No connection to be had, with who holds the server's connections.
    #[error("connecting to the database: no connection to be had{why}")]
    OutOfConnections {
        why: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating the database")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("starting messaging")]
    Messaging(#[source] choreo_messaging::MessagingError),
    #[error("arming the fail points")]
    FailPoints(#[source] choreo_messaging::fail_points::FailPointError),
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("checking the internal credentials")]
    InternalAuth(#[source] InternalAuthError),
    /// A part of the service's own (its provider client, say).
    #[error("setting up {what}")]
    Setup {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl LaunchError {
    /// Whether the database could not be reached (no connection, or one
    /// lost midway), as opposed to its refusing us or a migration being
    /// wrong: worth another try.
    fn unreachable(&self) -> bool {
        use sqlx::migrate::MigrateError;
        let error = match self {
            Self::Database(e)
            | Self::Migrate(MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _)) => e,
            _ => return false,
        };
        matches!(
            error,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
        )
    }
}

/// A launched service: its bound address and its tasks.
pub struct Running {
    pub addr: SocketAddr,
    pub pool: PgPool,
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
    grace: Duration,
    stop_requested: Option<tokio::time::Instant>,
}

/// A part of the service (consumer, relay or HTTP server) stopped although
/// no shutdown was asked for, so the whole service stopped with it.
#[derive(Debug, thiserror::Error)]
#[error("a task of the service stopped unexpectedly: {0}")]
pub struct Stopped(String);

impl Running {
    /// Waits until every task has stopped. A task that stops before shutdown
    /// was requested (a panic in a handler, say) stops the whole service and
    /// makes this an error, so that the process exits and its supervisor
    /// restarts it, rather than answering `/health/live` while consuming nothing.
    ///
    /// # Errors
    /// [`Stopped`] when a task ended on its own.
    pub async fn wait(mut self) -> Result<(), Stopped> {
        let mut failure = None;
        loop {
            let next = if self.shutdown.is_cancelled() {
                let deadline = *self
                    .stop_requested
                    .get_or_insert_with(tokio::time::Instant::now)
                    + self.grace;
                match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        tracing::warn!(
                            grace = ?self.grace,
                            unfinished = self.tasks.len(),
                            "grace period over; abandoning unfinished work, which is redelivered after the restart"
                        );
                        self.tasks.abort_all();
                        break;
                    }
                }
            } else {
                tokio::select! {
                    next = self.tasks.join_next() => next,
                    _ = self.shutdown.cancelled() => {
                        self.stop_requested = Some(tokio::time::Instant::now());
                        continue;
                    }
                }
            };
            let Some(result) = next else { break };
            if !self.shutdown.is_cancelled() {
                let why = match result {
                    Err(e) if e.is_panic() => "it panicked".to_owned(),
                    Err(e) => e.to_string(),
                    Ok(()) => "it returned".to_owned(),
                };
                tracing::error!(%why, "a service task stopped on its own; stopping the service");
                failure.get_or_insert(Stopped(why));
                self.shutdown.cancel();
            }
        }
        self.pool.close().await;
        failure.map_or(Ok(()), Err)
    }
}

/// What a service plugs into the skeleton.
pub struct Spec<H> {
    /// Its name (also its consumer group before any prefix) and its input
    /// topics come from its entry in the choreography.
    pub choreography: &'static choreo_events::choreography::Consumer,
    pub handler: H,
    /// The service's own routes; `/health/live`, `/health/ready` and
    /// `/metrics` are added.
    pub router: Router,
    /// The service's own metrics; the runtime's and its HTTP server's are
    /// added, and all served at `/metrics`.
    pub metrics: prometheus_client::registry::Registry,
    /// Further tasks of the service (the order service's deadline sweeper),
    /// each stopping when the shutdown token is cancelled.
    pub background: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    /// Before each `/metrics` and `/stats` answer, reads the service's own
    /// gauges from its database (the order service's pending sagas), as
    /// the runtime reads the outbox's, and returns its own figures for
    /// `/stats` (under `own`).
    pub on_scrape: Option<ScrapeHook>,
}

/// See [`Spec::on_scrape`].
pub type ScrapeHook = std::sync::Arc<
    dyn Fn(PgPool) -> std::pin::Pin<Box<dyn std::future::Future<Output = serde_json::Value> + Send>>
        + Send
        + Sync,
>;

/// Connects and migrates the service's database, waiting up to
/// `database_wait_seconds` for a database that cannot be reached. A
/// database restarting, or cut off, at the moment a service starts is
/// waited out, as a running service rides it out, instead of the process
/// exiting and its supervisor restarting it with a growing backoff (which
/// kept replicas down for tens of seconds in issue 27's goal suite).
///
/// # Errors
/// When the database is still unreachable then, refuses the connection
/// (a wrong URL or password), or a migration fails.
pub async fn connect(
    settings: &ServiceSettings,
    migrator: Migrator,
) -> Result<PgPool, LaunchError> {
    connect_with(settings, migrator, |options| options).await
}

/// [`connect`], each session's options first passed through `session`.
pub(crate) async fn connect_with(
    settings: &ServiceSettings,
    mut migrator: Migrator,
    session: fn(PgConnectOptions) -> PgConnectOptions,
) -> Result<PgPool, LaunchError> {
    migrator.set_ignore_missing(true);
    let until = tokio::time::Instant::now()
        + Duration::try_from_secs_f64(settings.database_wait_seconds).unwrap_or_default();
    let mut pause = Duration::from_millis(200);
    loop {
        match connect_once(settings, &migrator, session).await {
            Err(e) if e.unreachable() && tokio::time::Instant::now() + pause < until => {
                tracing::warn!(
                    error = %choreo_telemetry::error_chain(&e),
                    retry_in = ?pause,
                    "the database did not answer; retrying"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(LaunchError::Database(e)) if choreo_kit::postgres::out_of_connections(&e) => {
                let why = choreo_kit::postgres::explain(&settings.database_url, &e).await;
                return Err(LaunchError::OutOfConnections { why, source: e });
            }
            done => return done,
        }
    }
}

/// One try at [`connect`]. Every migration runs in a transaction of its
/// own, under sqlx's advisory lock, so a try cut off midway is repeated
/// safely.
async fn connect_once(
    settings: &ServiceSettings,
    migrator: &Migrator,
    session: fn(PgConnectOptions) -> PgConnectOptions,
) -> Result<PgPool, LaunchError> {
    let options = settings
        .database_url
        .parse::<PgConnectOptions>()
        .map_err(LaunchError::Database)?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(session(options))
        .await
        .map_err(LaunchError::Database)?;
    choreo_messaging::migrate(&pool)
        .await
        .map_err(LaunchError::Migrate)?;
    migrator.run(&pool).await.map_err(LaunchError::Migrate)?;
    Ok(pool)
}

/// Applies the outbox, inbox and the service's own migrations, then lets
/// the database go: what a deployment's migration job runs.
pub(crate) async fn migrate(
    settings: &ServiceSettings,
    migrator: Migrator,
) -> Result<(), LaunchError> {
    connect(settings, migrator).await?.close().await;
    Ok(())
}

/// Starts the relay, the consumer and the HTTP API of a service whose
/// database `pool` is already migrated.
///
/// # Errors
/// When the broker client cannot be configured or the address bound.
pub async fn launch<H: Handler>(
    settings: &ServiceSettings,
    pool: PgPool,
    spec: Spec<H>,
    shutdown: CancellationToken,
) -> Result<Running, LaunchError> {
    if !settings.fail_points.trim().is_empty() {
        choreo_messaging::fail_points::configure_all(&settings.fail_points)
            .map_err(LaunchError::FailPoints)?;
    }
    let name = spec.choreography.service;
    let gate = Gate::new(&settings.internal_auth, name).map_err(LaunchError::InternalAuth)?;
    let signer =
        Signer::service(&settings.internal_auth, name).map_err(LaunchError::InternalAuth)?;
    let registry = RegistryClient::new(&settings.registry_url, signer);
    let runtime = Health::default();
    let mut tasks = JoinSet::new();
    // Every client of the process names it to the broker: each replica by
    // its instance id.
    let kafka = settings
        .kafka
        .identified_as(settings.consumer.instance_id.as_deref().unwrap_or(name));

    let relay = Relay::new(&kafka, pool.clone(), registry.clone(), runtime.clone())
        .map_err(LaunchError::Messaging)?;
    tasks.spawn(relay.run(shutdown.clone()));

    let consumer = Consumer::new(
        &kafka,
        &settings.consumer,
        name,
        spec.choreography.inputs,
        pool.clone(),
        registry.clone(),
        spec.handler,
        runtime.clone(),
    )
    .map_err(LaunchError::Messaging)?;
    tasks.spawn(consumer.run(shutdown.clone()));
    // Once, in the background: only ever a warning.
    tokio::spawn(compare_retention(
        kafka.clone(),
        spec.choreography
            .inputs
            .iter()
            .map(|t| kafka.topics().name(*t))
            .collect(),
        settings.retention.inbox_days,
    ));
    tasks.spawn(retention::purge_until(
        pool.clone(),
        settings.retention.clone(),
        shutdown.clone(),
    ));
    for task in spec.background {
        tasks.spawn(task);
    }

    let probes = std::sync::Arc::new(health::Probes {
        service: name,
        pool: pool.clone(),
        broker: BrokerProbe::new(&kafka).map_err(LaunchError::Messaging)?,
        registry,
        runtime,
    });
    tasks.spawn(health::watch_dependencies(probes.clone(), shutdown.clone()));
    let http_metrics = choreo_kit::HttpMetrics::default();
    let mut registry = spec.metrics;
    http_metrics.register(&mut registry);
    let router = spec
        .router
        .merge(metrics::routes(
            name,
            settings.consumer.instance_id.clone(),
            registry,
            pool.clone(),
            probes.runtime.clone(),
            spec.on_scrape,
        ))
        .merge(health::routes(probes))
        .merge(fail_points::routes());
    let (addr, server) = choreo_kit::serve(
        gate.protect(router),
        settings.http_addr,
        shutdown.clone(),
        http_metrics,
    )
    .await
    .map_err(|source| LaunchError::Bind {
        addr: settings.http_addr,
        source,
    })?;
    tasks.spawn(async move {
        if let Ok(Err(e)) = server.await {
            tracing::error!(error = %e, "http server failed");
        }
    });
    tracing::info!(service = name, %addr, "service started");
    Ok(Running {
        addr,
        pool,
        tasks,
        shutdown,
        grace: Duration::from_secs_f64(settings.shutdown_grace_seconds.max(0.0)),
        stop_requested: None,
    })
}
