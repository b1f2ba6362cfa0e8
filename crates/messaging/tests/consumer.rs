//! Black-box tests of the consumer on a real broker, registry and database:
//! poison messages go to the dead-letter topic and the partition moves on;
//! redriven letters are applied once; partitions progress independently,
//! each in order, and a slow one is paused; transient failures are retried
//! in place; events queued behind each other are applied in shared
//! transactions, each still once, in order, and an ignored one leaves no
//! trace.

mod support;

use anyhow::Context;
use choreo_events::{Input, OrderEvent, Topic, encode_datum, frame};
use choreo_messaging::{
    Consumer, ConsumerSettings, Delivery, Handler, HandlerError, Health, Outcome, dead_letter,
};
use choreo_testkit::{RawProducer, TestDatabase, framed, wait_until};
use sqlx::{PgConnection, PgPool};
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use support::{DEADLINE, Env, numbered_event, seq_of, service_database};
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Records each applied event in `applied`, in the order applied. Rejects a
/// negative sequence as invalid unless `accept_negative` (the fix being
/// deployed); holds events of `slow_order` until `open`; fails every event
/// with a transient error while `database_down`; does not react to the
/// sequence `ignored`.
#[derive(Clone)]
struct Recorder {
    accept_negative: Arc<AtomicBool>,
    database_down: Arc<AtomicBool>,
    slow_order: Uuid,
    open: watch::Receiver<bool>,
    ignored: Option<i32>,
    /// A bug: the handler panics on this sequence.
    panics_on: Option<i32>,
}

impl Recorder {
    fn new() -> (Self, watch::Sender<bool>) {
        let (gate, open) = watch::channel(true);
        (
            Self {
                accept_negative: Arc::default(),
                database_down: Arc::default(),
                slow_order: Uuid::nil(),
                open,
                ignored: None,
                panics_on: None,
            },
            gate,
        )
    }
}

impl Handler for Recorder {
    type Input = OrderEvent;

    async fn handle(
        &self,
        tx: &mut PgConnection,
        _: &Delivery,
        event: OrderEvent,
    ) -> Result<Outcome, HandlerError> {
        let OrderEvent::Placed(event) = event else {
            return Err(HandlerError::Permanent {
                reason: format!("{} is not an OrderPlaced", event.record()),
            });
        };
        let seq = seq_of(&event).unwrap_or_default();
        if seq < 0 && !self.accept_negative.load(Ordering::SeqCst) {
            return Err(HandlerError::Permanent {
                reason: format!("sequence {seq} is negative"),
            });
        }
        if self.database_down.load(Ordering::SeqCst) {
            return Err(HandlerError::Transient("the database is down".into()));
        }
        if event.order_id == self.slow_order {
            let mut open = self.open.clone();
            let _ = open.wait_for(|open| *open).await;
        }
        assert_ne!(self.panics_on, Some(seq), "a bug in the handler");
        if self.ignored == Some(seq) {
            return Ok(Outcome::Ignored);
        }
        sqlx::query("INSERT INTO applied (event_id, order_id, seq) VALUES ($1, $2, $3)")
            .bind(event.meta.event_id)
            .bind(event.order_id)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        Ok(Outcome::Applied)
    }
}

