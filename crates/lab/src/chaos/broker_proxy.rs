//! A fault proxy in front of the broker that can cut one service off it
//! while the others keep their connections.
//!
//! Every Kafka client of a suite's platform connects through this proxy:
//! the broker advertises the proxy's address, and the services bootstrap
//! through it. Kafka clients send many connections to one broker address
//! (bootstrap, the broker itself, the group coordinator), so the proxy
//! cannot tell the services apart by port; it tells them apart by the
//! `client.id` each names in the header of its first request (every saga
//! service names itself by its instance id, `payment-1`, or its service
//! name). A Toxiproxy-like proxy (`noxious`, in front of the databases)
//! knows nothing of the protocol, so this one reads that header itself.
//!
//! A cut closes the service's open connections and closes every new one
//! as soon as its first request names it, as a firewall rule rejecting the
//! service's traffic would; restoring lets new connections through.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The longest first request the proxy reads before it lets a connection
/// through: a client's first request (ApiVersions, Metadata) is small.
const MAX_FIRST_REQUEST: usize = 1 << 20;

/// How long a new connection may take to send its first request.
const FIRST_REQUEST_WITHIN: Duration = Duration::from_secs(30);

pub(crate) struct BrokerProxy {
    port: u16,
    /// The services cut off the broker now.
    cut: watch::Sender<BTreeSet<String>>,
    /// What each cut did so far, by service.
    severed: Severances,
    task: tokio::task::JoinHandle<()>,
}

/// What a cut did to a service's connections: the report's evidence that
/// it reached the service at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Severed {
    /// Open connections closed when the cut began.
    pub closed: usize,
    /// New connections closed at their first request.
    pub refused: usize,
}

type Severances = Arc<Mutex<BTreeMap<String, Severed>>>;

impl BrokerProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to the broker on
    /// `upstream`, which need not be running yet.
    pub(crate) async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the broker proxy")?;
        let port = listener.local_addr()?.port();
        let (cut, cuts) = watch::channel(BTreeSet::new());
        let severed = Severances::default();
        let counts = severed.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let (cuts, counts) = (cuts.clone(), counts.clone());
                tokio::spawn(async move {
                    if let Err(e) = relay(client, upstream, cuts, counts).await {
                        tracing::debug!(error = %e, "broker proxy connection ended");
                    }
                });
            }
        });
        Ok(Self {
            port,
            cut,
            severed,
            task,
        })
    }

    /// Where the broker is advertised and clients bootstrap.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Cuts every replica of `service` off the broker.
    pub(crate) fn cut(&self, service: &str) {
        if let Ok(mut severed) = self.severed.lock() {
            severed.insert(service.to_owned(), Severed::default());
        }
        self.cut.send_modify(|cut| {
            cut.insert(service.to_owned());
        });
    }

    /// Lets `service` connect again; what its cut did.
    pub(crate) fn restore(&self, service: &str) -> Severed {
        self.cut.send_modify(|cut| {
            cut.remove(service);
        });
        self.severed
            .lock()
            .ok()
            .and_then(|mut severed| severed.remove(service))
            .unwrap_or_default()
    }
}

impl Drop for BrokerProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether a client named `client_id` is a replica of `service`: the
/// service's name itself, or `<service>-<index>`.
fn belongs(client_id: &str, service: &str) -> bool {
    super::faults::replica_index(service, client_id).is_some()
}

/// Forwards one client connection until it or the broker closes it, or
/// its service is cut.
async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut cuts: watch::Receiver<BTreeSet<String>>,
    severed: Severances,
) -> anyhow::Result<()> {
    let first = tokio::time::timeout(FIRST_REQUEST_WITHIN, read_request(&mut client))
        .await
        .context("no first request")??;
    let client_id = client_id(&first).unwrap_or_default();
    let is_cut = |cut: &BTreeSet<String>| cut.iter().any(|s| belongs(&client_id, s));
    let count = |what: fn(&mut Severed) -> &mut usize| {
        if let Ok(mut severed) = severed.lock() {
            for (service, counts) in severed.iter_mut() {
                if belongs(&client_id, service) {
                    *what(counts) += 1;
                }
            }
        }
    };
    if is_cut(&cuts.borrow_and_update()) {
        // Dropped: closed before the broker saw anything.
        count(|s| &mut s.refused);
        return Ok(());
    }
    let mut broker = TcpStream::connect(upstream)
        .await
        .context("connecting to the broker")?;
    broker.write_all(&first).await?;
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut broker) => {
            copied?;
        }
        _ = cuts.wait_for(is_cut) => {
            count(|s| &mut s.closed);
        }
    }
    Ok(())
}

/// One whole request, its 4-byte size first, as the client sent it.
async fn read_request(client: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let size = client.read_i32().await?;
    let size = usize::try_from(size)
        .ok()
        .filter(|s| *s <= MAX_FIRST_REQUEST)
        .with_context(|| format!("a first request of {size} bytes"))?;
    let mut request = Vec::with_capacity(4 + size);
    request.extend_from_slice(&(size as i32).to_be_bytes());
    request.resize(4 + size, 0);
    client.read_exact(&mut request[4..]).await?;
    Ok(request)
}

/// The client id in a request's header: after the size (4 bytes), the API
/// key (2), its version (2) and the correlation id (4), a nullable string
/// with a 2-byte length, in every request header version a client sends
/// first (v1 and v2; v2's tagged fields follow the client id).
fn client_id(request: &[u8]) -> Option<String> {
    let length = i16::from_be_bytes(request.get(12..14)?.try_into().ok()?);
    let length = usize::try_from(length).ok()?;
    let id = request.get(14..14 + length)?;
    String::from_utf8(id.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(client_id: Option<&str>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
        body.extend_from_slice(&3i16.to_be_bytes());
        body.extend_from_slice(&1i32.to_be_bytes());
        match client_id {
            Some(id) => {
                body.extend_from_slice(&(id.len() as i16).to_be_bytes());
                body.extend_from_slice(id.as_bytes());
            }
            None => body.extend_from_slice(&(-1i16).to_be_bytes()),
        }
        body.push(0); // no tagged fields
        let mut framed = (body.len() as i32).to_be_bytes().to_vec();
        framed.extend(body);
        framed
    }

    #[test]
    fn the_client_id_is_read_from_the_request_header() {
        assert_eq!(
            client_id(&request(Some("payment-2"))).as_deref(),
            Some("payment-2")
        );
        assert_eq!(client_id(&request(None)), None);
        assert_eq!(
            client_id(&request(Some("payment"))[..15]),
            None,
            "truncated"
        );
    }

    #[test]
    fn a_cut_reaches_every_replica_of_the_service_and_no_other() {
        assert!(belongs("payment", "payment"));
        assert!(belongs("payment-0", "payment"));
        assert!(belongs("payment-12", "payment"));
        assert!(!belongs("payments", "payment"));
        assert!(!belongs("payment-", "payment"));
        assert!(!belongs("payment-x", "payment"));
        assert!(!belongs("rdkafka", "payment"));
        assert!(!belongs("", "payment"));
    }
}
