//! The producer Choreo's processes publish with, and the thread that serves
//! its acknowledgements.
//!
//! Why not rdkafka's `FutureProducer`: it serves acknowledgements from a
//! thread that calls `BaseProducer::poll(100 ms)` in a loop, and that `poll`
//! hands librdkafka the time left before its deadline in whole milliseconds,
//! rounded down, until the deadline has passed. So the last fraction of a
//! millisecond of every call is spent polling without waiting: about 1 % of
//! a core per producer, loaded or idle. With a relay and a dead-letter
//! producer in each of the four saga services, that was 0.07 of the idle
//! platform's 0.09 cores (`perf` put 83 % of an idle order service in that
//! thread, in `clock_gettime`). Here the thread polls a second at a time, so
//! the same fraction costs a thousandth as much. Acknowledgements are not
//! delayed by it: a poll returns each one as it comes.

use rdkafka::{
    ClientConfig, ClientContext,
    error::{KafkaError, KafkaResult, RDKafkaErrorCode},
    message::ToBytes,
    producer::{BaseProducer, BaseRecord, DeliveryResult, FutureRecord, ProducerContext},
    util::Timeout,
};
use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};
use tokio::sync::oneshot;

use crate::{KafkaSettings, MessagingError};

/// How long the acknowledgement thread waits in one poll; also how long it
/// outlives its producer at most.
const POLL: Duration = Duration::from_secs(1);

/// How long a send waits before retrying when librdkafka's queue is full.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(10);

/// The broker's answer to one record: acknowledged, or why not. A producer
/// dropped before the answer came yields [`KafkaError::Canceled`].
pub type Ack = Result<(), KafkaError>;

/// Hands each acknowledgement to the send waiting for it.
struct Acks;

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<oneshot::Sender<Ack>>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiting: Self::DeliveryOpaque) {
        // The send may have stopped waiting (shutdown); nothing to tell then.
        let _ = waiting.send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

/// A producer whose records each get their acknowledgement as a future.
pub struct Producer {
    inner: Arc<BaseProducer<Acks>>,
    stop: Arc<AtomicBool>,
}

impl Producer {
    /// Creates the producer and its acknowledgement thread.
    ///
    /// # Errors
    /// When librdkafka rejects the configuration or the thread cannot start.
    pub fn from_config(config: &ClientConfig) -> KafkaResult<Self> {
        let inner: Arc<BaseProducer<Acks>> = Arc::new(config.create_with_context(Acks)?);
        let stop = Arc::new(AtomicBool::new(false));
        let (producer, stopped) = (Arc::clone(&inner), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("kafka acks".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    producer.poll(POLL);
                }
            })
            .map_err(|e| KafkaError::ClientCreation(format!("acknowledgement thread: {e}")))?;
        Ok(Self { inner, stop })
    }

    /// Hands `record` to librdkafka; the returned future resolves with the
    /// broker's acknowledgement. Records enqueued one after another are
    /// sent, and acknowledged, in that order within a partition.
    ///
    /// # Errors
    /// When librdkafka refuses the record, its queue being full included.
    pub fn enqueue<K, P>(&self, record: FutureRecord<'_, K, P>) -> Result<Acknowledged, KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let (tx, rx) = oneshot::channel();
        self.inner
            .send(with_waiter(record, tx))
            .map_err(|(e, _)| e)?;
        Ok(Acknowledged(rx))
    }

    /// Sends `record` and waits for its acknowledgement, retrying while
    /// librdkafka's queue is full for up to `queue_timeout`.
    ///
    /// # Errors
    /// When the record is refused, or the broker does not take it.
    pub async fn send<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: impl Into<Timeout>,
    ) -> Ack
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let give_up = match queue_timeout.into() {
            Timeout::After(d) => Some(Instant::now() + d),
            Timeout::Never => None,
        };
        let (tx, rx) = oneshot::channel();
        let mut record = with_waiter(record, tx);
        loop {
            match self.inner.send(record) {
                Ok(()) => return Acknowledged(rx).await,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if give_up.is_none_or(|t| Instant::now() < t) =>
                {
                    record = back;
                    tokio::time::sleep(QUEUE_FULL_RETRY).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // The thread ends within one poll and drops the last reference,
        // which purges what is still queued (the outbox keeps those rows).
        self.stop.store(true, Ordering::Relaxed);
    }
}

type Waiter = Box<oneshot::Sender<Ack>>;

fn with_waiter<'a, K, P>(
    record: FutureRecord<'a, K, P>,
    waiter: oneshot::Sender<Ack>,
) -> BaseRecord<'a, K, P, Waiter>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    BaseRecord {
        topic: record.topic,
        partition: record.partition,
        payload: record.payload,
        key: record.key,
        timestamp: record.timestamp,
        headers: record.headers,
        delivery_opaque: Box::new(waiter),
    }
}

/// The broker's acknowledgement of one enqueued record, to come.
pub struct Acknowledged(oneshot::Receiver<Ack>);

impl Future for Acknowledged {
    type Output = Ack;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ack> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(KafkaError::Canceled)))
    }
}

/// Builds the producer every Choreo process publishes with: idempotent, so a
/// retried send cannot duplicate or reorder within a partition, and `acks=all`,
/// so an acknowledged event survives the loss of the partition leader.
///
/// # Errors
/// When librdkafka rejects the configuration.
pub fn idempotent(settings: &KafkaSettings) -> Result<Producer, MessagingError> {
    let mut config = settings.client_config();
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        // Never give up on a message: a timed-out message followed by later
        // ones that succeed would put one key's events out of order when the
        // relay publishes the timed-out row again. While the broker is away
        // the relay simply waits; shutdown interrupts the wait, and the
        // unmarked rows go out again after the restart.
        .set("message.timeout.ms", "0");
    settings.apply_overrides(&mut config);
    Producer::from_config(&config).map_err(MessagingError::kafka("creating producer"))
}
