//! Rebuilding the order timeline from the steps read off the topics: an
//! order whose whole saga was read gets its timeline back exactly (a step
//! recorded wrongly is mended), and every other order is left alone: one
//! whose `OrderPlaced` the topics no longer hold (retention), one whose own
//! event still waits in the outbox. A dry run changes nothing.

use choreo_events::*;
use choreo_messaging::Delivery;
use choreo_order::rebuild::TimelineRebuild;
use choreo_testkit::{TestDatabase, order_placed};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

type Entry = (Uuid, Uuid, String, String, DateTime<Utc>);

fn reserved(order_id: Uuid) -> StockReserved {
    StockReserved {
        meta: EventMeta::caused_by::<StockReserved>(&order_placed(order_id).meta, "inventory"),
        order_id,
        customer_id: "c".into(),
        lines: vec![PricedLine {
            sku: "A".into(),
            quantity: 1,
            unit_price_cents: 500,
            line_total_cents: 500,
        }],
        total_cents: 500,
        currency: "EUR".into(),
        shipping_address: Some(choreo_testkit::shipping_address("DE")),
    }
}

fn confirmed(order_id: Uuid) -> OrderConfirmed {
    OrderConfirmed {
        meta: EventMeta::once_per_order::<OrderConfirmed>(order_id, None, "order"),
        order_id,
        total_cents: 500,
        currency: "EUR".into(),
    }
}

async fn insert_order(pool: &PgPool, id: Uuid) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO orders (id, customer_id, status, shipping_address) VALUES ($1, 'c', 'PENDING', '{}')",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// A timeline row for `meta`, recorded as `event_type`.
async fn record(pool: &PgPool, meta: &EventMeta, event_type: &str) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO order_timeline (order_id, event_id, event_type, service, occurred_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(meta.correlation_id)
    .bind(meta.event_id)
    .bind(event_type)
    .bind(&meta.producer)
    .bind(meta.occurred_at)
    .execute(pool)
    .await?;
    Ok(())
}

async fn timeline(pool: &PgPool) -> anyhow::Result<Vec<Entry>> {
    Ok(sqlx::query_as(
        "SELECT order_id, event_id, event_type, service, occurred_at FROM order_timeline
         ORDER BY order_id, occurred_at, event_id",
    )
    .fetch_all(pool)
    .await?)
}

async fn rebuild(
    pool: &PgPool,
    read: &[Delivery],
    commit: bool,
) -> anyhow::Result<choreo_order::rebuild::Rebuilt> {
    let mut rebuild = TimelineRebuild::begin(pool).await?;
    for delivery in read {
        rebuild.add(delivery).await?;
    }
    Ok(rebuild.finish(commit).await?)
}

#[tokio::test]
async fn only_orders_whose_whole_saga_was_read_are_rebuilt() -> anyhow::Result<()> {
    let (_db, pool) = TestDatabase::migrated("order_rebuild", choreo_order::migrations()).await?;
    let (whole, retained, unpublished, unknown) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    // Each event built once: its time is part of what is compared.
    let [placed_whole, placed_retained, placed_unpublished] =
        [whole, retained, unpublished].map(order_placed);
    let [reserved_whole, reserved_retained, reserved_unknown] =
        [whole, retained, unknown].map(reserved);
    let confirmed_unpublished = confirmed(unpublished);
    for event in [&placed_whole, &placed_retained, &placed_unpublished] {
        insert_order(&pool, event.order_id).await?;
        record(&pool, &event.meta, "OrderPlaced").await?;
    }
    // A bad deploy recorded the reservation as a rejection.
    record(&pool, &reserved_whole.meta, "StockRejected").await?;
    // The confirmation is recorded, and waits in the outbox.
    record(&pool, &confirmed_unpublished.meta, "OrderConfirmed").await?;
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, message_key, record_name, payload)
         VALUES ($1, 'order.events', $2, 'io.choreo.events.OrderConfirmed', '\\x00')",
    )
    .bind(confirmed_unpublished.meta.event_id)
    .bind(unpublished.to_string())
    .execute(&pool)
    .await?;
    let before = timeline(&pool).await?;

    // What the topics hold: `retained`'s OrderPlaced is past retention.
    let read = vec![
        Delivery::of(&placed_whole)?,
        Delivery::of(&reserved_whole)?,
        Delivery::of(&reserved_retained)?,
        Delivery::of(&placed_unpublished)?,
        Delivery::of(&reserved_unknown)?,
    ];

    let dry = rebuild(&pool, &read, false).await?;
    assert_eq!(
        (dry.added, dry.removed, dry.orders_changed),
        (1, 1, 1),
        "{dry:?}"
    );
    assert_eq!((dry.orders_rebuilt, dry.orders_kept), (1, 2), "{dry:?}");
    assert_eq!(dry.orders_missing, vec![unknown]);
    assert_eq!(dry.entries_after, dry.entries_before);
    assert!(!dry.committed);
    assert_eq!(timeline(&pool).await?, before, "a dry run changes nothing");

    let done = rebuild(&pool, &read, true).await?;
    assert_eq!(
        (done.added, done.removed, done.orders_changed),
        (1, 1, 1),
        "{done:?}"
    );
    assert!(done.committed);
    let after = timeline(&pool).await?;
    let of = |entries: &[Entry], id: Uuid| -> Vec<Entry> {
        entries.iter().filter(|e| e.0 == id).cloned().collect()
    };
    let reservation = &reserved_whole.meta;
    assert!(
        of(&after, whole)
            .iter()
            .any(|e| e.1 == reservation.event_id && e.2 == "StockReserved"),
        "the step is recorded as what it was: {after:?}"
    );
    assert_eq!(of(&after, whole).len(), 2, "{after:?}");
    assert_eq!(
        of(&after, retained),
        of(&before, retained),
        "kept as it was"
    );
    assert_eq!(
        of(&after, unpublished),
        of(&before, unpublished),
        "kept as it was"
    );

    let again = rebuild(&pool, &read, true).await?;
    assert_eq!((again.added, again.removed), (0, 0), "{again:?}");
    assert_eq!(timeline(&pool).await?, after);
    Ok(())
}
