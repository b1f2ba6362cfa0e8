//! Replay: re-read a service's topics from an earlier position, to bring
//! the service back to the truth after an incident (a bad deploy that
//! mishandled events, a database restored from a backup, a group that
//! skipped ahead).
//!
//! A replay is safe by construction: every message goes through the same
//! steps as in the consumer (`process`): its event id is checked against
//! the inbox, so an event the service applied before is skipped, and one it
//! never saw (or forgot, with its database restored) is applied once. Events
//! the handler emits go to the outbox under ids derived from their cause, so
//! what the service had emitted before is emitted under the same ids and
//! dropped by the inboxes downstream.
//!
//! A service that can re-derive its state from its own topic has it read
//! first ([`Phase::Own`]): its published decisions come back exactly as it
//! made them, in its commit order, before any input could be decided anew
//! in another interleaving across partitions.
//!
//! [`plan`] turns a start (the beginning, an offset, a time) into a range
//! per partition without reading or changing anything; [`run`] re-reads the
//! ranges outside the consumer group (assigned partitions, no membership),
//! then moves the group's committed offsets forward to where the replay
//! ended, never back: the service resumes after the replayed events, or
//! where it was if that is later. Run it while the service is stopped
//! ([`live_members`] tells): the service's own consumer would otherwise
//! race the replay on the same events (harmless, the inbox decides, but the
//! counts would say little).

use crate::{
    Handler, Health, KafkaSettings, MessagingError, Processed,
    dead_letter::DeadLetters,
    headers::{OUTBOX_ID_HEADER, header_text},
    process::{Abandoned, Processor},
};
use choreo_events::{Decoder, RegistryClient};
use chrono::{DateTime, Utc};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer},
    message::OwnedMessage,
};
use serde::Serialize;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Which of a service's topics a replay reads, which decides the order it
/// applies them in and whether it moves the group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The service's own topic, re-read first: the decisions it had
    /// published (and its admin changes) are restored exactly, in the order
    /// it committed them, before any input can be decided anew. Read whole,
    /// sorted by [`OUTBOX_ID_HEADER`], then applied through the service's
    /// recovery handler. The group does not consume this topic, so no
    /// offset moves.
    Own,
    /// The service's inputs, each partition in offset order through its
    /// handler; the group's offsets move forward after.
    Inputs,
}

/// Where a replay starts on each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The first offset the broker still holds.
    Beginning,
    /// This offset on every partition replayed (clamped to what it holds).
    Offset(i64),
    /// The first message at or after this time.
    Timestamp(DateTime<Utc>),
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct Request {
    /// The consumer group whose offsets the replay moves forward.
    pub group: String,
    /// Full topic names.
    pub topics: Vec<String>,
    /// Only this partition of each topic; `None`: all.
    pub partition: Option<i32>,
    pub start: Start,
    /// Stop before the first message at or after this time; `None`: at the
    /// end of each partition as of planning.
    pub until: Option<DateTime<Utc>>,
}

/// One partition's part of a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Range {
    pub topic: String,
    pub partition: i32,
    /// The first offset re-read.
    pub from: i64,
    /// The offset the replay stops before.
    pub to: i64,
    /// The group's committed offset when the replay was planned.
    pub committed: Option<i64>,
    /// Why the range is not what the broker answered: a timestamp lookup
    /// it answered wrongly, an offset it no longer holds.
    pub note: Option<String>,
    /// When the broker took the first event re-read (`None` for an empty
    /// range, or a message without a timestamp): how far back the replay
    /// reaches, to compare with how long the inbox remembers.
    pub first_at: Option<DateTime<Utc>>,
}

