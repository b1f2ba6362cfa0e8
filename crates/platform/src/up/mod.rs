//! `choreo up`: everything `make run` needs, in order.
//!
//! 1. Create each service's database (if missing) on the local PostgreSQL.
//! 2. Start the Tansu broker on its own SQLite file under the data folder.
//! 3. Start the schema registry; create the topics; register the schemas.
//! 4. Start the payment provider stand-in, then order, inventory, payment,
//!    shipping and the edge (each migrates its own database at start).
//! 5. Seed the demo catalog and wallets; print where everything is.
//! 6. Supervise until Ctrl-C, then stop everything, edge first.

pub mod replicas;
pub mod seed;

use crate::setup;
use crate::supervisor::{self, ProcessSpec, Supervised, supervise};
use anyhow::Context;
use choreo_events::RegistryClient;
use choreo_messaging::KafkaSettings;
use replicas::{Replicas, SagaProcesses};
use std::{path::PathBuf, time::Duration};

/// Where a platform's parts are: shared by `choreo up` and `choreo chaos`.
#[derive(Debug, Clone, clap::Args)]
pub struct Installation {
    /// A PostgreSQL database the user can connect to and create databases from.
    #[arg(
        long,
        env = "CHOREO_PG_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub pg_admin_url: String,
    /// The Tansu broker binary (`make tansu` installs it here).
    #[arg(long, env = "CHOREO_TANSU_BIN")]
    tansu_bin: Option<PathBuf>,
    /// Where the service binaries are; defaults to the folder of `choreo`.
    #[arg(long, env = "CHOREO_BIN_DIR")]
    bin_dir: Option<PathBuf>,
}

impl Installation {
    pub fn tansu(&self) -> PathBuf {
        self.tansu_bin.clone().unwrap_or_else(default_tansu_bin)
    }