/// A consumer of the order topic running as `service`, on a database of its
/// own.
struct Running {
    db: TestDatabase,
    pool: PgPool,
    health: Health,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    async fn start(
        env: &Env,
        service: &str,
        settings: ConsumerSettings,
        handler: Recorder,
    ) -> anyhow::Result<Self> {
        let (db, pool) = service_database(service).await?;
        sqlx::query(
            // `xid`: which transaction applied the event.
            "CREATE TABLE applied (n BIGSERIAL PRIMARY KEY, event_id UUID NOT NULL, order_id UUID NOT NULL, seq INT NOT NULL,
                                   xid BIGINT NOT NULL DEFAULT txid_current())",
        )
        .execute(&pool)
        .await?;
        let health = Health::default();
        let consumer = Consumer::new(
            &env.kafka,
            &settings,
            service,
            &[Topic::Order],
            pool.clone(),
            env.registry(),
            handler,
            health.clone(),
        )?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(consumer.run(stop.clone()));
        Ok(Self {
            db,
            pool,
            health,
            stop,
            task,
        })
    }

    /// The sequence numbers applied for `order`, in the order applied.
    async fn applied(&self, order: Uuid) -> anyhow::Result<Vec<i32>> {
        Ok(
            sqlx::query_scalar("SELECT seq FROM applied WHERE order_id = $1 ORDER BY n")
                .bind(order)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn wait_applied(&self, order: Uuid, expected: &[i32]) -> anyhow::Result<()> {
        wait_until(
            &format!("{expected:?} applied for order {order}"),
            DEADLINE,
            || async {
                let seqs = self.applied(order).await.ok()?;
                (seqs.len() >= expected.len()).then_some(())
            },
        )
        .await?;
        assert_eq!(self.applied(order).await?, expected);
        Ok(())
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await?;
        self.pool.close().await;
        self.db.drop_db().await
    }
}

async fn wait_letters(
    env: &Env,
    service: &str,
    count: usize,
) -> anyhow::Result<Vec<dead_letter::DeadLetter>> {
    wait_until(
        &format!("{count} dead letters for {service}"),
        DEADLINE,
        || async {
            let letters = dead_letter::list(&env.kafka, service).await.ok()?;
            (letters.len() >= count).then_some(letters)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_redriven_once_after_the_fix() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let topic = env.kafka.topics().name(Topic::Order);
    let (inventory_handler, _) = Recorder::new();
    let inventory = Running::start(
        &env,
        "inventory",
        ConsumerSettings::default(),
        inventory_handler.clone(),
    )
    .await?;
    // A second service reading the same topic: it must process redriven
    // letters only when they are addressed to it.
    let (shipping_handler, _) = Recorder::new();
    shipping_handler
        .accept_negative
        .store(true, Ordering::SeqCst);
    let shipping = Running::start(
        &env,
        "shipping",
        ConsumerSettings::default(),
        shipping_handler,
    )
    .await?;

    let order = Uuid::new_v4();
    let key = order.to_string();
    let producer = RawProducer::new(&env.kafka.bootstrap_servers)?;
    let trace = (
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    );
    let garbage = b"this is not Avro".to_vec();
    let unknown_schema = frame(999_999, &encode_datum(&numbered_event(order, 100))?);
    let rejected = framed(
        &env.kafka.topics(),
        &env.registry(),
        &numbered_event(order, -1),
    )
    .await?;
    let valid = framed(
        &env.kafka.topics(),
        &env.registry(),
        &numbered_event(order, 1),
    )
    .await?;
    for value in [&garbage, &unknown_schema, &rejected, &valid] {
        producer
            .send(&topic, Some(0), &key, value, &[trace])
            .await?;
    }

    // The valid event after the three poison ones is applied.
    inventory.wait_applied(order, &[1]).await?;
    let letters = wait_letters(&env, "inventory", 3).await?;
    assert_eq!(letters.len(), 3, "{letters:#?}");
    for (offset, (letter, value)) in letters
        .iter()
        .zip([&garbage, &unknown_schema, &rejected])
        .enumerate()
    {
        assert_eq!(letter.service, "inventory");
        assert_eq!(letter.source_topic, topic);
        assert_eq!(letter.source_partition, 0);
        assert_eq!(letter.source_offset, offset as i64);
        assert_eq!(letter.key.as_deref(), Some(key.as_str()));
        assert_eq!(letter.value(), Some(value.as_slice()));
        assert!(letter.failed_at.is_some());
        assert!(letter.redriven_at.is_none());
        assert!(
            letter
                .headers
                .contains(&(trace.0.to_owned(), Some(trace.1.to_owned()))),
            "original headers kept: {:?}",
            letter.headers
        );
    }
    assert!(letters[1].error.contains("999999"), "{}", letters[1].error);
    assert!(
        letters[2].error.contains("sequence -1 is negative"),
        "{}",
        letters[2].error
    );
    assert!(inventory.health.snapshot().stalled.is_empty());

    // The fix is deployed; the rejected event is redriven, twice by mistake.
    inventory_handler
        .accept_negative
        .store(true, Ordering::SeqCst);
    let rejected_letter = letters[2].clone();
    dead_letter::redrive(&env.kafka, std::slice::from_ref(&rejected_letter)).await?;
    dead_letter::redrive(&env.kafka, std::slice::from_ref(&rejected_letter)).await?;
    // The garbage is redriven too: it fails again and comes back as a new
    // dead letter, while the shipping service, which it is not for, skips it.
    dead_letter::redrive(&env.kafka, std::slice::from_ref(&letters[0])).await?;
    let sentinel = numbered_event(order, 2);
    producer
        .send(
            &topic,
            Some(0),
            &key,
            &framed(&env.kafka.topics(), &env.registry(), &sentinel).await?,
            &[],
        )
        .await?;

    inventory.wait_applied(order, &[1, -1, 2]).await?;
    let letters = wait_letters(&env, "inventory", 4).await?;
    let redriven: Vec<_> = letters.iter().filter(|l| l.redriven_at.is_some()).collect();
    assert_eq!(redriven.len(), 2, "{letters:#?}");
    let again = letters.last().context("a fourth letter")?;
    assert_eq!(again.value(), Some(garbage.as_slice()));
    assert!(again.redriven_at.is_none());

    // Shipping applied everything valid once, and dead-lettered only what
    // it met on its own: the garbage and the unknown schema.
    shipping.wait_applied(order, &[-1, 1, 2]).await?;
    assert_eq!(dead_letter::list(&env.kafka, "shipping").await?.len(), 2);

    inventory.stop().await?;
    shipping.stop().await?;
    env.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_and_values_claiming_too_much_memory_are_dead_lettered_unread()
-> anyhow::Result<()> {
    let env = Env::start().await?;
    let topic = env.kafka.topics().name(Topic::Order);
    let (handler, _) = Recorder::new();
    let settings = ConsumerSettings {
        max_message_bytes: 4096,
        ..ConsumerSettings::default()
    };
    let inventory = Running::start(&env, "inventory", settings, handler).await?;
    let order = Uuid::new_v4();
    let producer = RawProducer::new(&env.kafka.bootstrap_servers)?;

    // A well-formed event, but larger than the consumer takes.
    let mut large = numbered_event(order, 7);
    large.shipping_address.line1 = "x".repeat(8 * 1024);
    let large = framed(&env.kafka.topics(), &env.registry(), &large).await?;
    // A real schema id, then a datum whose first string says it is 4 GiB
    // long (zigzag varint 2^33): decoded blindly, it would be allocated.
    let valid = framed(
        &env.kafka.topics(),
        &env.registry(),
        &numbered_event(order, 1),
    )
    .await?;
    let mut greedy = valid[..5].to_vec();
    greedy.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x40]);
    for value in [&large, &greedy, &valid] {
        producer
            .send(&topic, Some(0), &order.to_string(), value, &[])
            .await?;
    }

    // Both are dead-lettered, saying why, and the partition goes on.
    inventory.wait_applied(order, &[1]).await?;
    let letters = wait_letters(&env, "inventory", 2).await?;
    assert_eq!(letters.len(), 2, "{letters:#?}");
    assert!(
        letters[0]
            .error
            .contains("the most this consumer decodes is 4096"),
        "{}",
        letters[0].error
    );
    assert_eq!(letters[0].value(), Some(large.as_slice()));
    assert!(
        letters[1].error.contains("Unable to allocate"),
        "{}",
        letters[1].error
    );
    assert!(inventory.health.snapshot().stalled.is_empty());
    inventory.stop().await?;
    env.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panics_stops_the_consumer_for_a_restart_and_names_its_partition()
-> anyhow::Result<()> {
    let env = Env::start().await?;
    let topic = env.kafka.topics().name(Topic::Order);
    let (mut handler, _) = Recorder::new();
    handler.panics_on = Some(2);
    let inventory = Running::start(&env, "inventory", ConsumerSettings::default(), handler).await?;
    let order = Uuid::new_v4();
    let producer = RawProducer::new(&env.kafka.bootstrap_servers)?;
    for seq in [1, 2, 3] {
        let value = framed(
            &env.kafka.topics(),
            &env.registry(),
            &numbered_event(order, seq),
        )
        .await?;
        producer
            .send(&topic, Some(0), &order.to_string(), &value, &[])
            .await?;
    }
    // Not a partition that silently stops while the rest goes on: the
    // consumer ends, which ends the service (its supervisor restarts it,
    // and the event is delivered again), and readiness says where.
    wait_until("the consumer to stop", DEADLINE, || async {
        inventory.task.is_finished().then_some(())
    })
    .await?;
    let stalled = inventory.health.snapshot().stalled;
    let reason = stalled
        .get(&format!("{topic}/0"))
        .cloned()
        .unwrap_or_default();
    assert!(
        reason.contains("panicked") && reason.contains("a bug in the handler"),
        "{stalled:?}"
    );
    assert_eq!(inventory.applied(order).await?, vec![1]);
    assert!(dead_letter::list(&env.kafka, "inventory").await?.is_empty());
    inventory.stop().await?;
    env.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_progress_independently_in_order_and_a_slow_one_is_paused() -> anyhow::Result<()>
{
    let env = Env::start().await?;
    let topic = env.kafka.topics().name(Topic::Order);
    let slow = Uuid::new_v4();
    let fast = Uuid::new_v4();
    let (mut handler, gate) = Recorder::new();
    handler.slow_order = slow;
    gate.send(false)?;
    let consumer = Running::start(
        &env,
        "inventory",
        ConsumerSettings {
            partition_queue: 4,
            ..Default::default()
        },
        handler,
    )
    .await?;

    let producer = RawProducer::new(&env.kafka.bootstrap_servers)?;
    const SLOW_EVENTS: i32 = 40;
    const FAST_EVENTS: i32 = 10;
    for seq in 0..SLOW_EVENTS {
        let value = framed(
            &env.kafka.topics(),
            &env.registry(),
            &numbered_event(slow, seq),
        )
        .await?;
        producer
            .send(&topic, Some(0), &slow.to_string(), &value, &[])
            .await?;
    }
    for seq in 0..FAST_EVENTS {
        let value = framed(
            &env.kafka.topics(),
            &env.registry(),
            &numbered_event(fast, seq),
        )
        .await?;
        producer
            .send(&topic, Some(1), &fast.to_string(), &value, &[])
            .await?;
    }

    // Partition 1 is done while partition 0's handler is held up...
    let fast_expected: Vec<i32> = (0..FAST_EVENTS).collect();
    consumer.wait_applied(fast, &fast_expected).await?;
    assert!(consumer.applied(slow).await?.is_empty());
    // ...and partition 0 is paused rather than fetched into memory.
    let slow_partition = format!("{topic}/0");
    wait_until("partition 0 to be paused", DEADLINE, || async {
        let paused = consumer.health.snapshot().paused_partitions;
        paused.contains(&slow_partition).then_some(())
    })
    .await?;

    gate.send(true)?;
    let slow_expected: Vec<i32> = (0..SLOW_EVENTS).collect();
    consumer.wait_applied(slow, &slow_expected).await?;
    wait_until("partition 0 to be resumed", DEADLINE, || async {
        consumer
            .health
            .snapshot()
            .paused_partitions
            .is_empty()
            .then_some(())
    })
    .await?;

    consumer.stop().await?;
    env.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_in_place_without_skipping() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let topic = env.kafka.topics().name(Topic::Order);
    let (handler, _) = Recorder::new();
    handler.database_down.store(true, Ordering::SeqCst);
    let consumer = Running::start(
        &env,
        "inventory",
        ConsumerSettings::default(),
        handler.clone(),
    )
    .await?;

    let order = Uuid::new_v4();
    let producer = RawProducer::new(&env.kafka.bootstrap_servers)?;
    for seq in 0..5 {
        let value = framed(
            &env.kafka.topics(),
            &env.registry(),
            &numbered_event(order, seq),
        )
        .await?;
        producer
            .send(&topic, Some(2), &order.to_string(), &value, &[])
            .await?;
    }

    let component = format!("consumer {topic}/2");
    let error = wait_until(
        "the partition to report itself stalled",
        DEADLINE,
        || async { consumer.health.snapshot().stalled.get(&component).cloned() },
    )
    .await?;
    assert!(error.contains("the database is down"), "{error}");
    assert!(
        consumer.applied(order).await?.is_empty(),
        "nothing skipped ahead"
    );

    handler.database_down.store(false, Ordering::SeqCst);
    consumer.wait_applied(order, &[0, 1, 2, 3, 4]).await?;
    wait_until("the stall to clear", DEADLINE, || async {
        consumer.health.snapshot().stalled.is_empty().then_some(())
    })
    .await?;
    assert!(dead_letter::list(&env.kafka, "inventory").await?.is_empty());

    consumer.stop().await?;
    env.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_events_share_transactions_yet_each_is_applied_once_in_order() -> anyhow::Result<()>
{
    const BATCH_MAX: usize = 4;
    const EVENTS: i32 = 16;
    const IGNORED: i32 = 6;
    const DUPLICATED: i32 = 3;
    let env = Env::start().await?;
    let topic = env.kafka.topics().name(Topic::Order);
    let order = Uuid::new_v4();
    let (mut handler, gate) = Recorder::new();
    // Held until every event is fetched, so that they queue up behind the
    // first.
    handler.slow_order = order;
    handler.ignored = Some(IGNORED);
    gate.send(false)?;
    let consumer = Running::start(
        &env,
        "inventory",
        ConsumerSettings {
            partition_queue: 6,
            batch_max: BATCH_MAX,
            ..Default::default()
        },
        handler,
    )
    .await?;

    let producer = RawProducer::new(&env.kafka.bootstrap_servers)?;
    let key = order.to_string();
    let mut ids = Vec::new();
    for seq in 0..EVENTS {
        let event = numbered_event(order, seq);
        ids.push(event.meta.event_id);
        let value = framed(&env.kafka.topics(), &env.registry(), &event).await?;
        let copies = if seq == DUPLICATED { 2 } else { 1 };
        for _ in 0..copies {
            producer.send(&topic, Some(0), &key, &value, &[]).await?;
        }
        if seq == 9 {
            // Invalid: its batch fails, and is applied again event by
            // event, this one to the dead-letter topic.
            let rejected = framed(
                &env.kafka.topics(),
                &env.registry(),
                &numbered_event(order, -9),
            )
            .await?;
            producer.send(&topic, Some(0), &key, &rejected, &[]).await?;
        }
    }
    let partition = format!("{topic}/0");
    wait_until(
        "the partition to be paused, its queue full",
        DEADLINE,
        || async {
            let paused = consumer.health.snapshot().paused_partitions;
            paused.contains(&partition).then_some(())
        },
    )
    .await?;
    gate.send(true)?;

    let expected: Vec<i32> = (0..EVENTS).filter(|seq| *seq != IGNORED).collect();
    consumer.wait_applied(order, &expected).await?;
    let letters = wait_letters(&env, "inventory", 1).await?;
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert!(
        letters[0].error.contains("sequence -9"),
        "{}",
        letters[0].error
    );

    // Fewer commits than events, none over the limit.
    let per_transaction: Vec<i64> =
        sqlx::query_scalar("SELECT count(*) FROM applied GROUP BY xid ORDER BY min(n)")
            .fetch_all(&consumer.pool)
            .await?;
    assert!(
        per_transaction.iter().any(|n| *n > 1),
        "some events shared a transaction: {per_transaction:?}"
    );
    assert!(
        per_transaction.iter().all(|n| *n <= BATCH_MAX as i64),
        "no transaction took more than {BATCH_MAX}: {per_transaction:?}"
    );
    // The inbox holds each applied event once, and not the ignored one.
    let inbox: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM inbox")
        .fetch_all(&consumer.pool)
        .await?;
    let mut expected_ids: Vec<Uuid> = ids
        .iter()
        .enumerate()
        .filter(|(seq, _)| *seq != IGNORED as usize)
        .map(|(_, id)| *id)
        .collect();
    let mut inbox_ids = inbox.clone();
    expected_ids.sort();
    inbox_ids.sort();
    assert_eq!(inbox_ids, expected_ids);
    assert!(consumer.health.snapshot().stalled.is_empty());

    consumer.stop().await?;
    env.stop().await
}