impl Range {
    /// How many events the range holds.
    pub fn len(&self) -> i64 {
        (self.to - self.from).max(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ranges a replay of `request` reads, per partition, from the broker's
/// answers; nothing is read from the partitions but the few messages that
/// check a timestamp lookup.
///
/// A timestamp is looked up with the broker (`offsetsForTimes`), and the
/// answer is checked against the messages on either side of it. An answer
/// that would skip messages after the time is replaced by the partition's
/// first offset, and the range says so: re-reading too much is harmless,
/// skipping is not. (The local Tansu broker answers 0 for some partitions.)
///
/// # Errors
/// When the broker cannot be reached or answers with an error.
pub async fn plan(
    settings: &KafkaSettings,
    request: &Request,
) -> Result<Vec<Range>, MessagingError> {
    let (settings, request) = (settings.clone(), request.clone());
    tokio::task::spawn_blocking(move || plan_blocking(&settings, &request))
        .await
        .map_err(|e| MessagingError::Blocking(e.to_string()))?
}

fn reader(settings: &KafkaSettings, group: &str) -> Result<BaseConsumer, MessagingError> {
    let mut config = settings.client_config();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // It reads single messages, and only where they are.
        .set("fetch.wait.max.ms", "50");
    settings.apply_overrides(&mut config);
    config
        .create()
        .map_err(MessagingError::kafka("creating a replay reader"))
}

fn plan_blocking(
    settings: &KafkaSettings,
    request: &Request,
) -> Result<Vec<Range>, MessagingError> {
    let consumer = reader(settings, &request.group)?;
    let mut watermarks = Vec::new();
    let mut list = TopicPartitionList::new();
    for topic in &request.topics {
        let count = crate::admin::partition_count(&consumer, topic, TIMEOUT)?;
        if count == 0 {
            return Err(MessagingError::Kafka {
                context: format!("planning a replay of {topic}: the broker has no such topic"),
                source: rdkafka::error::KafkaError::MetadataFetch(
                    rdkafka::types::RDKafkaErrorCode::UnknownTopic,
                ),
            });
        }
        for partition in (0..count).filter(|p| request.partition.is_none_or(|only| only == *p)) {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, TIMEOUT)
                .map_err(MessagingError::kafka(format!(
                    "reading the bounds of {topic}/{partition}"
                )))?;
            list.add_partition(topic, partition);
            watermarks.push((topic.clone(), partition, low, high));
        }
    }
    let committed = consumer
        .committed_offsets(list, TIMEOUT)
        .map_err(MessagingError::kafka(format!(
            "reading the committed offsets of {}",
            request.group
        )))?;
    let from_times = match request.start {
        Start::Timestamp(time) => Some(offsets_for_time(&consumer, &watermarks, time)?),
        _ => None,
    };
    let until_times = match request.until {
        Some(time) => Some(offsets_for_time(&consumer, &watermarks, time)?),
        None => None,
    };
    let mut ranges = Vec::new();
    for (i, (topic, partition, low, high)) in watermarks.iter().enumerate() {
        let bounds = Bounds {
            consumer: &consumer,
            topic,
            partition: *partition,
            low: *low,
            high: *high,
        };
        let (from, mut note) = match request.start {
            Start::Beginning => (*low, None),
            Start::Offset(offset) if offset < *low => (
                *low,
                Some(format!(
                    "offset {offset} is no longer held; starting at the first offset held, {low}"
                )),
            ),
            Start::Offset(offset) => (offset.min(*high), None),
            Start::Timestamp(time) => {
                let answer = from_times.as_ref().map_or(*low, |answers| answers[i]);
                bounds.check_start(answer, time)?
            }
        };
        let to = match (request.until, &until_times) {
            (Some(time), Some(answers)) => {
                let (to, until_note) = bounds.check_until(answers[i], time)?;
                if until_note.is_some() {
                    note = join(note, until_note);
                }
                to.max(from)
            }
            _ => *high,
        };
        let committed = match committed
            .find_partition(topic, *partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        };
        ranges.push(Range {
            topic: topic.clone(),
            partition: *partition,
            from,
            to,
            committed,
            note,
            first_at: None,
        });
    }
    first_times(&consumer, &mut ranges)?;
    Ok(ranges)
}

/// Fills in when the broker took each range's first event: every range
/// read at once, one message each.
fn first_times(consumer: &BaseConsumer, ranges: &mut [Range]) -> Result<(), MessagingError> {
    let held: Vec<usize> = (0..ranges.len())
        .filter(|i| !ranges[*i].is_empty())
        .collect();
    let positions: Vec<(&str, i32, i64)> = held
        .iter()
        .map(|i| {
            (
                ranges[*i].topic.as_str(),
                ranges[*i].partition,
                ranges[*i].from,
            )
        })
        .collect();
    let times = timestamps_at(consumer, &positions)?;
    for (i, time) in held.into_iter().zip(times) {
        ranges[i].first_at = time;
    }
    Ok(())
}

/// The timestamp of the first message at or after each position (topic,
/// partition, offset; one position a partition), all read at once.
fn timestamps_at(
    consumer: &BaseConsumer,
    positions: &[(&str, i32, i64)],
) -> Result<Vec<Option<DateTime<Utc>>>, MessagingError> {
    let mut times = vec![None; positions.len()];
    if positions.is_empty() {
        return Ok(times);
    }
    let mut list = TopicPartitionList::new();
    for (topic, partition, offset) in positions {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(MessagingError::kafka("building an assignment"))?;
    }
    consumer
        .assign(&list)
        .map_err(MessagingError::kafka("assigning the positions to read"))?;
    let mut seen = vec![false; positions.len()];
    let mut missing = positions.len();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while missing > 0 {
        if std::time::Instant::now() >= deadline {
            let (topic, partition, offset) = positions[seen.iter().position(|s| !s).unwrap_or(0)];
            return Err(MessagingError::Kafka {
                context: format!(
                    "reading {topic}/{partition} at {offset}: the broker sent nothing \
                     ({missing} of {} positions unread)",
                    positions.len()
                ),
                source: rdkafka::error::KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                ),
            });
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.map_err(MessagingError::kafka("reading a replay range's bounds"))?;
        let Some(i) = positions.iter().position(|(topic, partition, offset)| {
            *topic == message.topic()
                && *partition == message.partition()
                && message.offset() >= *offset
        }) else {
            continue;
        };
        if seen[i] {
            continue;
        }
        seen[i] = true;
        missing -= 1;
        times[i] = message
            .timestamp()
            .to_millis()
            .and_then(DateTime::from_timestamp_millis);
        // The partitions read are not paused: the same consumer assigns
        // them again for the next check, and a pause would outlive that.
    }
    Ok(times)
}

fn join(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

/// The broker's answer to "the first offset at or after `time`", per
/// partition in `watermarks` order; the partition's end when it holds
/// nothing that late.
fn offsets_for_time(
    consumer: &BaseConsumer,
    watermarks: &[(String, i32, i64, i64)],
    time: DateTime<Utc>,
) -> Result<Vec<i64>, MessagingError> {
    let mut list = TopicPartitionList::new();
    for (topic, partition, _, _) in watermarks {
        list.add_partition_offset(topic, *partition, Offset::Offset(time.timestamp_millis()))
            .map_err(MessagingError::kafka("building a timestamp lookup"))?;
    }
    let answers = consumer
        .offsets_for_times(list, TIMEOUT)
        .map_err(MessagingError::kafka(format!(
            "looking up offsets for {time}"
        )))?;
    Ok(watermarks
        .iter()
        .map(|(topic, partition, _, high)| {
            match answers
                .find_partition(topic, *partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => o,
                // No message at or after the time.
                _ => *high,
            }
        })
        .collect())
}

/// One partition, for checking the broker's answers against its messages.
struct Bounds<'a> {
    consumer: &'a BaseConsumer,
    topic: &'a str,
    partition: i32,
    low: i64,
    high: i64,
}

impl Bounds<'_> {
    /// `answer` as a safe start for "from `time`": no message before it may
    /// be at or after `time`. A wrong answer falls back to the partition's
    /// first offset.
    fn check_start(
        &self,
        answer: i64,
        time: DateTime<Utc>,
    ) -> Result<(i64, Option<String>), MessagingError> {
        let (low, high) = (self.low, self.high);
        if answer < low || answer > high {
            return Ok((
                low,
                Some(format!(
                    "the broker answered offset {answer} for {time}, outside the {low}..{high} it holds; \
                     re-reading from {low} (re-reading too much is harmless, skipping is not)"
                )),
            ));
        }
        if answer > low {
            let before = self.timestamp_at(answer - 1)?;
            if before.is_none_or(|ts| ts >= time) {
                return Ok((
                    low,
                    Some(format!(
                        "the broker answered offset {answer} for {time}, but the message before it is {}; \
                         re-reading from {low} (re-reading too much is harmless, skipping is not)",
                        describe(before)
                    )),
                ));
            }
            return Ok((answer, None));
        }
        // The partition's first offset: always safe, but it may be more
        // than needed; say so when it is.
        if answer < high {
            let first = self.timestamp_at(answer)?;
            if first.is_some_and(|ts| ts < time) {
                return Ok((
                    answer,
                    Some(format!(
                        "the broker answered the first offset, {answer}, for {time}, though that message is {}; \
                         re-reading from there (more than needed, and harmless)",
                        describe(first)
                    )),
                ));
            }
        }
        Ok((answer, None))
    }

    /// `answer` as a safe end for "until `time`": no message from it on may
    /// be before `time`, or the replay would stop short. A wrong answer
    /// falls back to the partition's end.
    fn check_until(
        &self,
        answer: i64,
        time: DateTime<Utc>,
    ) -> Result<(i64, Option<String>), MessagingError> {
        let (low, high) = (self.low, self.high);
        if answer < low || answer > high {
            return Ok((
                high,
                Some(format!(
                    "the broker answered offset {answer} for --until {time}, outside the {low}..{high} it holds; \
                     reading on until a message at or after that time, or the end"
                )),
            ));
        }
        if answer < high {
            let at = self.timestamp_at(answer)?;
            if at.is_none_or(|ts| ts < time) {
                return Ok((
                    high,
                    Some(format!(
                        "the broker answered offset {answer} for --until {time}, but that message is {}; \
                         reading on until a message at or after that time, or the end",
                        describe(at)
                    )),
                ));
            }
        }
        Ok((answer, None))
    }

    /// The timestamp of the message at `offset`.
    fn timestamp_at(&self, offset: i64) -> Result<Option<DateTime<Utc>>, MessagingError> {
        let mut at = timestamps_at(self.consumer, &[(self.topic, self.partition, offset)])?;
        Ok(at.pop().flatten())
    }
}

fn describe(timestamp: Option<DateTime<Utc>>) -> String {
    timestamp.map_or_else(
        || "without a timestamp".to_owned(),
        |ts| format!("from {}", ts.to_rfc3339()),
    )
}

/// The members of `group` the broker knows as live, by client id and host;
/// empty when none is (the service is stopped).
///
/// # Errors
/// When the broker cannot be reached or cannot describe the group.
pub async fn live_members(
    settings: &KafkaSettings,
    group: &str,
) -> Result<Vec<String>, MessagingError> {
    Ok(crate::admin::group_members(settings, group)
        .await?
        .into_iter()
        .map(|m| match m.host.as_str() {
            "" => m.client_id,
            host => format!("{} ({host})", m.client_id),
        })
        .collect())
}

/// How one partition's replay went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Events read again.
    pub reread: u64,
    /// Applied now: the service had not applied them (or had forgotten).
    pub applied: u64,
    /// Skipped: their ids were in the inbox, applied before.
    pub duplicates: u64,
    /// Records the service does not react to.
    pub ignored: u64,
    /// Events that can never be applied, put on the dead-letter topic
    /// (under the same dead-letter id as the first time, if they were).
    pub dead_lettered: u64,
    /// The next offset to read.
    pub position: i64,
    pub done: bool,
}