    pub fn bin_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.bin_dir {
            Some(dir) => Ok(dir.clone()),
            None => default_bin_dir(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where the broker's storage and the processes' logs go.
    #[arg(long, env = "CHOREO_DATA_DIR", default_value = ".choreo")]
    data_dir: PathBuf,
    #[command(flatten)]
    installation: Installation,
    #[arg(long, env = "CHOREO_BROKER_PORT", default_value_t = 9092)]
    broker_port: u16,
    /// The edge listens here; the registry and services on the next ports.
    #[arg(long, env = "CHOREO_EDGE_PORT", default_value_t = 8080)]
    edge_port: u16,
    /// Prefix of the databases created, one per service (`<prefix>order`, …).
    #[arg(long, env = "CHOREO_DB_PREFIX", default_value = "choreo_", value_parser = crate::setup::db_prefix)]
    db_prefix: String,
    /// Prepended to every topic and consumer group name.
    #[arg(long, env = "CHOREO_KAFKA__TOPIC_PREFIX", default_value = "")]
    topic_prefix: String,
    /// Partitions of the topics `choreo up` creates.
    #[arg(long, env = "CHOREO_KAFKA__PARTITIONS", default_value_t = 4)]
    partitions: i32,
    /// Leave the demo catalog and wallets alone.
    #[arg(long)]
    no_seed: bool,
    /// Run N replicas of a saga service (`inventory=3`; repeatable). They
    /// share the service's database and consumer group, each with its own
    /// instance id, HTTP port (after the edge's block of seven), pid file
    /// and log.
    #[arg(long, value_parser = Replicas::parse_one)]
    replicas: Vec<(&'static str, usize)>,
}

struct Ports {
    edge: u16,
    registry: u16,
    order: u16,
    inventory: u16,
    payment: u16,
    shipping: u16,
    provider: u16,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let data_dir = std::path::absolute(&args.data_dir)?;
    std::fs::create_dir_all(data_dir.join("logs"))?;
    let token_secret = crate::keys::local_secret(&data_dir)?;
    // The demo customer's token for a day, the longest the edge accepts;
    // the operator's, which can change prices and wallets, for an hour.
    // `choreo token` signs more.
    let tokens = Tokens {
        customer: choreo_kit::customer_token::hs256_token(
            &token_secret,
            seed::DEMO_CUSTOMER,
            false,
            CUSTOMER_TOKEN_TTL,
        )?,
        admin: choreo_kit::customer_token::hs256_token(
            &token_secret,
            "operator",
            true,
            ADMIN_TOKEN_TTL,
        )?,
    };
    let config = Config {
        data_dir: data_dir.clone(),
        pg_admin_url: args.installation.pg_admin_url.clone(),
        tansu: args.installation.tansu(),
        bin_dir: args.installation.bin_dir()?,
        broker_port: args.broker_port,
        broker_proxy: None,
        edge_port: args.edge_port,
        db_prefix: args.db_prefix.clone(),
        topic_prefix: args.topic_prefix.clone(),
        partitions: args.partitions,
        token_secret,
        internal_auth: crate::keys::local(&data_dir)?,
        env: held_sessions(),
        replicas: Replicas::from_pairs(args.replicas.iter().copied()),
    };
    let mut running: Vec<Supervised> = Vec::new();
    // Listen from the start: a Ctrl-C during set-up must stop what has been
    // started so far, since the children run in their own process groups
    // and would otherwise outlive us.
    let signal = choreo_kit::wait_for_signal();
    tokio::pin!(signal);

    let setup = async {
        let endpoints = start(&config, &mut running).await?;
        if !args.no_seed {
            seed::seed(&endpoints.edge, &tokens.admin)
                .await
                .context("seeding the demo catalog and wallets")?;
        }
        print_banner(&endpoints, &data_dir, &tokens);
        anyhow::Ok(())
    };
    let result = tokio::select! {
        result = setup => match result {
            Ok(()) => {
                (&mut signal).await;
                Ok(())
            }
            Err(e) => Err(e),
        },
        _ = &mut signal => {
            println!("interrupted during set-up");
            Ok(())
        }
    };

    println!("\nstopping Choreo…");
    stop(running).await;
    result
}

/// Where and how to run a platform.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub pg_admin_url: String,
    pub tansu: PathBuf,
    pub bin_dir: PathBuf,
    pub broker_port: u16,
    /// A fault proxy's port in front of the broker (`choreo chaos` for a
    /// suite with `broker-cut` faults): the broker advertises it and every
    /// client bootstraps through it.
    pub broker_proxy: Option<u16>,
    /// The edge's port; the registry and services take the next six.
    pub edge_port: u16,
    pub db_prefix: String,
    pub topic_prefix: String,
    pub partitions: i32,
    pub token_secret: String,
    /// The keys calls between the processes are signed with; the tools
    /// sign with its admin key.
    pub internal_auth: choreo_kit::internal_auth::InternalAuthSettings,
    /// Extra settings for one process (`"edge"`, `"order"`, …; every
    /// replica of a service), or for every Choreo process with `"*"`.
    pub env: Vec<(&'static str, String, String)>,
    pub replicas: Replicas,
}

/// Where a started platform answers.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub edge: String,
    pub registry: String,
    pub bootstrap: String,
    /// Every replica's HTTP API, by service, in replica order.
    pub replicas: std::collections::BTreeMap<&'static str, Vec<String>>,
    /// How to start another replica of a saga service.
    pub saga: SagaProcesses,
    /// The payment provider stand-in's API.
    pub provider: String,
    /// The operator's credential for the services, the provider and the
    /// registry (signed with the platform's admin key).
    pub operator: choreo_kit::internal_auth::Signer,
}

/// The folder of the running `choreo`, where the service binaries are
/// built beside it.
pub fn default_bin_dir() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?
        .parent()
        .context("choreo has no parent folder")?
        .to_path_buf())
}

/// Stops a platform: edge first, broker last, so that nothing takes new
/// work while the services finish theirs and the broker is there for them.
pub async fn stop(mut running: Vec<Supervised>) {
    while let Some(process) = running.pop() {
        process.stop().await;
    }
}

