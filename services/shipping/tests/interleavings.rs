//! Shipping reads `order.events` and `payment.events`: one order's events on
//! one topic arrive in order, but a payment may come before or after the
//! order's cancel, and anything may arrive again. Every such delivery ends
//! with the same shipments: only the paid, uncancelled order to a served
//! country is scheduled, to the address its payment carries; `OrderPlaced`
//! is passed over.

use choreo_events::choreography::SHIPPING;
use choreo_events::*;
use choreo_messaging::{Delivery, apply};
use choreo_service::ServiceSettings;
use choreo_testkit::{
    Emissions, TestDatabase, interleave, order_placed, redeliver, shipping_address,
};
use proptest::prelude::*;
use uuid::Uuid;

fn placed(order_id: Uuid, country: &str) -> Delivery {
    let mut placed = order_placed(order_id);
    placed.shipping_address.country = country.into();
    Delivery::of(&placed).expect("the event matches its schema")
}

/// The payment of `order_id`, carrying an address in `country` (`None`:
/// from a payment service older than the carried address).
fn paid(order_id: Uuid, country: Option<&str>) -> Delivery {
    let placed = EventMeta::first::<OrderPlaced>(order_id, "order");
    Delivery::of(&PaymentCompleted {
        meta: EventMeta::caused_by::<PaymentCompleted>(&placed, "payment"),
        order_id,
        payment_id: Uuid::new_v5(&order_id, b"payment"),
        customer_id: "c".into(),
        amount_cents: 100,
        currency: "EUR".into(),
        shipping_address: country.map(shipping_address),
    })
    .expect("the event matches its schema")
}

async fn database(label: &str) -> (TestDatabase, choreo_shipping::Settings, sqlx::PgPool) {
    let (db, pool) = TestDatabase::migrated(label, choreo_shipping::migrations())
        .await
        .expect("a migrated database");
    let settings = choreo_shipping::Settings {
        service: ServiceSettings {
            database_url: db.url.clone(),
            ..ServiceSettings::local("shipping", 0)
        },
        ..Default::default()
    };
    (db, settings, pool)
}

async fn status(pool: &sqlx::PgPool, order_id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM shipments WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
        .expect("reads the shipment")
}

#[tokio::test]
async fn a_payment_without_an_address_ships_to_the_one_stored_or_is_refused() {
    let (db, settings, pool) = database("shipping_old").await;
    let handler = choreo_shipping::handler(&settings);
    // A shipping service older than the carried address stored this
    // order's address from OrderPlaced; the payment comes from an older
    // payment service and carries none.
    let stored = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO shipments (order_id, shipment_id, shipping_address, country, status)
         VALUES ($1, $2, '{}', 'DE', 'WAITING')",
    )
    .bind(stored)
    .bind(Uuid::new_v4())
    .execute(&pool)
    .await
    .expect("an older service's row");
    apply(&pool, &handler, &paid(stored, None))
        .await
        .expect("applies");
    assert_eq!(status(&pool, stored).await.as_deref(), Some("SCHEDULED"));

    // Neither carried nor stored: nothing to ship to, and no retry changes
    // that. The event is refused as permanent (a dead letter) and nothing
    // is written.
    let unknown = Uuid::new_v4();
    let refused = apply(&pool, &handler, &paid(unknown, None)).await;
    assert!(
        matches!(&refused, Err(choreo_messaging::HandlerError::Permanent { reason }) if reason.contains("no shipping address")),
        "{refused:?}"
    );
    assert_eq!(status(&pool, unknown).await, None);
    pool.close().await;
    db.drop_db().await.expect("drops");
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

struct Fixture {
    orders: [Uuid; 4],
    events: [Delivery; 8],
    /// Each event's lane: (topic, order). A cancel follows its order's
    /// placement.
    lanes: [usize; 8],
}

