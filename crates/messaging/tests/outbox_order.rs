//! Black-box tests of the outbox: what a service commits to its outbox reaches
//! Kafka through the real relay, a real Tansu broker and the schema registry,
//! and one order's events arrive in the order they were committed, which is
//! what every saga participant downstream relies on.

mod support;

use anyhow::{Context, anyhow};
use choreo_events::{Decoder, EventMeta, OrderPlaced, RegistryClient, Topic, encode_datum};
use choreo_messaging::{Health, KafkaSettings, Relay};
use choreo_testkit::{TestDatabase, unique_name, wait_until};
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
    message::Headers,
};
use sqlx::PgPool;
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::Duration,
};
use support::{DEADLINE, Env, enqueue_committed, numbered_event, seq_of, service_database};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const ORDERS: usize = 5;
const EVENTS_PER_ORDER: i32 = 20;

/// One consumed message, with what a downstream consumer sees of it.
struct Received {
    key: Option<String>,
    partition: i32,
    headers: BTreeMap<String, String>,
    event: OrderPlaced,
}

/// Reads `topic` from the beginning with a group of its own until `count`
/// messages have arrived, in the order the consumer hands them over (which
/// is partition order within each partition).
async fn consume(
    kafka: &KafkaSettings,
    topic: &str,
    registry_url: &str,
    count: usize,
) -> anyhow::Result<Vec<Received>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", unique_name("outbox-order-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the test consumer")?;
    consumer.subscribe(&[topic])?;
    let decoder = Decoder::new(RegistryClient::new(
        registry_url,
        choreo_testkit::operator(),
    ));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut received = Vec::with_capacity(count);
    while received.len() < count {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .map_err(|_| {
                anyhow!(
                    "timed out after {DEADLINE:?} with {} of {count} messages",
                    received.len()
                )
            })?
            .context("receiving from the broker")?;
        let payload = message.payload().context("message has no value")?;
        let event = decoder
            .decode(payload)
            .await?
            .parse::<OrderPlaced>()
            .context("decoding the value as OrderPlaced")?;
        let headers = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        let value = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                        (h.key.to_owned(), value.into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        received.push(Received {
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            partition: message.partition(),
            headers,
            event,
        });
    }
    Ok(received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_publishes_each_orders_events_in_commit_order() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let (service_db, pool) = service_database("outbox").await?;
    let shutdown = CancellationToken::new();
    let topic = env.kafka.topics().name(Topic::Order);

    // Orders interleaved, one committed transaction per event: commit order
    // within an order is its sequence number. The first half is a backlog the
    // relay finds when it starts; the second half is committed while it runs,
    // so it arrives through notifications in smaller batches.
    let orders: Vec<Uuid> = (0..ORDERS).map(|_| Uuid::new_v4()).collect();
    let mut committed = HashMap::new();
    let mut commit_round = async |seqs: std::ops::Range<i32>| -> anyhow::Result<()> {
        for seq in seqs {
            for &order_id in &orders {
                let event = numbered_event(order_id, seq);
                enqueue_committed(&pool, &event).await?;
                committed.insert(event.meta.event_id, event);
            }
        }
        Ok(())
    };
    commit_round(0..EVENTS_PER_ORDER / 2).await?;
    let relay = Relay::new(&env.kafka, pool.clone(), env.registry(), Health::default())?;
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));
    commit_round(EVENTS_PER_ORDER / 2..EVENTS_PER_ORDER).await?;

    let received = consume(&env.kafka, &topic, &env.registry_url, committed.len())
        .await
        .with_context(|| format!("broker log:\n{}", env.broker.log()))?;

    let mut seqs_by_order: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    let mut traces = BTreeSet::new();
    let mut partitions_by_order: BTreeMap<Uuid, BTreeSet<i32>> = BTreeMap::new();
    for r in &received {
        let event = &r.event;
        let meta = &event.meta;
        assert_eq!(
            committed.get(&meta.event_id),
            Some(event),
            "a published event differs from the one committed"
        );
        assert_eq!(r.key.as_deref(), Some(event.order_id.to_string().as_str()));
        assert_eq!(
            r.headers.get("choreo-event-id"),
            Some(&meta.event_id.to_string()),
            "headers {:?}",
            r.headers
        );
        assert_eq!(
            r.headers.get("choreo-event-type").map(String::as_str),
            Some("OrderPlaced")
        );
        // Enqueued outside any trace: the relay's send starts one per event,
        // which the consumers continue.
        let traceparent = r.headers.get("traceparent").context("a traceparent")?;
        let trace_id = traceparent.split('-').nth(1).unwrap_or_default().to_owned();
        assert_eq!(trace_id.len(), 32, "{traceparent}");
        assert!(traces.insert(trace_id), "a trace of its own: {traceparent}");
        seqs_by_order
            .entry(event.order_id)
            .or_default()
            .push(seq_of(event).context("event has no lines")?);
        partitions_by_order
            .entry(event.order_id)
            .or_default()
            .insert(r.partition);
    }
    let expected: Vec<i32> = (0..EVENTS_PER_ORDER).collect();
    assert_eq!(seqs_by_order.len(), ORDERS);
    for (order_id, seqs) in &seqs_by_order {
        assert_eq!(
            seqs, &expected,
            "order {order_id}'s events arrived out of commit order or incomplete"
        );
        assert_eq!(
            partitions_by_order[order_id].len(),
            1,
            "order {order_id} was spread over partitions {:?}",
            partitions_by_order[order_id]
        );
    }

    // The relay marks rows after the broker acknowledges them, which may be
    // after a consumer has already seen them.
    wait_until("every outbox row to be marked published", DEADLINE, || {
        let pool = pool.clone();
        async move {
            let unpublished: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(&pool)
                    .await
                    .ok()?;
            (unpublished == 0).then_some(())
        }
    })
    .await?;

    shutdown.cancel();
    relay_task.await.context("relay task")?;
    pool.close().await;
    service_db.drop_db().await?;
    env.stop().await
}

