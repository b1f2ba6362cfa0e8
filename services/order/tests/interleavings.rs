//! The order service reads three topics; one order's events arrive in any
//! interleaving across them, and any may arrive again. Every such delivery
//! decides each order the same way, once.

use choreo_events::choreography::ORDER;
use choreo_events::*;
use choreo_messaging::Delivery;
use choreo_testkit::{Emissions, TestDatabase, redeliver};
use proptest::prelude::*;
use sqlx::PgPool;
use uuid::Uuid;

fn root(order_id: Uuid) -> EventMeta {
    EventMeta::first::<OrderPlaced>(order_id, "order")
}

fn reserved(order_id: Uuid) -> Delivery {
    Delivery::of(&StockReserved {
        meta: EventMeta::caused_by::<StockReserved>(&root(order_id), "inventory"),
        order_id,
        customer_id: "c".into(),
        lines: vec![PricedLine {
            sku: "A".into(),
            quantity: 2,
            unit_price_cents: 500,
            line_total_cents: 1_000,
        }],
        total_cents: 1_000,
        currency: "EUR".into(),
        shipping_address: None,
    })
    .expect("the event matches its schema")
}

fn rejected(order_id: Uuid) -> Delivery {
    Delivery::of(&StockRejected {
        meta: EventMeta::caused_by::<StockRejected>(&root(order_id), "inventory"),
        order_id,
        reason: "OUT_OF_STOCK".into(),
        shortages: vec![StockShortage {
            sku: "A".into(),
            requested: 2,
            available: 0,
        }],
        customer_id: Some("c".into()),
    })
    .expect("the event matches its schema")
}

/// The payment's envelope: shipping's events carry it.
fn payment(order_id: Uuid) -> EventMeta {
    EventMeta::caused_by::<PaymentCompleted>(&root(order_id), "payment")
}

fn paid(order_id: Uuid) -> Delivery {
    Delivery::of(&PaymentCompleted {
        meta: payment(order_id),
        order_id,
        payment_id: Uuid::new_v4(),
        customer_id: "c".into(),
        amount_cents: 1_000,
        currency: "EUR".into(),
        shipping_address: Some(choreo_testkit::shipping_address("DE")),
    })
    .expect("the event matches its schema")
}

fn declined(order_id: Uuid) -> Delivery {
    Delivery::of(&PaymentFailed {
        meta: EventMeta::caused_by::<PaymentFailed>(&root(order_id), "payment"),
        order_id,
        customer_id: "c".into(),
        amount_cents: 1_000,
        reason: "INSUFFICIENT_FUNDS".into(),
    })
    .expect("the event matches its schema")
}

fn scheduled(order_id: Uuid) -> Delivery {
    Delivery::of(&ShipmentScheduled {
        meta: EventMeta::once_per_order::<ShipmentScheduled>(order_id, None, "shipping"),
        order_id,
        shipment_id: Uuid::new_v4(),
        country: "DE".into(),
        payment: Some(payment(order_id)),
    })
    .expect("the event matches its schema")
}

fn unshippable(order_id: Uuid) -> Delivery {
    Delivery::of(&ShipmentFailed {
        meta: EventMeta::once_per_order::<ShipmentFailed>(order_id, None, "shipping"),
        order_id,
        country: "AQ".into(),
        reason: "COUNTRY_NOT_SERVED".into(),
        payment: Some(payment(order_id)),
    })
    .expect("the event matches its schema")
}

fn released(order_id: Uuid) -> Delivery {
    Delivery::of(&StockReleased {
        meta: EventMeta::caused_by::<StockReleased>(&root(order_id), "inventory"),
        order_id,
        reason: cancel_reason::PAYMENT_DECLINED.into(),
        lines: vec![OrderLine {
            sku: "A".into(),
            quantity: 2,
        }],
    })
    .expect("the event matches its schema")
}

fn refunded(order_id: Uuid) -> Delivery {
    Delivery::of(&PaymentRefunded {
        meta: EventMeta::caused_by::<PaymentRefunded>(&root(order_id), "payment"),
        order_id,
        payment_id: Uuid::new_v4(),
        customer_id: "c".into(),
        amount_cents: 1_000,
        currency: "EUR".into(),
        reason: cancel_reason::SHIPPING_UNAVAILABLE.into(),
        payment: Some(payment(order_id)),
    })
    .expect("the event matches its schema")
}