/// Starts a whole platform, pushing each supervised process into `running`
/// as it starts (so that a caller interrupted half-way can stop them).
pub async fn start(config: &Config, running: &mut Vec<Supervised>) -> anyhow::Result<Endpoints> {
    let Config {
        data_dir,
        pg_admin_url,
        tansu,
        bin_dir,
        broker_port,
        broker_proxy,
        edge_port,
        db_prefix,
        topic_prefix,
        partitions,
        token_secret,
        internal_auth,
        env: extra,
        replicas,
    } = config;
    anyhow::ensure!(
        tansu.exists(),
        "no Tansu broker at {} (run `make tansu`)",
        tansu.display()
    );
    std::fs::create_dir_all(data_dir.join("logs"))?;
    let ports = Ports {
        edge: *edge_port,
        registry: edge_port + 1,
        order: edge_port + 2,
        inventory: edge_port + 3,
        payment: edge_port + 4,
        shipping: edge_port + 5,
        provider: edge_port + 6,
    };
    let services = DATABASES;
    let db_names: Vec<String> = services.iter().map(|s| format!("{db_prefix}{s}")).collect();
    setup::create_databases(pg_admin_url, &db_names).await?;

    let bootstrap = format!("127.0.0.1:{}", broker_proxy.unwrap_or(*broker_port));
    let registry_url = format!("http://127.0.0.1:{}", ports.registry);
    let edge_url = format!("http://127.0.0.1:{}", ports.edge);
    let log = |name: &str| data_dir.join("logs").join(format!("{name}.log"));
    let pid_file = |name: &str| supervisor::pid_file(&data_dir.join("run"), name);
    let hold_file = |name: &str| supervisor::hold_file(&data_dir.join("run"), name);
    // Every process but the edge checks both keys; the edge, which the
    // internet reaches, only signs with the service key.
    let keys = |name: &str| {
        let secret = |s: &Option<String>| s.clone().unwrap_or_default();
        let mut env = vec![(
            "CHOREO_INTERNAL_AUTH__SERVICE_SECRET".to_owned(),
            secret(&internal_auth.service_secret),
        )];
        if name != "edge" {
            env.push((
                "CHOREO_INTERNAL_AUTH__ADMIN_SECRET".to_owned(),
                secret(&internal_auth.admin_secret),
            ));
        }
        env
    };
    let with_extra = |name: &str, mut env: Vec<(String, String)>| {
        env.extend(keys(name));
        env.extend(
            extra
                .iter()
                .filter(|(to, _, _)| *to == name || *to == "*")
                .map(|(_, k, v)| (k.clone(), v.clone())),
        );
        env
    };

    running.push(supervise(ProcessSpec {
        name: "broker".into(),
        program: tansu.clone(),
        args: vec![
            "broker".into(),
            "--listener-url".into(),
            format!("tcp://127.0.0.1:{broker_port}"),
            "--advertised-listener-url".into(),
            format!("tcp://{bootstrap}"),
            // Tansu resolves the SQLite path against its working folder.
            "--storage-engine".into(),
            "sqlite://tansu.db".into(),
        ],
        env: vec![],
        cwd: Some(data_dir.clone()),
        log: log("broker"),
        pid_file: pid_file("broker"),
        hold_file: hold_file("broker"),
    }));
    wait_for_port(&format!("127.0.0.1:{broker_port}"), "the broker").await?;

    let db = |name: &str| setup::database_url(pg_admin_url, &format!("{db_prefix}{name}"));
    running.push(supervise(ProcessSpec {
        name: "schema-registry".into(),
        program: bin_dir.join("choreo-schema-registry"),
        args: vec![],
        env: with_extra(
            "schema-registry",
            vec![
                (
                    "CHOREO_HTTP_ADDR".into(),
                    format!("127.0.0.1:{}", ports.registry),
                ),
                ("CHOREO_DATABASE_URL".into(), db("registry")),
            ],
        ),
        cwd: None,
        log: log("schema-registry"),
        pid_file: pid_file("schema-registry"),
        hold_file: hold_file("schema-registry"),
    }));
    wait_for_health(&registry_url, "the schema registry").await?;

    let kafka = KafkaSettings {
        bootstrap_servers: bootstrap.clone(),
        topic_prefix: topic_prefix.clone(),
        partitions: *partitions,
        ..Default::default()
    };
    setup::create_topics(&kafka).await?;
    let operator = choreo_kit::internal_auth::Signer::admin(internal_auth, "choreo")?;
    setup::register_schemas(
        &RegistryClient::new(&registry_url, operator.clone()),
        &kafka.topics(),
    )
    .await?;

    // The provider before payment, which charges through it.
    let provider_url = format!("http://127.0.0.1:{}", ports.provider);
    running.push(supervise(ProcessSpec {
        name: "provider".into(),
        program: bin_dir.join("choreo-provider"),
        args: vec![],
        env: with_extra(
            "provider",
            vec![
                (
                    "CHOREO_HTTP_ADDR".into(),
                    format!("127.0.0.1:{}", ports.provider),
                ),
                ("CHOREO_DATABASE_URL".into(), db("provider")),
            ],
        ),
        cwd: None,
        log: log("provider"),
        pid_file: pid_file("provider"),
        hold_file: hold_file("provider"),
    }));
    wait_for_health(&provider_url, "the payment provider stand-in").await?;

    let saga = SagaProcesses {
        bin_dir: bin_dir.clone(),
        data_dir: data_dir.clone(),
        env: choreo_events::SAGA_SERVICES
            .into_iter()
            .map(|name| {
                let mut env = vec![
                    ("CHOREO_DATABASE_URL".to_owned(), db(name)),
                    ("CHOREO_REGISTRY_URL".to_owned(), registry_url.clone()),
                    (
                        "CHOREO_KAFKA__BOOTSTRAP_SERVERS".to_owned(),
                        bootstrap.clone(),
                    ),
                    (
                        "CHOREO_KAFKA__TOPIC_PREFIX".to_owned(),
                        topic_prefix.clone(),
                    ),
                ];
                if name == "payment" {
                    env.push(("CHOREO_PROVIDER__URL".to_owned(), provider_url.clone()));
                }
                (name, with_extra(name, env))
            })
            .collect(),
    };
    // The first replica of each service on its port of the edge's block,
    // the others on the ports after it.
    let mut next_port = edge_port + 7;
    let mut urls: std::collections::BTreeMap<&'static str, Vec<String>> = Default::default();
    for (name, port) in [
        ("order", ports.order),
        ("inventory", ports.inventory),
        ("payment", ports.payment),
        ("shipping", ports.shipping),
    ] {
        for index in 0..replicas.of(name) {
            let port = if index == 0 {
                port
            } else {
                next_port += 1;
                next_port - 1
            };
            running.push(supervise(saga.spec(name, index, port)));
            urls.entry(name)
                .or_default()
                .push(format!("http://127.0.0.1:{port}"));
        }
    }
    let joined = |name: &str| urls.get(name).map(|u| u.join(",")).unwrap_or_default();
    running.push(supervise(ProcessSpec {
        name: "edge".into(),
        program: bin_dir.join("choreo-edge"),
        args: vec![],
        env: with_extra(
            "edge",
            vec![
                (
                    "CHOREO_HTTP_ADDR".into(),
                    format!("127.0.0.1:{}", ports.edge),
                ),
                // Every replica, comma-separated: the edge spreads its
                // calls over them.
                ("CHOREO_ORDER_URL".into(), joined("order")),
                ("CHOREO_INVENTORY_URL".into(), joined("inventory")),
                ("CHOREO_PAYMENT_URL".into(), joined("payment")),
                ("CHOREO_SHIPPING_URL".into(), joined("shipping")),
                ("CHOREO_AUTH__HS256_SECRET".into(), token_secret.clone()),
                // Locally the client is the developer, whose own traces the
                // sagas join.
                ("CHOREO_CONTINUE_CLIENT_TRACES".into(), "true".into()),
            ],
        ),
        cwd: None,
        log: log("edge"),
        pid_file: pid_file("edge"),
        hold_file: hold_file("edge"),
    }));
    for (name, urls) in &urls {
        for url in urls {
            wait_for_health(url, name).await?;
        }
    }
    wait_for_health(&edge_url, "edge").await?;
    Ok(Endpoints {
        edge: edge_url,
        registry: registry_url,
        bootstrap,
        replicas: urls,
        saga,
        provider: provider_url,
        operator,
    })
}