/// Two replicas of a service run two relays on one database. Only the lease
/// holder publishes; when it stops, the other takes over. Every row reaches
/// the topic once, and each order's events in commit order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_database_publish_each_row_once_in_key_order() -> anyhow::Result<()> {
    let env = Env::start().await?;
    let (service_db, pool) = service_database("two_relays").await?;
    let topic = env.kafka.topics().name(Topic::Order);
    let orders: Vec<Uuid> = (0..ORDERS).map(|_| Uuid::new_v4()).collect();
    let mut committed = HashMap::new();
    let mut commit_round = async |seqs: std::ops::Range<i32>| -> anyhow::Result<()> {
        for seq in seqs {
            for &order_id in &orders {
                let event = numbered_event(order_id, seq);
                enqueue_committed(&pool, &event).await?;
                committed.insert(event.meta.event_id, event);
            }
        }
        Ok(())
    };
    let published = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .ok()
    };

    // The first relay takes the lease and publishes the first round.
    let first_stop = CancellationToken::new();
    let first = Relay::new(&env.kafka, pool.clone(), env.registry(), Health::default())?;
    let first_task = tokio::spawn(first.run(first_stop.clone()));
    commit_round(0..5).await?;
    wait_until("the first round to be published", DEADLINE, || {
        let pool = pool.clone();
        async move { (published(pool).await? == 5 * ORDERS as i64).then_some(()) }
    })
    .await?;

    // The second stands by while both run and more rows are committed.
    let second_stop = CancellationToken::new();
    let second = Relay::new(&env.kafka, pool.clone(), env.registry(), Health::default())?;
    let second_task = tokio::spawn(second.run(second_stop.clone()));
    commit_round(5..10).await?;

    // The holder stops mid-stream; the standby takes over the rest.
    first_stop.cancel();
    first_task.await.context("first relay")?;
    commit_round(10..EVENTS_PER_ORDER).await?;

    let received = consume(&env.kafka, &topic, &env.registry_url, committed.len()).await?;
    let mut seqs_by_order: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for r in &received {
        seqs_by_order
            .entry(r.event.order_id)
            .or_default()
            .push(seq_of(&r.event).context("event has no lines")?);
    }
    let expected: Vec<i32> = (0..EVENTS_PER_ORDER).collect();
    for (order_id, seqs) in &seqs_by_order {
        assert_eq!(
            seqs, &expected,
            "order {order_id}'s events: missing, repeated or out of order"
        );
    }
    // Nothing beyond what was consumed: no row went out twice.
    let messages_on_topic = high_watermarks(&env.kafka, &topic).await?;
    assert_eq!(messages_on_topic, committed.len() as i64);

    second_stop.cancel();
    second_task.await.context("second relay")?;
    pool.close().await;
    service_db.drop_db().await?;
    env.stop().await
}

