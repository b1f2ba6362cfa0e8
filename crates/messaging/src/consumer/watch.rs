//! The group watch: whether this member's group still takes its offsets,
//! judged from the broker's answers rather than from librdkafka's belief.
//!
//! A consumer can go on fetching and applying events while its group no
//! longer records what it applied: commits refused after a broker restart,
//! or a member that timed out and rejoined into a group state the broker
//! never completes. It then reads "lag 0" by its own position while its
//! committed offsets stand still, and a restart would apply everything since
//! again (the inbox would skip it, after re-reading it all). Seen on the
//! local broker after a SIGSTOP past the session timeout across a broker
//! restart: 303 events uncommitted for five minutes, the service ready.
//!
//! Every `check_interval` the watch asks the group coordinator for the
//! committed offsets of the member's partitions and compares them with what
//! the member applied ([`Judge`]). The member is unhealthy when, for
//! `stall_after`:
//! - its offset commits of a partition kept failing;
//! - a partition's committed offset stood still while the member had applied
//!   past it;
//! - it held no partition while some partition of its topics had events
//!   and a committed offset that stood still: nobody owns it.
//!
//! An unhealthy member reports itself stalled (degraded), with the reason, and the consumer
//! replaces it with a new one (see `Consumer::run`), without a process
//! restart. Each check also records the lag by the group's committed offsets
//! and by the member's position, for `/metrics` and `/stats`.

use super::group::{GroupConsumer, Key, label};
use crate::{Health, MessagingError, admin};
use rdkafka::{Offset, TopicPartitionList, consumer::Consumer as _};
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The component name under which an unhealthy group is reported stalled.
pub(crate) const COMPONENT: &str = "consumer group";

/// What one check saw.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub(crate) assigned: Vec<Key>,
    /// The next offset the member will apply, per partition it applied on.
    pub(crate) applied: BTreeMap<Key, i64>,
    /// The group's committed offset per assigned partition, as the
    /// coordinator answered; `None` when it could not be asked.
    pub(crate) committed: Option<BTreeMap<Key, Option<i64>>>,
    /// Only while the member holds no partition: every partition of its
    /// topics with the group's committed offset and the partition's end.
    pub(crate) group: Option<Vec<(Key, Option<i64>, i64)>>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing is behind or failing.
    Healthy,
    /// Something is behind, not for long enough to judge.
    Pending,
    Unhealthy(String),
}

/// The watch's memory between checks; a new member starts a new one.
#[derive(Debug)]
pub(crate) struct Judge {
    stall_after: Duration,
    check_interval: Duration,
    last_check: Option<Instant>,
    /// Partitions whose commits failed since they last succeeded: since
    /// when, and the last error.
    failing: BTreeMap<Key, (Instant, String)>,
    /// Assigned partitions applied past their committed offset: that
    /// committed offset, and since when it stands.
    behind: BTreeMap<Key, (Option<i64>, Instant)>,
    unassigned_since: Option<Instant>,
    /// While nothing is assigned: partitions with events past a committed
    /// offset that stands, since when.
    orphaned: BTreeMap<Key, (Option<i64>, Instant)>,
}

fn seconds(d: Duration) -> String {
    format!("{:.0} s", d.as_secs_f64())
}

impl Judge {
    pub(crate) fn new(stall_after: Duration, check_interval: Duration) -> Self {
        Self {
            stall_after,
            check_interval,
            last_check: None,
            failing: BTreeMap::new(),
            behind: BTreeMap::new(),
            unassigned_since: None,
            orphaned: BTreeMap::new(),
        }
    }

    /// Takes the outcome of one offset commit.
    pub(crate) fn commit(&mut self, now: Instant, outcome: &[(Key, Result<i64, String>)]) {
        for (key, result) in outcome {
            match result {
                Ok(_) => {
                    self.failing.remove(key);
                }
                Err(error) => {
                    self.failing
                        .entry(key.clone())
                        .or_insert_with(|| (now, String::new()))
                        .1 = error.clone();
                }
            }
        }
    }

