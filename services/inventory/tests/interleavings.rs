//! Inventory's inputs all travel on `order.events`, keyed by order: one
//! order's events arrive in order, different orders' interleave freely, and
//! any may arrive again after a restart. With enough stock for every order,
//! every such delivery leaves the same stock and the same reservations.

use choreo_events::choreography::INVENTORY;
use choreo_events::*;
use choreo_messaging::Delivery;
use choreo_testkit::{Emissions, TestDatabase, interleave, order_placed, redeliver};
use proptest::prelude::*;
use sqlx::PgPool;
use uuid::Uuid;

fn placed(order_id: Uuid, lines: &[(&str, i32)]) -> (EventMeta, Delivery) {
    let mut event = order_placed(order_id);
    event.lines = lines
        .iter()
        .map(|(sku, quantity)| OrderLine {
            sku: (*sku).into(),
            quantity: *quantity,
        })
        .collect();
    (
        event.meta.clone(),
        Delivery::of(&event).expect("the event matches its schema"),
    )
}

fn confirmed(order_id: Uuid) -> Delivery {
    Delivery::of(&OrderConfirmed {
        meta: EventMeta::once_per_order::<OrderConfirmed>(order_id, None, "order"),
        order_id,
        total_cents: 0,
        currency: "EUR".into(),
    })
    .expect("the event matches its schema")
}

fn cancelled(order_id: Uuid) -> Delivery {
    Delivery::of(&OrderCancelled {
        meta: EventMeta::once_per_order::<OrderCancelled>(order_id, None, "order"),
        order_id,
        reason: cancel_reason::CUSTOMER_CANCELLED.into(),
        detail: String::new(),
    })
    .expect("the event matches its schema")
}

/// o1 is confirmed, o2 cancelled after its reservation, o3 still running,
/// o4 asks for more than was ever stocked and is then cancelled.
fn fixture() -> (Vec<Delivery>, Vec<usize>) {
    let [o1, o2, o3, o4] = [
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    ];
    let events = vec![
        placed(o1, &[("A", 2)]).1,
        confirmed(o1),
        placed(o2, &[("A", 3)]).1,
        cancelled(o2),
        placed(o3, &[("B", 1)]).1,
        placed(o4, &[("B", 5)]).1,
        cancelled(o4),
    ];
    // The lane of each event: its order.
    let lanes = vec![1, 1, 2, 2, 3, 4, 4];
    (events, lanes)
}

async fn state(pool: &PgPool) -> anyhow::Result<(Vec<(String, i32, i32, i32, i32)>, Vec<String>)> {
    let products = sqlx::query_as(
        "SELECT sku, available, reserved, shipped, stocked_total FROM products ORDER BY sku",
    )
    .fetch_all(pool)
    .await?;
    let statuses = sqlx::query_scalar("SELECT status FROM reservations ORDER BY status")
        .fetch_all(pool)
        .await?;
    Ok((products, statuses))
}

/// Delivered in the order they happened, the fixture takes every branch:
/// inventory does all the choreography says it does, and nothing else.
#[tokio::test]
async fn inventory_emits_what_the_choreography_says() -> anyhow::Result<()> {
    let (db, pool) = stocked("inventory_reactions").await?;
    let (events, _) = fixture();
    let handler = choreo_inventory::handler();
    let mut emissions = Emissions::default();
    for event in &events {
        emissions.apply(&pool, &handler, event).await?;
    }
    pool.close().await;
    db.drop_db().await?;
    emissions.matches(&INVENTORY)
}