/// The databases a platform has, each `<prefix><name>`.
pub const DATABASES: [&str; 6] = [
    "registry",
    "order",
    "inventory",
    "payment",
    "shipping",
    "provider",
];

/// Settings that turn the edge's rate limits off, for a driver whose whole
/// load comes from one address and a few customers (chaos, bench): the
/// limits would otherwise measure themselves.
pub fn unlimited_edge() -> Vec<(&'static str, String, String)> {
    ["CUSTOMER", "ADDRESS"]
        .into_iter()
        .map(|limit| {
            (
                "edge",
                format!("CHOREO_RATE_LIMIT__{limit}_PER_MINUTE"),
                "0".to_owned(),
            )
        })
        .collect()
}

/// A port free now, from the kernel.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `count` consecutive free ports: the edge, the six after it, and one per
/// replica beyond the first of each service.
pub fn free_port_block(count: u16) -> u16 {
    // Below Linux's ephemeral range (32768 and up): a port probed free
    // there can be taken by an outgoing connection (a Kafka client's)
    // before the service binds it, and stay taken (seen once: payment
    // failed to start seven times in a chaos run).
    loop {
        let base = 20_000 + (uuid::Uuid::new_v4().as_u128() % 12_000) as u16;
        if (base..base + count).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
}

fn default_tansu_bin() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/choreo/tansu/bin/tansu")
}

