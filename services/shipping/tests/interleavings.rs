//! Shipping reads `order.events` and `payment.events`: one order's events on
//! one topic arrive in order, but a payment may come before or after the
//! order's cancel, and anything may arrive again. Every such delivery ends
//! with the same shipments: only the paid, uncancelled order to a served
//! country is scheduled.

use choreo_events::*;
use choreo_messaging::{Delivery, apply};
use choreo_service::ServiceSettings;
use choreo_testkit::{TestDatabase, interleave, order_placed, redeliver};
use proptest::prelude::*;
use uuid::Uuid;

fn placed(order_id: Uuid, country: &str) -> Delivery {
    let mut placed = order_placed(order_id);
    placed.shipping_address.country = country.into();
    Delivery::of(&placed).expect("the event matches its schema")
}

fn paid(order_id: Uuid) -> Delivery {
    let placed = EventMeta::first::<OrderPlaced>(order_id, "order");
    Delivery::of(&PaymentCompleted {
        meta: EventMeta::caused_by::<PaymentCompleted>(&placed, "payment"),
        order_id,
        payment_id: Uuid::new_v5(&order_id, b"payment"),
        customer_id: "c".into(),
        amount_cents: 100,
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn any_valid_delivery_order_schedules_the_same_shipments(
        permutation in Just((0..8usize).collect::<Vec<_>>()).prop_shuffle(),
        copies in proptest::collection::vec((0..8usize, 0..10usize), 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let db = TestDatabase::create("shipping_prop").await.expect("database");
            let settings = choreo_shipping::Settings {
                service: ServiceSettings { database_url: db.url.clone(), ..ServiceSettings::local("shipping", 0) },
                ..Default::default()
            };
            let pool = choreo_service::connect(&settings.service, choreo_shipping::migrations()).await.expect("migrates");
            // s1 ships; s2 is paid and cancelled; s3 goes to a country not
            // served; s4 is never paid.
            let orders = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
            let [s1, s2, s3, s4] = orders;
            let events = [
                placed(s1, "DE"), paid(s1),
                placed(s2, "FR"), paid(s2), cancelled(s2),
                placed(s3, "AQ"), paid(s3),
                placed(s4, "DE"),
            ];
            // Lanes: (topic, order); the cancel follows its order's placement.
            let lanes = [1, 11, 2, 12, 2, 3, 13, 4];
            let sequence = redeliver(interleave(&lanes, &permutation), &copies);
            let handler = choreo_shipping::handler(&settings);
            for i in &sequence {
                apply(&pool, &handler, &events[*i]).await.expect("applies");
            }
            let mut statuses = Vec::new();
            for order in orders {
                let status: String = sqlx::query_scalar("SELECT status FROM shipments WHERE order_id = $1")
                    .bind(order)
                    .fetch_one(&pool)
                    .await
                    .expect("a shipment row per order");
                statuses.push(status);
            }
            pool.close().await;
            db.drop_db().await.expect("drops");
            prop_assert_eq!(statuses, vec!["SCHEDULED", "CANCELLED", "FAILED", "WAITING"], "after {:?}", sequence);
            Ok(())
        })?;
    }
}