impl Tally {
    fn count(&mut self, processed: Processed) {
        self.reread += 1;
        match processed {
            Processed::Applied => self.applied += 1,
            Processed::Duplicate => self.duplicates += 1,
            Processed::Ignored => self.ignored += 1,
            Processed::DeadLettered => self.dead_lettered += 1,
        }
    }
}

/// A range and how its replay went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    pub phase: Phase,
    pub range: Range,
    pub tally: Tally,
}

impl Replayed {
    /// Whether `message` is from this range's partition.
    fn is_of(&self, message: &OwnedMessage) -> bool {
        self.range.topic == message.topic() && self.range.partition == message.partition()
    }

    /// Moves the position past `offset`; the range is done once its last
    /// offset is read. Returns whether it is done.
    fn read_through(&mut self, offset: i64) -> bool {
        self.tally.position = offset + 1;
        if self.tally.position >= self.range.to {
            self.tally.done = true;
        }
        self.tally.done
    }
}

/// A replay's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub partitions: Vec<Replayed>,
    /// Stopped before every range was read; what was read is applied and
    /// its offsets committed, so running the same replay again finishes it.
    pub interrupted: bool,
}

/// What the service plugs into a replay: the same parts its consumer has.
pub struct Service<H> {
    pub name: String,
    pub pool: PgPool,
    pub registry: RegistryClient,
    pub handler: H,
}

