//! A fault proxy between one service and its PostgreSQL database, built on
//! `noxious` (a Rust port of Toxiproxy).
//!
//! A suite that names a database fault for a service gets the service's
//! `DATABASE_URL` pointed at a proxy on a port of its own; everything else
//! (migrations, the auditor) talks to PostgreSQL directly. The proxy can
//! *cut* the database away (every open connection closed, new ones refused,
//! as a failover or a network partition does) and bring it back on the same
//! port, and add latency to every answer the database sends.
//!
//! Latency is set by restarting the proxy with a latency toxic in place,
//! which closes the open connections once (as a switch to a slower network
//! path would): noxious can change the toxics of live connections, but
//! doing so here left the PostgreSQL connections through it stalled for
//! good, with no error on either side.

use anyhow::Context;
use noxious::{
    proxy::{ProxyConfig, ProxyRunner, Runner, Toxics},
    signal::{Close, Stop, Stopper},
    socket::TcpListener,
    toxic::{StreamDirection, Toxic, ToxicEvent, ToxicEventResult, ToxicKind},
};

const LATENCY: &str = "chaos-latency";

/// One running proxy, or the port it will listen on again once restored.
pub(crate) struct DbProxy {
    config: ProxyConfig,
    running: Option<Running>,
    /// Added to every answer of the database, in milliseconds.
    latency_ms: u64,
}

struct Running {
    stopper: Stopper,
    /// Held so the proxy's toxic-event listener stays open; unused.
    _toxics: bmrng::RequestSender<ToxicEvent, ToxicEventResult>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl DbProxy {
    /// Starts a proxy named `name` on `127.0.0.1:port` to `upstream`
    /// (`host:port`).
    pub(crate) async fn start(name: &str, port: u16, upstream: &str) -> anyhow::Result<Self> {
        let mut proxy = Self {
            config: ProxyConfig {
                name: name.to_owned(),
                listen: format!("127.0.0.1:{port}"),
                upstream: upstream.to_owned(),
                enabled: true,
                rand_seed: None,
            },
            running: None,
            latency_ms: 0,
        };
        proxy.restore().await?;
        Ok(proxy)
    }

    /// Where the service connects instead of to PostgreSQL.
    pub(crate) fn listen(&self) -> &str {
        &self.config.listen
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub(crate) async fn cut(&mut self) {
        if let Some(running) = self.running.take() {
            running.stopper.stop();
            let _ = running.task.await;
        }
    }

    /// Listens again (after a cut), with the latency last set.
    ///
    /// # Errors
    /// When the port cannot be bound again.
    pub(crate) async fn restore(&mut self) -> anyhow::Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        let mut toxics = Toxics::empty();
        if self.latency_ms > 0 {
            toxics.downstream.push(Toxic {
                kind: ToxicKind::Latency {
                    latency: self.latency_ms,
                    jitter: 0,
                },
                name: LATENCY.to_owned(),
                toxicity: 1.0,
                direction: StreamDirection::Downstream,
            });
        }
        let (listener, info) =
            ProxyRunner::initialize_proxy::<TcpListener>(self.config.clone(), toxics)
                .await
                .with_context(|| {
                    format!(
                        "listening on {} for {}",
                        self.config.listen, self.config.name
                    )
                })?;
        let (sender, receiver) = bmrng::channel(4);
        let (stop, stopper) = Stop::new();
        let (_close, closer) = Close::new();
        let task = tokio::spawn(ProxyRunner::run_proxy(
            listener, info, receiver, stop, closer,
        ));
        self.running = Some(Running {
            stopper,
            _toxics: sender,
            task,
        });
        Ok(())
    }

    /// Delays every answer from the database by `ms` milliseconds (`0`:
    /// no more delay). The open connections are closed once.
    ///
    /// # Errors
    /// When the port cannot be bound again.
    pub(crate) async fn set_latency(&mut self, ms: u64) -> anyhow::Result<()> {
        self.cut().await;
        self.latency_ms = ms;
        self.restore().await
    }
}
