//! A replay re-applies the order service's own topic, then its inputs, in
//! batches: the rows it leaves are those applying the same events one at a
//! time leaves, in every column, times included (each comes from the event
//! that tells of it). An order decided on its own topic takes its steps the
//! short way; one still pending goes the long way beside it.

use choreo_events::*;
use choreo_messaging::{Delivery, Effect, Handler, apply};
use choreo_testkit::{TestDatabase, order_placed, redeliver, shipping_address};
use proptest::prelude::*;
use sqlx::PgPool;
use uuid::Uuid;

fn delivery<E: Event>(event: &E) -> Delivery {
    Delivery::of(event).expect("the event matches its schema")
}

fn reserved(placed: &OrderPlaced, unit_price_cents: i64) -> Delivery {
    let lines: Vec<PricedLine> = placed
        .lines
        .iter()
        .map(|l| PricedLine {
            sku: l.sku.clone(),
            quantity: l.quantity,
            unit_price_cents,
            line_total_cents: unit_price_cents * i64::from(l.quantity),
        })
        .collect();
    delivery(&StockReserved {
        meta: EventMeta::caused_by::<StockReserved>(&placed.meta, "inventory"),
        order_id: placed.order_id,
        customer_id: placed.customer_id.clone(),
        total_cents: lines.iter().map(|l| l.line_total_cents).sum(),
        lines,
        currency: "EUR".into(),
        shipping_address: Some(shipping_address("DE")),
    })
}

/// o1 confirmed, o2 cancelled (out of stock), o3 still pending with its
/// prices in: the own topic's events, then the inputs'.
fn fixture() -> (Vec<Delivery>, Vec<Delivery>) {
    let [p1, p2, p3] = [(); 3].map(|()| order_placed(Uuid::new_v4()));
    let paid = EventMeta::caused_by::<PaymentCompleted>(&p1.meta, "payment");
    let scheduled = ShipmentScheduled {
        meta: EventMeta::once_per_order::<ShipmentScheduled>(
            p1.order_id,
            Some(paid.event_id),
            "shipping",
        ),
        order_id: p1.order_id,
        shipment_id: Uuid::new_v4(),
        country: "DE".into(),
        payment: Some(paid),
    };
    let rejected = StockRejected {
        meta: EventMeta::caused_by::<StockRejected>(&p2.meta, "inventory"),
        order_id: p2.order_id,
        reason: cancel_reason::OUT_OF_STOCK.into(),
        shortages: Vec::new(),
        customer_id: Some(p2.customer_id.clone()),
    };
    let confirmed = OrderConfirmed {
        meta: EventMeta::once_per_order::<OrderConfirmed>(
            p1.order_id,
            Some(scheduled.meta.event_id),
            "order",
        ),
        order_id: p1.order_id,
        total_cents: 700,
        currency: "EUR".into(),
    };
    let cancelled = OrderCancelled {
        meta: EventMeta::once_per_order::<OrderCancelled>(
            p2.order_id,
            Some(rejected.meta.event_id),
            "order",
        ),
        order_id: p2.order_id,
        reason: cancel_reason::OUT_OF_STOCK.into(),
        detail: String::new(),
    };
    let own = vec![
        delivery(&p1),
        delivery(&p2),
        delivery(&p3),
        delivery(&confirmed),
        delivery(&cancelled),
    ];
    let inputs = vec![
        reserved(&p1, 350),
        delivery(&scheduled),
        delivery(&rejected),
        reserved(&p3, 125),
    ];
    (own, inputs)
}

async fn database(label: &str) -> (TestDatabase, PgPool) {
    TestDatabase::migrated(label, choreo_order::migrations())
        .await
        .expect("a migrated database")
}

/// Every row the service owns, as text; the timeline's `seq` aside, which
/// numbers rows as any transaction happens to insert them.
async fn rows(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let queries = [
        "SELECT * FROM orders ORDER BY id",
        "SELECT * FROM order_lines ORDER BY order_id, line_no",
        "SELECT order_id, event_id, event_type, service, occurred_at FROM order_timeline ORDER BY event_id",
        "SELECT event_id FROM outbox ORDER BY id",
        "SELECT event_id, event_type, topic, partition, \"offset\" FROM inbox ORDER BY event_id",
    ];
    choreo_testkit::rows_as_json(pool, &queries).await
}

/// Applies `events` in the order of `sequence`, cut into batches where
/// `cuts` says; how many were applied.
async fn in_batches<H: Handler>(
    pool: &PgPool,
    handler: &H,
    events: &[Delivery],
    sequence: &[usize],
    cuts: &[bool],
) -> usize {
    choreo_testkit::apply_in_batches(pool, handler, events, sequence, cuts)
        .await
        .iter()
        .filter(|e| **e == Effect::Applied)
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_replay_in_batches_leaves_the_rows_one_event_at_a_time_leaves(
        own_copies in proptest::collection::vec((0..5usize, 0..6usize), 0..3),
        input_copies in proptest::collection::vec((0..4usize, 0..5usize), 0..3),
        cuts in proptest::collection::vec(any::<bool>(), 16),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (own, inputs) = fixture();
            let own_order = redeliver((0..own.len()).collect(), &own_copies);
            let input_order = redeliver((0..inputs.len()).collect(), &input_copies);
            let (recovery, handler) = (choreo_order::recovery(), choreo_order::handler());

            let (one_db, one) = database("order_replay_one").await;
            let mut alone = 0;
            for i in &own_order {
                alone += usize::from(apply(&one, &recovery, &own[*i]).await.expect("applies"));
            }
            for i in &input_order {
                alone += usize::from(apply(&one, &handler, &inputs[*i]).await.expect("applies"));
            }
            let (batch_db, batched) = database("order_replay_batch").await;
            let together = in_batches(&batched, &recovery, &own, &own_order, &cuts).await
                + in_batches(&batched, &handler, &inputs, &input_order, &cuts[8..]).await;

            let (one_rows, batch_rows) = (rows(&one).await.expect("reads"), rows(&batched).await.expect("reads"));
            for (pool, db) in [(one, one_db), (batched, batch_db)] {
                pool.close().await;
                db.drop_db().await.expect("drops");
            }
            prop_assert_eq!(one_rows, batch_rows, "after {:?} then {:?}, cut at {:?}", own_order, input_order, cuts);
            prop_assert_eq!(alone, own.len() + inputs.len());
            prop_assert_eq!(together, own.len() + inputs.len());
            Ok(())
        })?;
    }
}