/// Re-reads `ranges` through the service's handler, calling `progress` after
/// each event: for [`Phase::Inputs`] each partition in offset order, then
/// `group`'s committed offsets move forward to where each range ended
/// (never back); for [`Phase::Own`] all of them in the order the service
/// committed them, moving no offset. `stop` interrupts between events.
///
/// # Errors
/// When the broker cannot be reached, or stops sending events while some
/// remain; the offsets of what was applied are still committed.
#[allow(clippy::too_many_arguments)]
pub async fn run<H: Handler>(
    settings: &KafkaSettings,
    group: &str,
    service: Service<H>,
    phase: Phase,
    ranges: Vec<Range>,
    until: Option<DateTime<Utc>>,
    mut progress: impl FnMut(&[Replayed]) + Send,
    stop: &CancellationToken,
) -> Result<Summary, MessagingError> {
    let processor = Processor {
        service: service.name.clone(),
        group: group.to_owned(),
        pool: service.pool,
        decoder: Decoder::new(service.registry),
        topics: settings.topics(),
        handler: service.handler,
        dead_letters: DeadLetters::new(settings, &service.name)?,
        health: Health::default(),
        // A replay mostly re-reads events applied before.
        inbox_first: true,
    };
    crate::admin::ensure_topics(
        settings,
        std::slice::from_ref(&processor.dead_letters.topic),
    )
    .await?;
    let consumer = stream_reader(settings, group)?;
    let mut partitions = assigned(&consumer, phase, ranges)?;
    progress(&partitions);
    let mut interrupted = false;
    let mut failure = None;
    if partitions.iter().any(|p| !p.tally.done) {
        let mut reading = Reading {
            consumer: &consumer,
            until,
            stop,
            limit: batch_limit::<H>(),
        };
        match phase {
            Phase::Inputs => {
                while partitions.iter().any(|p| !p.tally.done) {
                    let batches = match reading.batches(&mut partitions).await {
                        Ok(Some(batches)) => batches,
                        Ok(None) => {
                            interrupted = true;
                            break;
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    };
                    for batch in batches {
                        if apply_batch(&processor, &batch, &mut partitions, stop)
                            .await
                            .is_err()
                        {
                            interrupted = true;
                            break;
                        }
                        progress(&partitions);
                    }
                    if interrupted {
                        break;
                    }
                }
            }
            Phase::Own => {
                let mut all = Vec::new();
                while partitions.iter().any(|p| !p.tally.done) {
                    match reading.next(&mut partitions).await {
                        Ok(Some(m)) => {
                            if let Some(entry) = partitions.iter_mut().find(|p| p.is_of(&m)) {
                                if entry.read_through(m.offset()) {
                                    pause(&consumer, &entry.range);
                                }
                            }
                            all.push(m);
                        }
                        Ok(None) => {
                            interrupted = true;
                            break;
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                // Everything is read; now it is applied, and a partition
                // is done once its last event is.
                for p in &mut partitions {
                    p.tally.done = p.range.is_empty();
                }
                if !interrupted && failure.is_none() {
                    all.sort_by_key(commit_order);
                    // In commit order, a batch at a time: the order is
                    // what matters here, not the partition.
                    for batch in all.chunks(batch_limit::<H>()) {
                        if apply_batch(&processor, batch, &mut partitions, stop)
                            .await
                            .is_err()
                        {
                            interrupted = true;
                            break;
                        }
                        progress(&partitions);
                    }
                    for p in &mut partitions {
                        p.tally.done = !interrupted;
                    }
                    progress(&partitions);
                }
            }
        }
    }
    if phase == Phase::Inputs {
        commit_forward(&consumer, group, &partitions)?;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(Summary {
            partitions,
            interrupted,
        }),
    }
}

/// Each range with its tally at the start, `consumer` assigned to every
/// one that holds events.
fn assigned(
    consumer: &StreamConsumer,
    phase: Phase,
    ranges: Vec<Range>,
) -> Result<Vec<Replayed>, MessagingError> {
    let partitions: Vec<Replayed> = ranges
        .into_iter()
        .map(|range| Replayed {
            phase,
            tally: Tally {
                position: range.from,
                done: range.is_empty(),
                ..Tally::default()
            },
            range,
        })
        .collect();
    let mut assignment = TopicPartitionList::new();
    for p in partitions.iter().filter(|p| !p.tally.done) {
        assignment
            .add_partition_offset(
                &p.range.topic,
                p.range.partition,
                Offset::Offset(p.range.from),
            )
            .map_err(MessagingError::kafka("building an assignment"))?;
    }
    if assignment.count() > 0 {
        consumer
            .assign(&assignment)
            .map_err(MessagingError::kafka("assigning the replayed partitions"))?;
    }
    Ok(partitions)
}

/// Applies `batch`, consecutive messages in the order they are to be
/// applied, in one transaction where it can (see
/// `Processor::process_batch`), and counts each in its partition's tally.
async fn apply_batch<H: Handler>(
    processor: &Processor<H>,
    batch: &[OwnedMessage],
    partitions: &mut [Replayed],
    stop: &CancellationToken,
) -> Result<(), Abandoned> {
    let Some(first) = batch.first() else {
        return Ok(());
    };
    let component = format!("replay {}/{}", first.topic(), first.partition());
    let processed = processor.process_batch(batch, &component, stop).await?;
    for (message, processed) in batch.iter().zip(processed) {
        if let Some(entry) = partitions.iter_mut().find(|p| p.is_of(message)) {
            entry.tally.count(processed);
            entry.read_through(message.offset());
        }
    }
    Ok(())
}

/// The most events a replay applies in one transaction. Each event that
/// writes has a savepoint, a subtransaction with an id of its own, and
/// PostgreSQL keeps only 64 of those per transaction in shared memory
/// (`PGPROC_MAX_CACHED_SUBXIDS`); past that every snapshot looks them up in
/// `pg_subtrans`, which slows the whole server down. Batches stay under
/// it; a larger one would save little more (a commit per 60 events).
const BATCH: usize = 60;

/// [`BATCH`] for a handler that [batches](Handler::BATCHES): it takes no
/// savepoints, and its few statements per batch are shared by more events.
const WHOLE_BATCH: usize = 240;

/// The most events a replay gives `H` in one transaction.
const fn batch_limit<H: Handler>() -> usize {
    if H::BATCHES { WHOLE_BATCH } else { BATCH }
}

/// The service's commit order: the outbox id its relay put in the header;
/// the broker's timestamp where there is none (events published before the
/// header existed), then the position.
fn commit_order(message: &OwnedMessage) -> (i64, i64, i32, i64) {
    let outbox_id = header_text(message, OUTBOX_ID_HEADER).and_then(|v| v.parse::<i64>().ok());
    let timestamp = message.timestamp().to_millis().unwrap_or(0);
    (
        outbox_id.unwrap_or(i64::MAX),
        timestamp,
        message.partition(),
        message.offset(),
    )
}

/// Reads the assigned partitions, each up to the end of its range.
struct Reading<'a> {
    consumer: &'a StreamConsumer,
    until: Option<DateTime<Utc>>,
    stop: &'a CancellationToken,
    /// The most messages in one call of [`Self::batches`].
    limit: usize,
}

impl Reading<'_> {
    /// The next message inside its range; `None` when stopped. Partitions
    /// whose range is read are paused and marked done.
    async fn next(
        &mut self,
        partitions: &mut [Replayed],
    ) -> Result<Option<OwnedMessage>, MessagingError> {
        loop {
            let Some(message) = self.recv().await? else {
                return Ok(None);
            };
            if self.inside(&message, partitions) {
                return Ok(Some(message));
            }
        }
    }

    /// Whether `message` is inside its partition's range, which is not
    /// read through yet. The first message past a range's end marks it
    /// done and pauses its partition.
    fn inside(&self, message: &OwnedMessage, partitions: &mut [Replayed]) -> bool {
        let Some(entry) = partitions.iter_mut().find(|p| p.is_of(message)) else {
            return false;
        };
        if entry.tally.done {
            return false;
        }
        if past_end(message, &entry.range, self.until) {
            entry.tally.done = true;
            pause(self.consumer, &entry.range);
            return false;
        }
        true
    }

    /// The next messages inside their ranges, as batches of consecutive
    /// messages of one partition: the first message waited for, then
    /// whatever the client already holds, up to `limit` in all. `None`
    /// when stopped.
    async fn batches(
        &mut self,
        partitions: &mut [Replayed],
    ) -> Result<Option<Vec<Vec<OwnedMessage>>>, MessagingError> {
        let Some(first) = self.next(partitions).await? else {
            return Ok(None);
        };
        let mut batches: Vec<Vec<OwnedMessage>> = vec![vec![first]];
        let mut count = 1;
        while count < self.limit {
            // Only what is already fetched: a batch never waits for more.
            let Some(message) = self.ready() else {
                break;
            };
            if !self.inside(&message, partitions) {
                continue;
            }
            count += 1;
            match batches.iter_mut().find(|b| {
                b.first().is_some_and(|m| {
                    m.topic() == message.topic() && m.partition() == message.partition()
                })
            }) {
                Some(batch) => batch.push(message),
                None => batches.push(vec![message]),
            }
        }
        Ok(Some(batches))
    }

    /// A message the client has fetched already, without waiting. An error
    /// met here is dropped, as [`Self::recv`] drops it after its warning:
    /// librdkafka's errors on a read are notices, not messages, and one
    /// that persists is met by the next wait.
    fn ready(&self) -> Option<OwnedMessage> {
        use futures::FutureExt;
        match self.consumer.recv().now_or_never() {
            Some(Ok(m)) => Some(m.detach()),
            _ => None,
        }
    }

    async fn recv(&mut self) -> Result<Option<OwnedMessage>, MessagingError> {
        loop {
            let message = tokio::select! {
                biased;
                _ = self.stop.cancelled() => return Ok(None),
                m = tokio::time::timeout(IDLE, self.consumer.recv()) => m,
            };
            match message {
                Ok(Ok(m)) => return Ok(Some(m.detach())),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "replay: reading failed; retrying");
                }
                Err(_) => {
                    return Err(MessagingError::Kafka {
                        context: format!(
                            "replaying: the broker sent nothing for {} s while events remained",
                            IDLE.as_secs()
                        ),
                        source: rdkafka::error::KafkaError::MessageConsumption(
                            rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                        ),
                    });
                }
            }
        }
    }
}

