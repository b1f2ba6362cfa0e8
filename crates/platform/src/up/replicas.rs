//! Replicas of the saga services: how many of each a platform runs, and
//! how one replica is started.
//!
//! Every replica of a service shares its database and its consumer group;
//! each has a static instance id of its own (`<service>-<index>`, so a
//! restarted replica takes its own place in the group back), an HTTP port
//! of its own, and its own pid file and log (`order` for the first, as with
//! one replica, then `order-1`, `order-2`, …). One hold file holds them all.

use crate::supervisor::{
    ProcessSpec, Supervised, hold_file, is_replica_of, pid_file, replica_name, supervise,
};
use std::{collections::BTreeMap, path::PathBuf};

/// How many replicas of each saga service run; one unless said otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replicas(BTreeMap<&'static str, usize>);

/// The most replicas of one service a platform runs: a bound, so that a
/// typo (`order=300`) is an error and not a machine brought to its knees.
pub const MAX_REPLICAS: usize = 16;

impl Replicas {
    /// `SERVICE=N`, as `--replicas` takes it.
    ///
    /// # Errors
    /// When the service is not a saga service or N is not 1 to
    /// [`MAX_REPLICAS`].
    pub fn parse_one(text: &str) -> Result<(&'static str, usize), String> {
        let (service, count) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not SERVICE=N (order=3)"))?;
        let service = Self::service(service.trim())?;
        let count = count
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_REPLICAS).contains(n))
            .ok_or_else(|| {
                format!("{text:?}: the number of replicas must be 1 to {MAX_REPLICAS}")
            })?;
        Ok((service, count))
    }

    /// The saga service `name` names.
    ///
    /// # Errors
    /// When it is not one.
    pub fn service(name: &str) -> Result<&'static str, String> {
        choreo_events::SAGA_SERVICES
            .into_iter()
            .find(|s| *s == name)
            .ok_or_else(|| {
                format!(
                    "{name:?} is not a saga service ({})",
                    choreo_events::SAGA_SERVICES.join(", ")
                )
            })
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (&'static str, usize)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    pub fn of(&self, service: &str) -> usize {
        self.0.get(service).copied().unwrap_or(1).max(1)
    }

    /// Replicas beyond the first of each service: the ports they need.
    pub fn extra(&self) -> usize {
        choreo_events::SAGA_SERVICES
            .iter()
            .map(|s| self.of(s) - 1)
            .sum()
    }
}

/// What it takes to start a replica of a saga service: shared by the
/// platform's start and by a chaos suite that scales a service mid-load.
#[derive(Debug, Clone)]
pub struct SagaProcesses {
    pub bin_dir: PathBuf,
    pub data_dir: PathBuf,
    /// Each service's settings common to its replicas (database, registry,
    /// broker, and the caller's extra settings).
    pub env: BTreeMap<&'static str, Vec<(String, String)>>,
}

