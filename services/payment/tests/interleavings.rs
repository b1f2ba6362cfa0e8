//! Kafka keeps order within a partition only. Payment reads two topics, so
//! its events may arrive in any interleaving, and any of them may arrive
//! again after a restart. Whatever the order and the copies, the money ends
//! where it should: the confirmed order charged once, every cancelled one
//! charged nothing net.

mod support;

use choreo_events::choreography::PAYMENT;
use choreo_events::*;
use choreo_messaging::Delivery;
use choreo_testkit::{Emissions, redeliver};
use proptest::prelude::*;
use sqlx::PgPool;
use support::{database, reserved};
use uuid::Uuid;

const ALICE: i64 = 10_000;
const BOB: i64 = 100;

fn cancelled(order_id: Uuid, reason: &str) -> Delivery {
    let event = OrderCancelled {
        meta: EventMeta::once_per_order::<OrderCancelled>(order_id, None, "order"),
        order_id,
        reason: reason.into(),
        detail: String::new(),
    };
    Delivery::of(&event).expect("the event matches its schema")
}

struct Fixture {
    orders: [Uuid; 4],
    events: Vec<Delivery>,
}

/// o1 is paid and stays paid; o2 is paid then cancelled by the customer;
/// o3 cannot be paid (bob is short) and is cancelled; o4 is cancelled before
/// payment ever hears of it.
fn fixture() -> Fixture {
    let orders = [
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    ];
    let [o1, o2, o3, o4] = orders;
    let events = vec![
        reserved(o1, "alice", 1_000),
        reserved(o2, "alice", 500),
        cancelled(o2, cancel_reason::CUSTOMER_CANCELLED),
        reserved(o3, "bob", 5_000),
        cancelled(o3, cancel_reason::PAYMENT_DECLINED),
        cancelled(o4, cancel_reason::OUT_OF_STOCK),
    ];
    Fixture { orders, events }
}

async fn reset(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE payments, wallets, inbox, outbox")
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO wallets (customer_id, balance_cents) VALUES ('alice', $1), ('bob', $2)",
    )
    .bind(ALICE)
    .bind(BOB)
    .execute(pool)
    .await?;
    Ok(())
}

/// Wallet balances, and charged − refunded per order.
async fn money(pool: &PgPool, orders: &[Uuid]) -> anyhow::Result<(Vec<i64>, Vec<i64>)> {
    let balances = sqlx::query_scalar("SELECT balance_cents FROM wallets ORDER BY customer_id")
        .fetch_all(pool)
        .await?;
    let mut kept = Vec::new();
    for order in orders {
        let net: Option<i64> = sqlx::query_scalar(
            "SELECT charged_cents - refunded_cents FROM payments WHERE order_id = $1",
        )
        .bind(order)
        .fetch_optional(pool)
        .await?;
        kept.push(net.unwrap_or(0));
    }
    Ok((balances, kept))
}

/// Delivered in the order they happened, the fixture takes every branch:
/// payment does all the choreography says it does, and nothing else.
#[tokio::test]
async fn payment_emits_what_the_choreography_says() -> anyhow::Result<()> {
    let (db, pool) = database("payment_prop").await;
    reset(&pool).await?;
    let handler = choreo_payment::handler();
    let mut emissions = Emissions::default();
    for event in &fixture().events {
        emissions.apply(&pool, &handler, event).await?;
    }
    pool.close().await;
    db.drop_db().await?;
    emissions.matches(&PAYMENT)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_and_redelivery_leaves_the_same_money(
        order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle(),
        copies in proptest::collection::vec((0..6usize, 0..8usize), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (db, pool) = database("payment_prop").await;
            let fixture = fixture();
            // Each order has at most one event per topic, so every
            // permutation is a valid delivery order.
            let sequence = redeliver(order.clone(), &copies);
            reset(&pool).await.expect("reset");
            let handler = choreo_payment::handler();
            let mut emissions = Emissions::default();
            for i in &sequence {
                emissions.apply(&pool, &handler, &fixture.events[*i]).await.expect("applies");
            }
            let (balances, kept) = money(&pool, &fixture.orders).await.expect("reads");
            pool.close().await;
            db.drop_db().await.expect("drops");
            prop_assert_eq!(balances, vec![ALICE - 1_000, BOB], "wallets after {:?}", sequence);
            prop_assert_eq!(kept, vec![1_000, 0, 0, 0], "charged − refunded per order after {:?}", sequence);
            if let Err(e) = emissions.within(&PAYMENT) {
                prop_assert!(false, "{e:#} after {:?}", sequence);
            }
            Ok(())
        })?;
    }
}
