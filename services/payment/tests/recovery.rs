//! A replay re-applies payment's own topic in batches: the rows it leaves
//! are those re-applying the same events one at a time leaves, in every
//! column, times included (each comes from the event that tells of it).

mod support;

use choreo_events::*;
use choreo_messaging::{Delivery, Effect, apply};
use proptest::prelude::*;
use sqlx::PgPool;
use support::database;
use uuid::Uuid;

fn wallet_set(customer: &str, delta_cents: i64) -> Delivery {
    Delivery::of(&WalletSet {
        meta: EventMeta::first::<WalletSet>(Uuid::new_v4(), "payment"),
        customer_id: customer.into(),
        balance_cents: 0,
        currency: "EUR".into(),
        delta_cents,
    })
    .expect("the event matches its schema")
}

fn completed(order_id: Uuid, customer: &str, amount_cents: i64) -> (EventMeta, Delivery) {
    let placed = EventMeta::first::<OrderPlaced>(order_id, "order");
    let event = PaymentCompleted {
        meta: EventMeta::caused_by::<PaymentCompleted>(&placed, "payment"),
        order_id,
        payment_id: Uuid::new_v5(&order_id, b"payment"),
        customer_id: customer.into(),
        amount_cents,
        currency: "EUR".into(),
        shipping_address: None,
    };
    let meta = event.meta.clone();
    (
        meta,
        Delivery::of(&event).expect("the event matches its schema"),
    )
}

fn refunded(paid: &EventMeta, customer: &str, amount_cents: i64) -> Delivery {
    Delivery::of(&PaymentRefunded {
        meta: EventMeta::caused_by::<PaymentRefunded>(paid, "payment"),
        order_id: paid.correlation_id,
        payment_id: Uuid::new_v5(&paid.correlation_id, b"payment"),
        customer_id: customer.into(),
        amount_cents,
        currency: "EUR".into(),
        reason: cancel_reason::CUSTOMER_CANCELLED.into(),
        payment: Some(paid.clone()),
    })
    .expect("the event matches its schema")
}

fn failed(order_id: Uuid, customer: &str, amount_cents: i64) -> Delivery {
    let placed = EventMeta::first::<OrderPlaced>(order_id, "order");
    Delivery::of(&PaymentFailed {
        meta: EventMeta::caused_by::<PaymentFailed>(&placed, "payment"),
        order_id,
        customer_id: customer.into(),
        amount_cents,
        reason: "INSUFFICIENT_FUNDS".into(),
    })
    .expect("the event matches its schema")
}

/// Payment's topic as it committed it: two wallets set, two charges to
/// alice (the second refunded, and charged again by a copy that the order
/// key refuses), a decline for bob, then alice's wallet lowered.
fn topic() -> Vec<Delivery> {
    let (o1, o2, o3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (_, paid1) = completed(o1, "alice", 1_000);
    let (meta2, paid2) = completed(o2, "alice", 500);
    let (_, paid2_again) = completed(o2, "alice", 500);
    vec![
        wallet_set("alice", 10_000),
        wallet_set("bob", 100),
        paid1,
        paid2,
        refunded(&meta2, "alice", 500),
        paid2_again,
        failed(o3, "bob", 5_000),
        wallet_set("alice", -2_000),
    ]
}

/// Every row the service owns, as text.
async fn rows(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let queries = [
        "SELECT * FROM wallets ORDER BY customer_id",
        "SELECT * FROM payments ORDER BY order_id",
        "SELECT * FROM wallet_changes ORDER BY event_id",
        "SELECT event_id, event_type, topic, partition, \"offset\" FROM inbox ORDER BY event_id",
    ];
    choreo_testkit::rows_as_json(pool, &queries).await
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_batch_of_its_own_events_leaves_the_rows_one_at_a_time_leaves(
        copies in proptest::collection::vec((0..8usize, 0..9usize), 0..4),
        cuts in proptest::collection::vec(any::<bool>(), 12),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let events = topic();
            // Copies come after the event they copy: the topic's order.
            let sequence = choreo_testkit::redeliver((0..events.len()).collect(), &copies);
            let recovery = choreo_payment::recovery();

            let (one_db, one) = database("payment_recovery_one").await;
            let mut applied_alone = 0;
            for i in &sequence {
                if apply(&one, &recovery, &events[*i]).await.expect("applies") {
                    applied_alone += 1;
                }
            }
            let (batch_db, batched) = database("payment_recovery_batch").await;
            let effects =
                choreo_testkit::apply_in_batches(&batched, &recovery, &events, &sequence, &cuts).await;
            let (one_rows, batch_rows) = (rows(&one).await.expect("reads"), rows(&batched).await.expect("reads"));
            for (pool, db) in [(one, one_db), (batched, batch_db)] {
                pool.close().await;
                db.drop_db().await.expect("drops");
            }
            prop_assert_eq!(one_rows, batch_rows, "after {:?} cut at {:?}", sequence, cuts);
            // Every event but the charge the order key refuses, once.
            prop_assert_eq!(applied_alone, events.len() - 1);
            prop_assert_eq!(
                effects.iter().filter(|e| **e == Effect::Applied).count(),
                events.len() - 1,
                "{:?}", effects
            );
            Ok(())
        })?;
    }
}