impl SagaProcesses {
    /// Replica `index` of `service`, serving HTTP on `port`.
    pub fn spec(&self, service: &'static str, index: usize, port: u16) -> ProcessSpec {
        let name = replica_name(service, index);
        let run = self.data_dir.join("run");
        let mut env = vec![
            ("CHOREO_HTTP_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            // Static membership: the replica's restarts take its place in
            // the group back at once.
            (
                "CHOREO_CONSUMER__INSTANCE_ID".to_owned(),
                format!("{service}-{index}"),
            ),
        ];
        env.extend(self.env.get(service).into_iter().flatten().cloned());
        ProcessSpec {
            program: self.bin_dir.join(format!("choreo-{service}")),
            args: vec![],
            env,
            cwd: None,
            log: self.data_dir.join("logs").join(format!("{name}.log")),
            pid_file: pid_file(&run, &name),
            hold_file: hold_file(&run, service),
            name,
        }
    }
}

/// The saga services' running replicas, which a chaos suite scales up and
/// down mid-load (`scale`). The first replica of a service is never
/// stopped: it is the one the edge and the fail points are aimed at.
pub struct Pool {
    saga: SagaProcesses,
    running: BTreeMap<&'static str, Vec<Supervised>>,
    /// Each replica's HTTP port, kept when a scale stops it, so that the
    /// replica started again under its index answers where it did.
    ports: BTreeMap<(&'static str, usize), u16>,
}

impl Pool {
    /// Takes the saga services' replicas out of `running`, the rest of the
    /// platform staying there; `urls` are the replicas' HTTP APIs, by
    /// service in replica order.
    pub fn take(
        saga: SagaProcesses,
        running: &mut Vec<Supervised>,
        urls: &BTreeMap<&'static str, Vec<String>>,
    ) -> Self {
        let ports = urls
            .iter()
            .flat_map(|(service, urls)| {
                urls.iter().enumerate().filter_map(|(index, url)| {
                    let port = reqwest::Url::parse(url).ok()?.port()?;
                    Some(((*service, index), port))
                })
            })
            .collect();
        let mut replicas: BTreeMap<&'static str, Vec<Supervised>> = BTreeMap::new();
        let mut rest = Vec::new();
        for process in running.drain(..) {
            let service = choreo_events::SAGA_SERVICES
                .into_iter()
                .find(|s| is_replica_of(&process.name, s));
            match service {
                Some(service) => replicas.entry(service).or_default().push(process),
                None => rest.push(process),
            }
        }
        *running = rest;
        Self {
            saga,
            running: replicas,
            ports,
        }
    }

    /// Starts or stops (gracefully, the newest first) replicas of
    /// `service` until `count` run; returns how many ran before.
    pub async fn scale(&mut self, service: &'static str, count: usize) -> usize {
        let replicas = self.running.entry(service).or_default();
        let before = replicas.len();
        let count = count.clamp(1, MAX_REPLICAS);
        while replicas.len() > count {
            if let Some(newest) = replicas.pop() {
                newest.stop().await;
            }
        }
        while replicas.len() < count {
            let index = replicas.len();
            let port = *self
                .ports
                .entry((service, index))
                .or_insert_with(|| super::free_port_block(1));
            replicas.push(supervise(self.saga.spec(service, index, port)));
        }
        before
    }

    /// The HTTP API of replica `index` of `service`, while the pool runs it.
    pub fn url(&self, service: &str, index: usize) -> Option<String> {
        if !self.runs(service, index) {
            return None;
        }
        let port = self
            .ports
            .iter()
            .find(|((s, i), _)| *s == service && *i == index)
            .map(|(_, port)| *port)?;
        Some(format!("http://127.0.0.1:{port}"))
    }

    /// Whether replica `index` of `service` is one the pool runs (not
    /// stopped by a scale).
    pub fn runs(&self, service: &str, index: usize) -> bool {
        self.running.get(service).is_some_and(|r| index < r.len())
    }

    /// Stops every replica.
    pub async fn stop(&mut self) {
        for (_, replicas) in std::mem::take(&mut self.running) {
            for process in replicas.into_iter().rev() {
                process.stop().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_counted_per_saga_service_and_bad_ones_refused() {
        assert_eq!(Replicas::parse_one("inventory=3"), Ok(("inventory", 3)));
        assert_eq!(Replicas::parse_one(" payment = 2 "), Ok(("payment", 2)));
        for bad in [
            "edge=2",
            "inventory",
            "inventory=0",
            "inventory=x",
            "order=17",
        ] {
            assert!(Replicas::parse_one(bad).is_err(), "{bad} accepted");
        }
        let replicas = Replicas::from_pairs([("inventory", 3), ("payment", 2)]);
        assert_eq!(replicas.of("inventory"), 3);
        assert_eq!(replicas.of("order"), 1);
        assert_eq!(replicas.extra(), 3);
    }
}
