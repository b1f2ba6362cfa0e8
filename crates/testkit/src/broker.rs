//! A real Kafka-protocol broker (Tansu) for one test, on a free port, with
//! its own SQLite storage in a temporary folder.

use anyhow::Context;
use std::{path::PathBuf, process::Stdio, time::Duration};
use tokio::process::{Child, Command};

/// Where `make tansu` links the broker it built; `CHOREO_TANSU_BIN` overrides it.
pub(crate) fn tansu_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("CHOREO_TANSU_BIN") {
        return bin.into();
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/choreo/tansu/bin/tansu")
}

/// A running broker; killed and its storage removed when dropped.
pub struct TestBroker {
    pub bootstrap: String,
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl TestBroker {
    /// Starts a broker and waits until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = tansu_bin();
        anyhow::ensure!(
            bin.exists(),
            "no Tansu broker at {} (run `make tansu`, or set CHOREO_TANSU_BIN)",
            bin.display()
        );
        let dir = std::env::temp_dir().join(crate::unique_name("choreo-broker"));
        std::fs::create_dir_all(&dir)?;
        let port = crate::free_port();
        let mut broker = Self {
            bootstrap: format!("127.0.0.1:{port}"),
            port,
            dir,
            child: None,
        };
        broker.spawn()?;
        broker.wait_ready().await?;
        Ok(broker)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(self.dir.join("broker.log"))?;
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // Tansu resolves the SQLite path against its working directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting tansu")?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let addr = self.bootstrap.clone();
        crate::wait_until(
            "the broker to accept connections",
            Duration::from_secs(20),
            || {
                let addr = addr.clone();
                async move { tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ()) }
            },
        )
        .await
    }

    /// Kills the broker (SIGKILL): its storage stays for [`TestBroker::restart`].
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Starts the broker again on the same port and storage.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        self.spawn()?;
        self.wait_ready().await
    }

    /// The broker's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The broker a test runs on: Tansu, or with `CHOREO_TEST_BROKER=mock`
/// librdkafka's mock cluster (`make test` runs the suites it serves on both).
pub enum Broker {
    Tansu(Box<TestBroker>),
    Mock(crate::MockBroker),
}

impl Broker {
    /// Starts the broker `CHOREO_TEST_BROKER` names (`tansu`, the default, or
    /// `mock`).
    pub async fn from_env() -> anyhow::Result<Self> {
        match std::env::var("CHOREO_TEST_BROKER").as_deref() {
            Ok("mock") => Ok(Self::Mock(crate::MockBroker::start()?)),
            Ok("tansu") | Err(_) => Ok(Self::Tansu(Box::new(TestBroker::start().await?))),
            Ok(other) => anyhow::bail!("CHOREO_TEST_BROKER={other}: expected tansu or mock"),
        }
    }

    pub fn bootstrap(&self) -> String {
        match self {
            Self::Tansu(broker) => broker.bootstrap.clone(),
            Self::Mock(broker) => broker.bootstrap.clone(),
        }
    }

    /// The mock cluster, whose topics a test makes through it: it has no
    /// CreateTopics request.
    pub fn mock(&self) -> Option<&crate::MockBroker> {
        match self {
            Self::Tansu(_) => None,
            Self::Mock(broker) => Some(broker),
        }
    }

    /// The broker's log so far, for failure messages.
    pub fn log(&self) -> String {
        match self {
            Self::Tansu(broker) => broker.log(),
            Self::Mock(_) => "(librdkafka's mock cluster keeps no log)".into(),
        }
    }
}