/// s1 ships; s2 is paid and cancelled; s3 goes to a country not served;
/// s4 is never paid, so shipping never hears of it.
fn fixture() -> Fixture {
    let orders = [
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    ];
    let [s1, s2, s3, s4] = orders;
    let events = [
        placed(s1, "DE"),
        paid(s1, Some("DE")),
        placed(s2, "FR"),
        paid(s2, Some("FR")),
        cancelled(s2),
        placed(s3, "AQ"),
        paid(s3, Some("AQ")),
        placed(s4, "DE"),
    ];
    let lanes = [1, 11, 2, 12, 2, 3, 13, 4];
    Fixture {
        orders,
        events,
        lanes,
    }
}

/// Delivered in the order they happened, the fixture takes every branch:
/// shipping does all the choreography says it does, and nothing else.
#[tokio::test]
async fn shipping_emits_what_the_choreography_says() -> anyhow::Result<()> {
    let (db, settings, pool) = database("shipping_reactions").await;
    let handler = choreo_shipping::handler(&settings);
    let mut emissions = Emissions::default();
    for event in &fixture().events {
        emissions.apply(&pool, &handler, event).await?;
    }
    pool.close().await;
    db.drop_db().await?;
    emissions.matches(&SHIPPING)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn any_valid_delivery_order_schedules_the_same_shipments(
        permutation in Just((0..8usize).collect::<Vec<_>>()).prop_shuffle(),
        copies in proptest::collection::vec((0..8usize, 0..10usize), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (db, settings, pool) = database("shipping_prop").await;
            let Fixture { orders, events, lanes } = fixture();
            let sequence = redeliver(interleave(&lanes, &permutation), &copies);
            let handler = choreo_shipping::handler(&settings);
            let mut emissions = Emissions::default();
            for i in &sequence {
                emissions.apply(&pool, &handler, &events[*i]).await.expect("applies");
            }
            let mut statuses = Vec::new();
            for order in orders {
                statuses.push(status(&pool, order).await);
            }
            pool.close().await;
            db.drop_db().await.expect("drops");
            let expected = [Some("SCHEDULED"), Some("CANCELLED"), Some("FAILED"), None].map(|s| s.map(str::to_owned));
            prop_assert_eq!(statuses, expected.to_vec(), "after {:?}", sequence);
            if let Err(e) = emissions.within(&SHIPPING) {
                prop_assert!(false, "{e:#} after {:?}", sequence);
            }
            Ok(())
        })?;
    }
}

/// Every row the service owns, times included: shipping takes each time
/// from the event it answers. The outbox's payloads aside, whose envelopes
/// stamp the clock; the event ids derive from their causes, so the same ids
/// are the same events.
async fn rows(pool: &sqlx::PgPool) -> anyhow::Result<Vec<String>> {
    let queries = [
        "SELECT * FROM shipments ORDER BY order_id",
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
        permutation in Just((0..8usize).collect::<Vec<_>>()).prop_shuffle(),
        copies in proptest::collection::vec((0..8usize, 0..10usize), 0..6),
        cuts in proptest::collection::vec(any::<bool>(), 14),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let Fixture { events, lanes, .. } = fixture();
            let sequence = redeliver(interleave(&lanes, &permutation), &copies);

            let (one_db, settings, one) = database("shipping_one").await;
            let handler = choreo_shipping::handler(&settings);
            for i in &sequence {
                apply(&one, &handler, &events[*i]).await.expect("applies");
            }
            let (batch_db, _, batched) = database("shipping_batch").await;
            let effects =
                choreo_testkit::apply_in_batches(&batched, &handler, &events, &sequence, &cuts).await;
            let (one_rows, batch_rows) = (rows(&one).await.expect("reads"), rows(&batched).await.expect("reads"));
            for (pool, db) in [(one, one_db), (batched, batch_db)] {
                pool.close().await;
                db.drop_db().await.expect("drops");
            }
            prop_assert_eq!(one_rows, batch_rows, "after {:?} cut at {:?}", sequence, cuts);
            // Every event but the four `OrderPlaced`, which shipping passes
            // over, applied once.
            prop_assert_eq!(
                effects.iter().filter(|e| **e == choreo_messaging::Effect::Applied).count(),
                events.len() - 4,
                "each event applied once: {:?}", effects
            );
            Ok(())
        })?;
    }
}