    pub(crate) fn check(&mut self, now: Instant, view: &View) -> Verdict {
        // A check far later than planned: the process was stopped (SIGSTOP)
        // or starved, and nothing could commit meanwhile. Every clock starts
        // again rather than blame the group for the process's own absence.
        if self
            .last_check
            .is_some_and(|last| now.duration_since(last) > self.check_interval * 3)
        {
            for (since, _) in self.failing.values_mut() {
                *since = now;
            }
            for (_, since) in self.behind.values_mut().chain(self.orphaned.values_mut()) {
                *since = now;
            }
            self.unassigned_since = self.unassigned_since.map(|_| now);
        }
        self.last_check = Some(now);
        let stalled = |since: Instant| now.duration_since(since) >= self.stall_after;

        self.failing.retain(|key, _| view.assigned.contains(key));
        if let Some((key, (since, error))) = self.failing.iter().find(|(_, (s, _))| stalled(*s)) {
            return Verdict::Unhealthy(format!(
                "offset commits of {} have failed for {}: {error}",
                label(key),
                seconds(now.duration_since(*since))
            ));
        }

        if let Some(committed) = &view.committed {
            self.behind.retain(|key, _| view.assigned.contains(key));
            for key in &view.assigned {
                let group = committed.get(key).copied().flatten();
                let ahead = view
                    .applied
                    .get(key)
                    .is_some_and(|applied| group.is_none_or(|c| *applied > c));
                match (ahead, self.behind.get(key)) {
                    (false, _) => {
                        self.behind.remove(key);
                    }
                    (true, Some((standing, _))) if *standing == group => {}
                    (true, _) => {
                        self.behind.insert(key.clone(), (group, now));
                    }
                }
            }
        }
        if let Some((key, (group, since))) = self.behind.iter().find(|(_, (_, s))| stalled(*s)) {
            return Verdict::Unhealthy(format!(
                "the group's committed offset of {} has stood at {} for {} while this member applied up to {}",
                label(key),
                group.map_or("nothing".to_owned(), |c| c.to_string()),
                seconds(now.duration_since(*since)),
                view.applied.get(key).copied().unwrap_or_default()
            ));
        }

        if !view.assigned.is_empty() {
            self.unassigned_since = None;
            self.orphaned.clear();
        } else {
            let unassigned_since = *self.unassigned_since.get_or_insert(now);
            if let Some(group) = &view.group {
                let waiting: Vec<&(Key, Option<i64>, i64)> = group
                    .iter()
                    .filter(|(_, committed, end)| *end > committed.unwrap_or(0))
                    .collect();
                self.orphaned
                    .retain(|key, _| waiting.iter().any(|(k, _, _)| k == key));
                for (key, committed, _) in &waiting {
                    match self.orphaned.get(key) {
                        Some((standing, _)) if standing == committed => {}
                        _ => {
                            self.orphaned.insert(key.clone(), (*committed, now));
                        }
                    }
                }
            }
            if stalled(unassigned_since) {
                if let Some((key, (_, since))) =
                    self.orphaned.iter().find(|(_, (_, s))| stalled(*s))
                {
                    return Verdict::Unhealthy(format!(
                        "this member has held no partition for {} while {} has had events and no progress for {}: nobody in the group owns it",
                        seconds(now.duration_since(unassigned_since)),
                        label(key),
                        seconds(now.duration_since(*since))
                    ));
                }
            }
        }

        if self.failing.is_empty() && self.behind.is_empty() && self.orphaned.is_empty() {
            Verdict::Healthy
        } else {
            Verdict::Pending
        }
    }
}

/// How the watch checks.
#[derive(Debug, Clone)]
pub(crate) struct WatchSettings {
    pub(crate) check_interval: Duration,
    pub(crate) stall_after: Duration,
    /// The member's group and input topics, for the partitions nobody
    /// owns.
    pub(crate) group: String,
    pub(crate) topics: Vec<String>,
}