const START_DEADLINE: Duration = Duration::from_secs(60);

/// The services' consumer session under `choreo up`, in ms: longer than a
/// service is held for a replay or a rebuild, so that its restart takes its
/// static member's place back before the broker expires it.
const HELD_SESSION_MS: &str = "300000";

/// A session that outlasts a hold, for each saga service of `choreo up`.
/// Static membership gives a restarted service its partitions back at once
/// only while the broker has not expired it: a service held for a replay
/// is stopped for far longer than the usual 10 s, and a Tansu group whose
/// static member expired came back with half its partitions held by nobody
/// (see DEVELOPERS.md). With one replica there is no one to hand them to
/// anyway. The chaos suites keep the usual session: theirs expire on
/// purpose.
fn held_sessions() -> Vec<(&'static str, String, String)> {
    let mut env = Vec::new();
    for service in choreo_events::SAGA_SERVICES {
        for key in [
            "CHOREO_KAFKA__PROPERTIES__SESSION_TIMEOUT_MS",
            // librdkafka wants it at least the session timeout.
            "CHOREO_KAFKA__PROPERTIES__MAX_POLL_INTERVAL_MS",
        ] {
            env.push((service, key.to_owned(), HELD_SESSION_MS.to_owned()));
        }
    }
    env
}

async fn wait_for_port(addr: &str, what: &str) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        anyhow::ensure!(
            started.elapsed() < START_DEADLINE,
            "{what} did not start listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn wait_for_health(base: &str, what: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let started = tokio::time::Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/health/ready")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        anyhow::ensure!(
            started.elapsed() < START_DEADLINE,
            "{what} did not become healthy at {base} (see .choreo/logs)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const CUSTOMER_TOKEN_TTL: u64 = 24 * 3600;
const ADMIN_TOKEN_TTL: u64 = 3600;

/// Bearer tokens for the demo customer and an operator.
struct Tokens {
    customer: String,
    admin: String,
}

fn print_banner(endpoints: &Endpoints, data_dir: &std::path::Path, tokens: &Tokens) {
    let Endpoints {
        edge,
        registry,
        bootstrap,
        provider,
        ..
    } = endpoints;
    let customer = seed::DEMO_CUSTOMER;
    let Tokens {
        customer: customer_token,
        admin: admin_token,
    } = tokens;
    println!(
        r#"
Choreo is running.

  edge (REST API)     {edge}
  saga dashboard      {edge}/ui#token={admin_token}
  schema registry     {registry}
  payment provider    {provider} (a stand-in)
  Kafka bootstrap     {bootstrap}
  logs                {logs}
  pids                {pids}

Bearer tokens (the customer's valid a day, the admin's an hour; `choreo token --customer NAME [--admin]` signs more):

  customer {customer}     {customer_token}
  admin (operator)   {admin_token}

Place an order as {customer}:

  curl -sS -X POST {edge}/v1/orders -H 'authorization: Bearer {customer_token}' \
    -H 'content-type: application/json' \
    -d '{{"customer_id": "{customer}", "items": [{{"sku": "TEA-01", "quantity": 2}}], "shipping_address": {{"name": "Alice", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"}}}}'

then follow it (the Location header has its path):

  curl -sS -H 'authorization: Bearer {customer_token}' '{edge}/v1/orders/ORDER_ID?wait=5'

Ctrl-C stops everything.
"#,
        logs = data_dir.join("logs").display(),
        pids = data_dir.join("run").display()
    );
}