/// How many messages `topic` holds, summed over its partitions.
async fn high_watermarks(kafka: &KafkaSettings, topic: &str) -> anyhow::Result<i64> {
    let probe: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .create()?;
    let topic = topic.to_owned();
    let partitions = kafka.partitions;
    tokio::task::spawn_blocking(move || {
        let mut total = 0;
        for p in 0..partitions {
            let (low, high) = probe.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
            total += high - low;
        }
        Ok(total)
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_already_in_outbox_is_not_enqueued_again() -> anyhow::Result<()> {
    let db = TestDatabase::create("outbox_dedup").await?;
    let pool = PgPool::connect(&db.url).await?;
    choreo_messaging::migrate(&pool).await?;

    // Handling the same cause twice (a redelivery) builds the same event
    // again: same derived id, possibly a later timestamp.
    let order_id = Uuid::new_v4();
    let handle_cause = || OrderPlaced {
        meta: EventMeta::first::<OrderPlaced>(order_id, "test"),
        ..numbered_event(order_id, 0)
    };
    let first = handle_cause();
    let again = handle_cause();
    assert_eq!(first.meta.event_id, again.meta.event_id);
    enqueue_committed(&pool, &first).await?;
    enqueue_committed(&pool, &again).await?;

    let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox WHERE event_id = $1")
        .bind(first.meta.event_id)
        .fetch_all(&pool)
        .await?;
    assert_eq!(rows, vec![encode_datum(&first)?], "the first copy is kept");

    // Deduplication is by event id, not by order: the order's next event
    // still goes in.
    enqueue_committed(&pool, &numbered_event(order_id, 1)).await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await?;
    assert_eq!(total, 2);

    pool.close().await;
    db.drop_db().await?;
    Ok(())
}

/// Rows committed one transaction at a time, each once the last is on the
/// topic, reach the relay one per batch. Their marks are written together, at
/// most one statement per `MARK_EVERY` (a statement's rows share its
/// `now()`), not one per batch; and what was published is marked before the
/// relay stops, so the next holder of the lease does not publish it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_marks_published_rows_in_bulk_and_before_it_stops() -> anyhow::Result<()> {
    const EVENTS: usize = 20;
    let env = Env::start().await?;
    let (service_db, pool) = service_database("bulk_marks").await?;
    let topic = env.kafka.topics().name(Topic::Order);
    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.bootstrap_servers)
        .set("group.id", unique_name("bulk-marks-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        // The test's own observer asks again soon: librdkafka's mock cluster
        // holds an empty fetch for its whole wait, so at the default 500 ms
        // each event would take longer than a mark interval to be seen.
        .set("fetch.wait.max.ms", "10")
        .create()?;
    reader.subscribe(&[&topic])?;
    let shutdown = CancellationToken::new();
    let relay = Relay::new(&env.kafka, pool.clone(), env.registry(), Health::default())?;
    let started = std::time::Instant::now();
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));
    let order_id = Uuid::new_v4();
    for seq in 0..EVENTS as i32 {
        enqueue_committed(&pool, &numbered_event(order_id, seq)).await?;
        tokio::time::timeout(DEADLINE, reader.recv())
            .await
            .with_context(|| format!("event {seq} did not reach the topic"))??;
    }

    // Stopped as soon as the last row is on the topic, marked or not.
    shutdown.cancel();
    relay_task.await.context("relay task")?;
    let ran = started.elapsed();
    let (unmarked, marks): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE published_at IS NULL), count(DISTINCT published_at)
         FROM outbox",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(
        unmarked, 0,
        "every published row is marked when the relay stops"
    );
    let most =
        (ran.as_secs_f64() / choreo_messaging::relay::MARK_EVERY.as_secs_f64()).ceil() as i64 + 1;
    assert!(
        marks <= most && (marks as usize) < EVENTS,
        "{marks} statements marked {EVENTS} rows in {ran:?}: at most {most} expected"
    );
    pool.close().await;
    service_db.drop_db().await?;
    env.stop().await
}
