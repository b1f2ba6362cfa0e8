//! Injecting a suite's faults into a running platform and healing them.
//!
//! Processes are found through the pid files their supervisor keeps; a
//! killed one is healed once the supervisor runs it again. Fail points are
//! armed through the service's own HTTP API, provider faults through the
//! provider stand-in's. Broker-side faults (duplicate and poison messages)
//! are published straight to the saga's topics.

use super::{
    persist::persist,
    report::FaultEvent,
    suite::{Fault, FaultKind},
};
use anyhow::Context;
use choreo_kit::internal_auth::{self, Signer};
use choreo_platform::supervisor::replica_pid_files;
use nix::{sys::signal::Signal, unistd::Pid};
use reqwest::header::AUTHORIZATION;
use std::{
    path::{Path, PathBuf},
    time::Duration,
};
use tokio::{sync::watch, time::Instant};

fn pid_of(data_dir: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(pid_file(data_dir, name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The pid of the running `name`. Faults overlap (a kill while another
/// fault's restart is under way), so a process between two lives is
/// waited for.
async fn running_pid(data_dir: &Path, name: &str) -> anyhow::Result<i32> {
    let until = Instant::now() + HEAL_DEADLINE;
    loop {
        if let Some(pid) = pid_of(data_dir, name) {
            return Ok(pid);
        }
        anyhow::ensure!(
            Instant::now() < until,
            "{name} was not running within {HEAL_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `signal` to the process `name`; `false` when it was gone already
/// (it died of another fault, or a scale stopped it, since its pid was
/// read), which overlapping faults make a matter of course.
fn send(name: &str, pid: i32, signal: Signal) -> anyhow::Result<bool> {
    match nix::sys::signal::kill(Pid::from_raw(pid), signal) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("sending {signal} to {name} ({pid})")),
    }
}

/// [`send`] as a failure drill: the process's supervisor is told first, so
/// that it restarts the process without counting a crash (no growing
/// backoff; see the supervisor's drill files).
fn drill(data_dir: &Path, name: &str, pid: i32, signal: Signal) -> anyhow::Result<bool> {
    name_drilled(data_dir, name, pid)?;
    let sent = send(name, pid, signal);
    if !matches!(sent, Ok(true)) {
        choreo_platform::supervisor::undrill(&pid_file(data_dir, name), pid);
    }
    sent
}

fn pid_file(data_dir: &Path, name: &str) -> PathBuf {
    choreo_platform::supervisor::pid_file(&data_dir.join("run"), name)
}

/// Tells `name`'s supervisor that its process `pid` is about to die of a
/// drill (see the supervisor's drill files).
fn name_drilled(data_dir: &Path, name: &str, pid: i32) -> anyhow::Result<()> {
    choreo_platform::supervisor::drill(&pid_file(data_dir, name), pid)
        .with_context(|| format!("naming {name} ({pid}) in its drill file"))
}

/// The processes of `name`: every running replica of a saga service (in
/// replica order: `order`, `order-1`, …), or the one process of the others.
/// Waited for while none runs (another fault's restart).
async fn processes(data_dir: &Path, name: &str) -> anyhow::Result<Vec<(String, i32)>> {
    if !choreo_events::SAGA_SERVICES.contains(&name) {
        return Ok(vec![(name.to_owned(), running_pid(data_dir, name).await?)]);
    }
    let until = Instant::now() + HEAL_DEADLINE;
    loop {
        let mut running: Vec<(usize, String, i32)> = replica_pid_files(&data_dir.join("run"), name)
            .iter()
            .filter_map(|file| {
                let replica = file.file_stem()?.to_str()?.to_owned();
                let index = replica_index(name, &replica)?;
                Some((index, replica.clone(), pid_of(data_dir, &replica)?))
            })
            .collect();
        running.sort();
        if !running.is_empty() {
            return Ok(running.into_iter().map(|(_, n, pid)| (n, pid)).collect());
        }
        anyhow::ensure!(
            Instant::now() < until,
            "no replica of {name} was running within {HEAL_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where a fault lands: the platform's pid files, and the service's own
/// HTTP API for arming its fail points.
pub(crate) struct Target {
    pub data_dir: PathBuf,
    pub kafka: choreo_messaging::KafkaSettings,
    /// The service's database proxy, for database faults.
    pub database: Option<std::sync::Arc<tokio::sync::Mutex<super::db_proxy::DbProxy>>>,
    /// The proxy every client reaches the broker through, for broker cuts.
    pub broker: Option<std::sync::Arc<super::broker_proxy::BrokerProxy>>,
    /// The payment provider stand-in's API, for provider faults.
    pub provider: String,
    /// Signs the calls to the services' and the provider's admin routes.
    pub operator: Signer,
    /// The suite's seed, which provider faults draw their hits from.
    pub seed: u64,
    /// Drawn with the seed for this injection: which replica a
    /// kill-replica without a `replica` kills, of those running.
    pub draw: usize,
    /// The saga services' replicas, for scale faults, and where each
    /// answers, for arming fail points and waiting for readiness.
    pub pool: std::sync::Arc<tokio::sync::Mutex<choreo_platform::up::replicas::Pool>>,
    /// Held by a crash-at from arming until its replica runs again, one
    /// lock per service: two crash-ats of a service at once would disarm
    /// each other's replicas (the first disarms every replica it armed but
    /// the one that died), and the second would wait for a replica that no
    /// longer holds the relay's lease.
    pub crash_at: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// How long the provider holds an answer it is to time out: well past
/// payment's patience (`PROVIDER_TIMEOUT_MS` in `run`).
const PROVIDER_HOLD_MS: u64 = 2_500;

/// How long a killed process may take to be running again, and an armed
/// fail point to be reached.
const HEAL_DEADLINE: Duration = Duration::from_secs(120);

/// Waits until the supervisor runs `name` under another pid than `pid`.
/// Waits until the supervisor runs `name` under another pid than `pid`, or
/// a scale fault has stopped that replica for good meanwhile.
async fn restarted(target: &Target, name: &str, pid: i32) -> anyhow::Result<()> {
    let until = Instant::now() + HEAL_DEADLINE;
    while pid_of(&target.data_dir, name).is_none_or(|p| p == pid) {
        if scaled_away(target, name).await {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < until,
            "{name} was not running again within {HEAL_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

impl Target {
    /// Where the replica process `replica` of `service` answers.
    async fn url(&self, service: &str, replica: &str) -> Option<String> {
        let index = replica_index(service, replica)?;
        self.pool.lock().await.url(service, index)
    }
}

/// Whether the process `name` is a replica a scale fault stopped.
async fn scaled_away(target: &Target, name: &str) -> bool {
    let Some((service, index)) = choreo_events::SAGA_SERVICES
        .into_iter()
        .find_map(|s| Some((s, replica_index(s, name)?)))
    else {
        return false;
    };
    !target.pool.lock().await.runs(service, index)
}

/// Sends the admin request `build` makes until it is answered, and returns
/// the answer: no answer, a 5xx or a 429 (a process still starting,
/// restarted by another fault) is retried ([`persist`]); another refusal
/// is final.
pub(crate) async fn admin(
    what: &str,
    operator: &Signer,
    audience: &str,
    build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
) -> anyhow::Result<reqwest::Response> {
    let http = reqwest::Client::new();
    let answer = persist(what, || async {
        let answer = build(&http)
            .header(AUTHORIZATION, operator.authorization(audience))
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        let status = answer.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            anyhow::bail!("{status} {}", answer.text().await.unwrap_or_default());
        }
        Ok(answer)
    })
    .await?;
    if answer.status().is_success() {
        return Ok(answer);
    }
    anyhow::bail!(
        "{what}: {} {}",
        answer.status(),
        answer.text().await.unwrap_or_default()
    )
}

/// Arms `point` in the service at `url` to kill it the next time it passes
/// there. Armed once (`1*return`), so the restarted process runs clean;
/// a build without fail points refuses.
async fn arm(operator: &Signer, service: &str, url: &str, point: &str) -> anyhow::Result<()> {
    admin(
        &format!("arming {point} at {url}"),
        operator,
        service,
        |http| {
            http.put(format!("{url}/admin/fail-points/{point}"))
                .body("1*return")
        },
    )
    .await
    .map(drop)
}

/// Which replica of `service` the process `replica` is (`order` 0,
/// `order-2` 2).
pub(crate) fn replica_index(service: &str, replica: &str) -> Option<usize> {
    match replica.strip_prefix(service)?.strip_prefix('-') {
        None if replica == service => Some(0),
        None => None,
        Some(index) => index.parse().ok(),
    }
}

/// Waits until the replica at `url` answers ready.
async fn ready(url: &str) -> anyhow::Result<()> {
    persist(&format!("waiting for {url} to be ready"), || async {
        reqwest::Client::new()
            .get(format!("{url}/health/ready"))
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    })
    .await
}

/// Disarms `point` in the replica at `url`, which did not pass it. A
/// replica that does not answer (it died meanwhile, of another fault) is
/// restarted clean anyway, so a failure is only logged.
async fn disarm(operator: &Signer, service: &str, url: &str, point: &str) {
    let sent = reqwest::Client::new()
        .put(format!("{url}/admin/fail-points/{point}"))
        .header(AUTHORIZATION, operator.authorization(service))
        .body("off")
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    if let Err(e) = sent.and_then(reqwest::Response::error_for_status) {
        tracing::warn!(url, point, error = %e, "could not disarm a fail point; the replica stays armed until its next restart");
    }
}

/// Switches the provider fault `kind` on with `setting`, or off.
async fn provider_fault(
    operator: &Signer,
    url: &str,
    kind: &str,
    setting: Option<&serde_json::Value>,
) -> anyhow::Result<()> {
    let route = format!("{url}/admin/faults/{kind}");
    admin(
        &format!("switching the provider's {kind} fault"),
        operator,
        internal_auth::PROVIDER,
        |http| match setting {
            Some(setting) => http.put(&route).json(setting),
            None => http.delete(&route),
        },
    )
    .await
    .map(drop)
}

/// Waits for the fault's moment, injects it, heals it, and says when.
pub(crate) async fn inject(
    fault: Fault,
    at: Option<f64>,
    started: Instant,
    target: Target,
    mut placed: watch::Receiver<usize>,
) -> anyhow::Result<FaultEvent> {
    let data_dir = &target.data_dir;
    match (at, fault.after_orders) {
        (Some(at), _) => tokio::time::sleep_until(started + Duration::from_secs_f64(at)).await,
        (None, Some(n)) => {
            let _ = placed.wait_for(|placed| *placed >= n).await;
        }
        (None, None) => {}
    }
    let name = match (fault.kind, &fault.topic) {
        (_, Some(topic)) => topic.clone(),
        (FaultKind::BrokerKill | FaultKind::BrokerPause, _) => "broker".to_owned(),
        (kind, _) if kind.at_provider() => "provider".to_owned(),
        _ => fault.service.clone().unwrap_or_default(),
    };
    let mut injected_at = started.elapsed().as_secs_f64();
    // How many messages a duplicate fault found to copy (fewer than asked
    // for when the topic holds fewer).
    let mut published = fault.count;
    // What the report names, where the fault chose it (a replica).
    let mut label = None;
    match fault.kind {
        FaultKind::Kill | FaultKind::BrokerKill => {
            let mut killed = Vec::new();
            for (process, pid) in processes(data_dir, &name).await? {
                if drill(data_dir, &process, pid, Signal::SIGKILL)? {
                    killed.push((process, pid));
                }
            }
            // Healed once the supervisor has each running again.
            for (process, pid) in &killed {
                restarted(&target, process, *pid).await?;
            }
        }
        FaultKind::KillReplica => {
            // A replica that is gone by the time the signal is sent (another
            // fault's) makes way for another draw among those running.
            let until = Instant::now() + HEAL_DEADLINE;
            let (replica, pid) = loop {
                let running = processes(data_dir, &name).await?;
                let (replica, pid) = match fault.replica {
                    Some(i) => running
                        .iter()
                        .find(|(r, _)| *r == choreo_platform::supervisor::replica_name(&name, i))
                        .cloned()
                        .with_context(|| format!("replica {i} of {name} is not running"))?,
                    None => running[target.draw % running.len()].clone(),
                };
                if drill(data_dir, &replica, pid, Signal::SIGKILL)? {
                    break (replica, pid);
                }
                anyhow::ensure!(
                    Instant::now() < until,
                    "no replica of {name} could be killed within {HEAL_DEADLINE:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            restarted(&target, &replica, pid).await?;
            // Named by its instance id: the first replica's process bears
            // the service's own name.
            label = Some(if replica == name {
                format!("{name}-0")
            } else {
                replica
            });
        }
        FaultKind::Restart => {
            for (process, pid) in processes(data_dir, &name).await? {
                if !drill(data_dir, &process, pid, Signal::SIGTERM)? {
                    continue;
                }
                restarted(&target, &process, pid).await?;
                if scaled_away(&target, &process).await {
                    continue;
                }
                if let Some(url) = target.url(&name, &process).await {
                    ready(&url).await?;
                }
            }
        }
        FaultKind::Scale => {
            let service = choreo_platform::up::replicas::Replicas::service(&name)
                .map_err(|e| anyhow::anyhow!(e))?;
            let wanted = fault.replicas.unwrap_or(1);
            let before = target.pool.lock().await.scale(service, wanted).await;
            label = Some(format!("{name} {before}→{wanted}"));
        }
        FaultKind::CrashAt => {
            let _one_at_a_time = target.crash_at.lock().await;
            let point = fault.point.as_deref().unwrap_or_default();
            // Every replica is armed: the one that passes the point first
            // (for the relay's, the lease holder) dies, the others are
            // disarmed. The pids first: once armed, a process may die at once.
            let mut armed = Vec::new();
            // Each armed replica is named a drill's, so that its death is
            // not taken for a crash loop; taken back for those disarmed.
            for (replica, pid) in processes(data_dir, &name).await? {
                if let Some(url) = target.url(&name, &replica).await {
                    name_drilled(data_dir, &replica, pid)?;
                    arm(&target.operator, &name, &url, point).await?;
                    armed.push((replica, pid, url));
                }
            }
            anyhow::ensure!(!armed.is_empty(), "no replica of {name} to arm");
            // Injected when one dies, which is when it reaches the point.
            let until = Instant::now() + HEAL_DEADLINE;
            let (dead, pid) = loop {
                let dead = armed
                    .iter()
                    .find(|(_, pid, _)| nix::sys::signal::kill(Pid::from_raw(*pid), None).is_err());
                if let Some((replica, pid, _)) = dead {
                    break (replica.clone(), *pid);
                }
                anyhow::ensure!(
                    Instant::now() < until,
                    "no replica of {name} reached {point} within {HEAL_DEADLINE:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            injected_at = started.elapsed().as_secs_f64();
            for (replica, pid, url) in armed.iter().filter(|(r, ..)| *r != dead) {
                disarm(&target.operator, &name, url, point).await;
                choreo_platform::supervisor::undrill(&pid_file(data_dir, replica), *pid);
            }
            restarted(&target, &dead, pid).await?;
            if armed.len() > 1 {
                label = Some(format!("{dead}@{point}"));
            }
        }
        FaultKind::Duplicate => {
            let topic = target.kafka.topics().name(topic_of(&fault)?);
            published = Some(duplicate(&target.kafka, &topic, fault.count.unwrap_or(1)).await?);
        }
        FaultKind::Poison => {
            let topic = target.kafka.topics().name(topic_of(&fault)?);
            poison(&target.kafka, &topic, fault.count.unwrap_or(1)).await?;
        }
        FaultKind::DbCut | FaultKind::DbLatency => {
            let proxy = target
                .database
                .as_ref()
                .context("a database fault has its proxy")?;
            let seconds = Duration::from_secs_f64(fault.seconds.unwrap_or(1.0));
            if fault.kind == FaultKind::DbCut {
                proxy.lock().await.cut().await;
                tokio::time::sleep(seconds).await;
                proxy.lock().await.restore().await?;
            } else {
                let ms = fault.latency_ms.unwrap_or(0);
                proxy.lock().await.set_latency(ms).await?;
                tokio::time::sleep(seconds).await;
                proxy.lock().await.set_latency(0).await?;
            }
        }
        FaultKind::BrokerCut => {
            let proxy = target
                .broker
                .as_ref()
                .context("a broker cut has the broker's proxy")?;
            let service = fault
                .service
                .as_deref()
                .context("a broker cut names a service")?;
            proxy.cut(service);
            tokio::time::sleep(Duration::from_secs_f64(fault.seconds.unwrap_or(1.0))).await;
            let severed = proxy.restore(service);
            // Evidence that the cut reached the service at all.
            label = Some(format!(
                "{service} ({} connections closed, {} refused)",
                severed.closed, severed.refused
            ));
        }
        FaultKind::ProviderDecline | FaultKind::ProviderError | FaultKind::ProviderTimeout => {
            let kind = match fault.kind {
                FaultKind::ProviderDecline => "decline",
                FaultKind::ProviderError => "error",
                _ => "timeout",
            };
            let mut setting = serde_json::json!({
                "share": fault.share.unwrap_or(0.0),
                "seed": target.seed,
            });
            if fault.kind == FaultKind::ProviderTimeout {
                setting["hold_ms"] = PROVIDER_HOLD_MS.into();
            }
            // Held in the stand-in's memory: a provider killed meanwhile
            // comes back healthy, as a real one would after a restart.
            provider_fault(&target.operator, &target.provider, kind, Some(&setting)).await?;
            tokio::time::sleep(Duration::from_secs_f64(fault.seconds.unwrap_or(1.0))).await;
            provider_fault(&target.operator, &target.provider, kind, None).await?;
        }
        FaultKind::Pause | FaultKind::BrokerPause => {
            // The same processes are woken that were stopped: a stopped
            // process is not restarted, so its pid stays.
            let mut stopped = Vec::new();
            for (process, pid) in processes(data_dir, &name).await? {
                if send(&process, pid, Signal::SIGSTOP)? {
                    stopped.push((process, pid));
                }
            }
            tokio::time::sleep(Duration::from_secs_f64(fault.seconds.unwrap_or(1.0))).await;
            for (process, pid) in &stopped {
                // One stopped by a scale meanwhile is gone: nothing to wake.
                send(process, *pid, Signal::SIGCONT)?;
            }
        }
    }
    let target = match (&fault.point, published, fault.share) {
        _ if label.is_some() => label.unwrap_or_default(),
        (Some(point), _, _) => format!("{name}@{point}"),
        (None, Some(count), _) => format!("{name}×{count}"),
        (None, None, Some(share)) => format!("{name} {:.0}%", share * 100.0),
        (None, None, None) => name,
    };
    Ok(FaultEvent {
        kind: fault.kind.name().to_owned(),
        target,
        injected_at,
        healed_at: started.elapsed().as_secs_f64(),
        overlapped: Vec::new(),
    })
}

fn topic_of(fault: &Fault) -> anyhow::Result<choreo_events::Topic> {
    let name = fault.topic.as_deref().context("the fault names a topic")?;
    choreo_events::Topics::default()
        .parse(name)
        .with_context(|| format!("no saga topic {name}"))
}

/// Publishes the last `count` messages of `topic` again, each to its own
/// partition with its key, value and headers: the copies a producer makes
/// when it retries a send whose acknowledgement was lost. Returns how many
/// it published.
async fn duplicate(
    kafka: &choreo_messaging::KafkaSettings,
    topic: &str,
    count: usize,
) -> anyhow::Result<usize> {
    use rdkafka::Message as _;
    let mut messages = persist(&format!("reading {topic} to duplicate it"), || async {
        Ok(choreo_messaging::admin::read_to_end(kafka, topic).await?)
    })
    .await?;
    // The newest ones, whatever their partition: by timestamp, then offset.
    messages.sort_by_key(|m| (m.timestamp().to_millis().unwrap_or(0), m.offset()));
    let from = messages.len().saturating_sub(count);
    let publisher = Publisher::new(kafka)?;
    for message in &messages[from..] {
        publisher
            .publish(
                topic,
                message.partition(),
                message.key(),
                message.payload(),
                message.headers().cloned(),
            )
            .await?;
    }
    Ok(messages.len() - from)
}

/// How the key of every poison message begins: how the verdict finds them
/// on the topics.
pub(crate) const POISON_KEY: &str = "chaos-poison-";

/// Publishes `count` messages to `topic`, over all its partitions, that no
/// consumer can apply: half are not Avro at all, half name a schema id
/// the registry never issued.
async fn poison(
    kafka: &choreo_messaging::KafkaSettings,
    topic: &str,
    count: usize,
) -> anyhow::Result<()> {
    let publisher = Publisher::new(kafka)?;
    for i in 0..count {
        let value: Vec<u8> = if i % 2 == 0 {
            format!("chaos poison {i}: not an event").into_bytes()
        } else {
            // Confluent framing: magic byte 0, then a 4-byte schema id.
            [0u8, 0x7f, 0xff, 0xff, 0xf0, 0x02].to_vec()
        };
        let key = format!("{POISON_KEY}{i}");
        let partition = i32::try_from(i).unwrap_or(0) % kafka.partitions.max(1);
        publisher
            .publish(topic, partition, Some(key.as_bytes()), Some(&value), None)
            .await?;
    }
    Ok(())
}

/// The producer of the message faults. The services' producer never gives
/// up on a record while the broker is away, so a broker restart only
/// delays a send; a producer that failed for good anyway (its idempotence
/// state lost with the broker's, say) is replaced and the record sent
/// again, at the cost of a copy if the first send had landed after all.
struct Publisher<'a> {
    kafka: &'a choreo_messaging::KafkaSettings,
    producer: tokio::sync::Mutex<choreo_messaging::producer::Producer>,
}

impl<'a> Publisher<'a> {
    fn new(kafka: &'a choreo_messaging::KafkaSettings) -> anyhow::Result<Self> {
        Ok(Self {
            kafka,
            producer: tokio::sync::Mutex::new(choreo_messaging::producer::idempotent(kafka)?),
        })
    }

    async fn publish(
        &self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<rdkafka::message::OwnedHeaders>,
    ) -> anyhow::Result<()> {
        persist(&format!("publishing to {topic}/{partition}"), || async {
            let mut producer = self.producer.lock().await;
            let mut record =
                rdkafka::producer::FutureRecord::<[u8], [u8]>::to(topic).partition(partition);
            if let Some(key) = key {
                record = record.key(key);
            }
            if let Some(value) = value {
                record = record.payload(value);
            }
            if let Some(headers) = &headers {
                record = record.headers(headers.clone());
            }
            if let Err(e) = producer.send(record, Duration::from_secs(30)).await {
                *producer = choreo_messaging::producer::idempotent(self.kafka)?;
                anyhow::bail!("{e}");
            }
            Ok(())
        })
        .await
    }
}