/// How long the broker may send nothing while events remain.
const IDLE: Duration = Duration::from_secs(30);

fn stream_reader(settings: &KafkaSettings, group: &str) -> Result<StreamConsumer, MessagingError> {
    let mut config = settings.client_config();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "50");
    settings.apply_overrides(&mut config);
    config
        .create()
        .map_err(MessagingError::kafka("creating a replay reader"))
}

fn past_end(message: &OwnedMessage, range: &Range, until: Option<DateTime<Utc>>) -> bool {
    if message.offset() >= range.to {
        return true;
    }
    let at = message
        .timestamp()
        .to_millis()
        .and_then(DateTime::from_timestamp_millis);
    matches!((until, at), (Some(until), Some(at)) if at >= until)
}

fn pause(consumer: &StreamConsumer, range: &Range) {
    let mut list = TopicPartitionList::new();
    list.add_partition(&range.topic, range.partition);
    if let Err(e) = consumer.pause(&list) {
        tracing::debug!(error = %e, topic = %range.topic, partition = range.partition, "pausing a replayed partition");
    }
}

/// Commits, for each partition, where the replay got to when that is past
/// the group's committed offset: the service then resumes after the
/// replayed events, not before them (they would be skipped anyway), and
/// never goes back to events it had left behind.
fn commit_forward(
    consumer: &StreamConsumer,
    group: &str,
    partitions: &[Replayed],
) -> Result<(), MessagingError> {
    let mut list = TopicPartitionList::new();
    for p in partitions {
        let position = p.tally.position;
        if p.range.committed.is_none_or(|c| position > c) && position > p.range.from {
            list.add_partition_offset(&p.range.topic, p.range.partition, Offset::Offset(position))
                .map_err(MessagingError::kafka("building the offsets to commit"))?;
        }
    }
    if list.count() == 0 {
        return Ok(());
    }
    consumer
        .commit(&list, CommitMode::Sync)
        .map_err(MessagingError::kafka(format!(
            "committing the replay's offsets for {group} (has the service started meanwhile?)"
        )))
}