/// A new database, migrated, with products A (10 free) and B (3 free).
async fn stocked(name: &str) -> anyhow::Result<(TestDatabase, PgPool)> {
    let (db, pool) = TestDatabase::migrated(name, choreo_inventory::migrations()).await?;
    sqlx::query(
        "INSERT INTO products (sku, name, price_cents, available, stocked_total)
         VALUES ('A', 'a', 100, 10, 10), ('B', 'b', 100, 3, 3)",
    )
    .execute(&pool)
    .await?;
    Ok((db, pool))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn any_valid_delivery_order_leaves_the_same_stock(
        permutation in Just((0..7usize).collect::<Vec<_>>()).prop_shuffle(),
        copies in proptest::collection::vec((0..7usize, 0..9usize), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (db, pool) = stocked("inventory_prop").await.expect("database");
            let (events, lanes) = fixture();
            let sequence = redeliver(interleave(&lanes, &permutation), &copies);
            let handler = choreo_inventory::handler();
            let mut emissions = Emissions::default();
            for i in &sequence {
                emissions.apply(&pool, &handler, &events[*i]).await.expect("applies");
            }
            let (products, statuses) = state(&pool).await.expect("reads");
            pool.close().await;
            db.drop_db().await.expect("drops");
            prop_assert_eq!(
                products,
                vec![("A".to_owned(), 8, 0, 2, 10), ("B".to_owned(), 2, 1, 0, 3)],
                "stock after {:?}", sequence
            );
            prop_assert_eq!(statuses, vec!["REJECTED", "RELEASED", "RESERVED", "SHIPPED"], "after {:?}", sequence);
            if let Err(e) = emissions.within(&INVENTORY) {
                prop_assert!(false, "{e:#} after {:?}", sequence);
            }
            Ok(())
        })?;
    }
}

/// Every row the service owns, times aside: a decision's time is the
/// clock's when it is made (then every later copy takes it from the event
/// that tells of it), so two databases deciding the same apart in time
/// differ in them. The event ids derive from their causes: the same ids are
/// the same events.
async fn rows(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let queries = [
        "SELECT sku, name, price_cents, currency, available, reserved, shipped, stocked_total
         FROM products ORDER BY sku",
        "SELECT order_id, customer_id, status, total_cents, currency FROM reservations ORDER BY order_id",
        "SELECT * FROM reservation_lines ORDER BY order_id, sku",
        "SELECT event_id, topic, message_key, record_name, traceparent FROM outbox ORDER BY id",
        "SELECT event_id, event_type, topic, partition, \"offset\" FROM inbox ORDER BY event_id",
    ];
    choreo_testkit::rows_as_json(pool, &queries).await
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A replay and a busy consumer apply a partition's events in batches,
    /// with a few statements for the whole batch: that must leave every row
    /// as applying the events one at a time does.
    #[test]
    fn a_batch_leaves_the_rows_one_event_at_a_time_leaves(
        permutation in Just((0..7usize).collect::<Vec<_>>()).prop_shuffle(),
        copies in proptest::collection::vec((0..7usize, 0..9usize), 0..6),
        cuts in proptest::collection::vec(any::<bool>(), 13),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (events, lanes) = fixture();
            let sequence = redeliver(interleave(&lanes, &permutation), &copies);
            let handler = choreo_inventory::handler();

            let (one_db, one) = stocked("inventory_one").await.expect("database");
            for i in &sequence {
                choreo_messaging::apply(&one, &handler, &events[*i]).await.expect("applies");
            }
            let (batch_db, batched) = stocked("inventory_batch").await.expect("database");
            let effects =
                choreo_testkit::apply_in_batches(&batched, &handler, &events, &sequence, &cuts).await;
            let (one_rows, batch_rows) = (rows(&one).await.expect("reads"), rows(&batched).await.expect("reads"));
            for (pool, db) in [(one, one_db), (batched, batch_db)] {
                pool.close().await;
                db.drop_db().await.expect("drops");
            }
            prop_assert_eq!(one_rows, batch_rows, "after {:?} cut at {:?}", sequence, cuts);
            prop_assert_eq!(
                effects.iter().filter(|e| **e == choreo_messaging::Effect::Applied).count(),
                events.len(),
                "each event applied once: {:?}", effects
            );
            Ok(())
        })?;
    }
}