/// Checks the member until `stop`, and says why when it is unhealthy (then
/// it ends). Commit outcomes arrive on `commits`.
pub(crate) async fn watch(
    consumer: Arc<GroupConsumer>,
    mut commits: mpsc::UnboundedReceiver<super::group::Commit>,
    health: Health,
    settings: WatchSettings,
    unhealthy: mpsc::Sender<String>,
    stop: CancellationToken,
) {
    let mut judge = Judge::new(settings.stall_after, settings.check_interval);
    let mut tick = tokio::time::interval(settings.check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            Some(outcome) = commits.recv() => judge.commit(Instant::now(), &outcome),
            _ = tick.tick() => {
                let view = match read_view(consumer.clone(), settings.clone()).await {
                    Ok(view) => view,
                    Err(e) => {
                        tracing::debug!(error = %choreo_telemetry::error_chain(&e), "group watch: cannot read the member's view");
                        continue;
                    }
                };
                record_lag(&consumer, &health, &view);
                match judge.check(Instant::now(), &view) {
                    Verdict::Healthy => health.recover(COMPONENT),
                    Verdict::Pending => {}
                    Verdict::Unhealthy(reason) => {
                        health.stall(COMPONENT, &reason);
                        let _ = unhealthy.send(reason).await;
                        return;
                    }
                }
            }
        }
    }
}

/// How long one question to the coordinator may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the assignment, the group's committed offsets (from the
/// coordinator) and, with nothing assigned, the whole group's standing.
/// The questions block, so they run off the async workers.
async fn read_view(
    consumer: Arc<GroupConsumer>,
    settings: WatchSettings,
) -> Result<View, MessagingError> {
    tokio::task::spawn_blocking(move || {
        let assignment = consumer
            .assignment()
            .map_err(MessagingError::kafka("reading the assignment"))?;
        let assigned: Vec<Key> = assignment
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let applied = consumer.context().progress.applied_positions();
        let committed = if assigned.is_empty() {
            None
        } else {
            consumer
                .committed_offsets(assignment, ASK_TIMEOUT)
                .ok()
                .map(|list| offsets(&list))
        };
        let group = if assigned.is_empty() {
            group_standing(&consumer, &settings.group, &settings.topics).ok()
        } else {
            None
        };
        Ok(View {
            assigned,
            applied,
            committed,
            group,
        })
    })
    .await
    .map_err(|e| MessagingError::Blocking(e.to_string()))?
}

fn offsets(list: &TopicPartitionList) -> BTreeMap<Key, Option<i64>> {
    list.elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            ((e.topic().to_owned(), e.partition()), offset)
        })
        .collect()
}

/// Every partition of `topics`: the group's committed offset and the end.
fn group_standing(
    consumer: &GroupConsumer,
    group: &str,
    topics: &[String],
) -> Result<Vec<(Key, Option<i64>, i64)>, MessagingError> {
    Ok(
        admin::group_standing(&**consumer, group, topics, ASK_TIMEOUT)?
            .into_iter()
            .map(|p| ((p.topic, p.partition), p.committed, p.end))
            .collect(),
    )
}