/// Reads ranges outside any group and decodes each event, for a tool that
/// rebuilds a read model from the topics: nothing goes through the inbox,
/// nothing is committed, no offset moves. Each range's tally counts the
/// records read (`reread`), and among them those that are no events
/// (`ignored`: undecodable bytes, which the service's consumer
/// dead-lettered).
pub struct Scan {
    consumer: StreamConsumer,
    decoder: Decoder,
    topics: choreo_events::Topics,
    partitions: Vec<Replayed>,
}

impl Scan {
    /// Starts reading `ranges` (as `phase`, which only labels them).
    ///
    /// # Errors
    /// When the reader cannot be created or assigned.
    pub fn open(
        settings: &KafkaSettings,
        group: &str,
        registry: RegistryClient,
        phase: Phase,
        ranges: Vec<Range>,
    ) -> Result<Self, MessagingError> {
        let consumer = stream_reader(settings, group)?;
        let partitions = assigned(&consumer, phase, ranges)?;
        Ok(Self {
            consumer,
            decoder: Decoder::new(registry),
            topics: settings.topics(),
            partitions,
        })
    }

    /// The next event, decoded; `None` once every range is read, or when
    /// `stop`ped (then [`Scan::finished`] says `false`).
    ///
    /// # Errors
    /// When the broker stops sending while events remain, or the schema
    /// registry cannot be reached.
    pub async fn next(
        &mut self,
        stop: &CancellationToken,
    ) -> Result<Option<crate::Delivery>, MessagingError> {
        while !self.finished() {
            let mut reading = Reading {
                consumer: &self.consumer,
                until: None,
                stop,
                // One message at a time here.
                limit: 1,
            };
            let Some(message) = reading.next(&mut self.partitions).await? else {
                return Ok(None);
            };
            let Some(entry) = self.partitions.iter_mut().find(|p| p.is_of(&message)) else {
                continue;
            };
            entry.tally.reread += 1;
            if entry.read_through(message.offset()) {
                pause(&self.consumer, &entry.range);
            }
            let decoded = match message.payload() {
                Some(payload) => match self.decoder.decode(payload).await {
                    Ok(decoded) => Some(decoded),
                    Err(choreo_events::CodecError::Registry(e)) if e.is_transient() => {
                        return Err(MessagingError::Registry(e));
                    }
                    Err(_) => None,
                },
                None => None,
            };
            let (Some(decoded), Some(topic)) = (decoded, self.topics.parse(message.topic())) else {
                entry.tally.ignored += 1;
                continue;
            };
            return Ok(Some(crate::Delivery {
                topic,
                partition: message.partition(),
                offset: message.offset(),
                message: decoded,
            }));
        }
        Ok(None)
    }

    /// Whether every range is read.
    pub fn finished(&self) -> bool {
        self.partitions.iter().all(|p| p.tally.done)
    }

    /// The ranges and how far each is read.
    pub fn partitions(&self) -> &[Replayed] {
        &self.partitions
    }
}