fn shipment_cancelled(order_id: Uuid) -> Delivery {
    Delivery::of(&ShipmentCancelled {
        meta: EventMeta::caused_by::<ShipmentCancelled>(&root(order_id), "shipping"),
        order_id,
        shipment_id: Uuid::new_v4(),
        reason: cancel_reason::CUSTOMER_CANCELLED.into(),
    })
    .expect("the event matches its schema")
}

/// PENDING orders of one line each.
async fn seed(pool: &PgPool, orders: &[Uuid]) -> sqlx::Result<()> {
    for id in orders {
        sqlx::query("INSERT INTO orders (id, customer_id, status, shipping_address) VALUES ($1, 'c', 'PENDING', '{}')")
            .bind(id)
            .execute(pool)
            .await?;
        sqlx::query(
            "INSERT INTO order_lines (order_id, line_no, sku, quantity) VALUES ($1, 0, 'A', 2)",
        )
        .bind(id)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Every branch in turn, the shipment before the prices once: order does
/// all the choreography says it does, and nothing else.
#[tokio::test]
async fn order_emits_what_the_choreography_says() -> anyhow::Result<()> {
    let (db, pool) = TestDatabase::migrated("order_reactions", choreo_order::migrations()).await?;
    let orders = [(); 6].map(|()| Uuid::new_v4());
    seed(&pool, &orders).await?;
    let [
        prices_first,
        shipment_first,
        decline,
        reject,
        unship,
        cancel,
    ] = orders;
    let events = [
        reserved(prices_first),
        paid(prices_first),
        scheduled(prices_first),
        scheduled(shipment_first),
        reserved(shipment_first),
        reserved(decline),
        declined(decline),
        released(decline),
        rejected(reject),
        reserved(unship),
        unshippable(unship),
        refunded(unship),
        shipment_cancelled(cancel),
    ];
    let handler = choreo_order::handler();
    let mut emissions = Emissions::default();
    for event in &events {
        emissions.apply(&pool, &handler, event).await?;
    }
    pool.close().await;
    db.drop_db().await?;
    emissions.matches(&ORDER)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn any_delivery_order_decides_every_order_the_same_way_once(
        permutation in Just((0..8usize).collect::<Vec<_>>()).prop_shuffle(),
        copies in proptest::collection::vec((0..8usize, 0..10usize), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (db, pool) = TestDatabase::migrated("order_prop", choreo_order::migrations()).await.expect("a migrated database");
            let orders = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
            seed(&pool, &orders).await.expect("orders");
            let [confirm, decline, reject, unship] = orders;
            // Each event is on its own topic for its order, so every
            // permutation is a valid delivery order.
            let events = [
                reserved(confirm), paid(confirm), scheduled(confirm),
                reserved(decline), declined(decline),
                rejected(reject),
                reserved(unship), unshippable(unship),
            ];
            let sequence = redeliver(permutation.clone(), &copies);
            let handler = choreo_order::handler();
            let mut emissions = Emissions::default();
            for i in &sequence {
                emissions.apply(&pool, &handler, &events[*i]).await.expect("applies");
            }
            let mut outcomes = Vec::new();
            for id in orders {
                let (status, reason): (String, Option<String>) =
                    sqlx::query_as("SELECT status, cancel_reason FROM orders WHERE id = $1")
                        .bind(id)
                        .fetch_one(&pool)
                        .await
                        .expect("order");
                let emitted: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM outbox WHERE message_key = $1
                     AND record_name IN ('io.choreo.events.OrderConfirmed', 'io.choreo.events.OrderCancelled')",
                )
                .bind(id.to_string())
                .fetch_one(&pool)
                .await
                .expect("outbox");
                outcomes.push((status, reason, emitted));
            }
            pool.close().await;
            db.drop_db().await.expect("drops");
            let decided = |status: &str, reason: Option<&str>| (status.to_owned(), reason.map(str::to_owned), 1);
            prop_assert_eq!(
                outcomes,
                vec![
                    decided("CONFIRMED", None),
                    decided("CANCELLED", Some("PAYMENT_DECLINED")),
                    decided("CANCELLED", Some("OUT_OF_STOCK")),
                    decided("CANCELLED", Some("SHIPPING_UNAVAILABLE")),
                ],
                "after {:?}", sequence
            );
            if let Err(e) = emissions.within(&ORDER) {
                prop_assert!(false, "{e:#} after {:?}", sequence);
            }
            Ok(())
        })?;
    }
}