/// The lag of each assigned partition by the group's committed offset and
/// by this member's position, against the end librdkafka last reported.
fn record_lag(consumer: &GroupConsumer, health: &Health, view: &View) {
    let ends = consumer.context().progress.ends();
    let mut lag = Vec::new();
    for key in &view.assigned {
        let Some(end) = ends.get(key).copied() else {
            continue;
        };
        let committed = view
            .committed
            .as_ref()
            .and_then(|c| c.get(key).copied().flatten());
        let position = view.applied.get(key).copied().or(committed);
        lag.push((
            key.clone(),
            crate::metrics::Lag {
                committed: committed.map(|c| (end - c).max(0)),
                position: position.map(|p| (end - p).max(0)),
            },
        ));
    }
    health.metrics().record_lag(&lag);
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(30);
    const CHECK: Duration = Duration::from_secs(5);

    fn key(p: i32) -> Key {
        ("order.events".to_owned(), p)
    }

    fn view(applied: i64, committed: Option<i64>) -> View {
        View {
            assigned: vec![key(0)],
            applied: [(key(0), applied)].into(),
            committed: Some([(key(0), committed)].into()),
            group: None,
        }
    }

    /// Checks every `CHECK` from `start` for `count` checks, returning the
    /// last verdict and the time after it.
    fn checks(judge: &mut Judge, start: Instant, count: u32, view: &View) -> (Verdict, Instant) {
        let mut now = start;
        let mut verdict = Verdict::Healthy;
        for _ in 0..count {
            verdict = judge.check(now, view);
            now += CHECK;
        }
        (verdict, now)
    }

    #[test]
    fn a_member_whose_commits_keep_up_is_healthy() {
        let mut judge = Judge::new(STALL, CHECK);
        let (verdict, _) = checks(&mut judge, Instant::now(), 20, &view(120, Some(120)));
        assert_eq!(verdict, Verdict::Healthy);
    }

    #[test]
    fn a_committed_offset_that_stands_while_the_member_applies_is_unhealthy() {
        let mut judge = Judge::new(STALL, CHECK);
        let start = Instant::now();
        // Applied past the committed offset: pending until the stall time.
        let (verdict, now) = checks(&mut judge, start, 6, &view(400, Some(97)));
        assert_eq!(verdict, Verdict::Pending);
        let verdict = judge.check(now, &view(420, Some(97)));
        let Verdict::Unhealthy(reason) = verdict else {
            panic!("{verdict:?}")
        };
        assert!(reason.contains("order.events/0"), "{reason}");
        assert!(reason.contains("stood at 97"), "{reason}");
    }

    #[test]
    fn a_committed_offset_that_moves_is_not_stalled_however_far_behind() {
        let mut judge = Judge::new(STALL, CHECK);
        let mut now = Instant::now();
        for i in 0..20 {
            let verdict = judge.check(now, &view(1000, Some(i * 10)));
            assert_eq!(verdict, Verdict::Pending);
            now += CHECK;
        }
    }

    #[test]
    fn commits_failing_for_the_stall_time_are_unhealthy_and_a_success_clears_them() {
        let mut judge = Judge::new(STALL, CHECK);
        let start = Instant::now();
        judge.commit(start, &[(key(0), Err("NotCoordinator".into()))]);
        let (verdict, now) = checks(&mut judge, start, 6, &view(50, Some(50)));
        assert_eq!(verdict, Verdict::Pending);
        judge.commit(now, &[(key(0), Ok(50))]);
        assert_eq!(judge.check(now, &view(50, Some(50))), Verdict::Healthy);

        judge.commit(now, &[(key(0), Err("NotCoordinator".into()))]);
        let (_, later) = checks(&mut judge, now, 6, &view(50, Some(50)));
        let verdict = judge.check(later, &view(50, Some(50)));
        assert!(
            matches!(&verdict, Verdict::Unhealthy(r) if r.contains("NotCoordinator")),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_process_stopped_for_longer_than_the_stall_time_is_not_blamed_on_the_group() {
        let mut judge = Judge::new(STALL, CHECK);
        let start = Instant::now();
        assert_eq!(judge.check(start, &view(60, Some(50))), Verdict::Pending);
        // SIGSTOP for a minute: the next check comes late, the commit of
        // the resumed process has not landed yet.
        let resumed = start + Duration::from_secs(60);
        assert_eq!(judge.check(resumed, &view(60, Some(50))), Verdict::Pending);
        assert_eq!(
            judge.check(resumed + CHECK, &view(60, Some(60))),
            Verdict::Healthy
        );
    }

    #[test]
    fn a_member_without_partitions_is_unhealthy_only_while_a_partition_has_no_progress() {
        let idle = |committed: i64| View {
            group: Some(vec![(key(0), Some(committed), 300), (key(1), Some(40), 40)]),
            ..View::default()
        };
        let mut judge = Judge::new(STALL, CHECK);
        let start = Instant::now();
        // Another member makes progress on partition 0: fine.
        let mut now = start;
        for i in 0..10 {
            assert_eq!(judge.check(now, &idle(100 + i)), Verdict::Pending);
            now += CHECK;
        }
        // Then nobody does.
        let (verdict, now) = checks(&mut judge, now, 6, &idle(110));
        assert_eq!(verdict, Verdict::Pending);
        let verdict = judge.check(now, &idle(110));
        assert!(
            matches!(&verdict, Verdict::Unhealthy(r) if r.contains("nobody in the group owns it")),
            "{verdict:?}"
        );
        // A member with nothing to read anywhere is simply idle.
        let mut judge = Judge::new(STALL, CHECK);
        let (verdict, _) = checks(&mut judge, start, 20, &idle(300));
        assert_eq!(verdict, Verdict::Healthy);
    }
}
