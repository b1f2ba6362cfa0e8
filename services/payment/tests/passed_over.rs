//! Records payment does not act on cost it nothing: no transaction, not
//! even a connection. Its input topics carry OrderPlaced and OrderConfirmed
//! for every saga; recording each in the inbox only to roll back cost the
//! database a write transaction apiece.

mod support;

use choreo_events::{EventMeta, OrderConfirmed};
use choreo_messaging::{Delivery, apply};
use choreo_testkit::{TestDatabase, order_placed};
use support::reserved;
use uuid::Uuid;

#[tokio::test]
async fn records_payment_does_not_act_on_are_passed_over_without_the_database() -> anyhow::Result<()>
{
    let (_db, pool) =
        TestDatabase::migrated("payment_passed_over", choreo_payment::migrations()).await?;
    let handler = choreo_payment::handler_with_provider(
        &Default::default(),
        choreo_kit::internal_auth::Signer::service(
            &choreo_kit::internal_auth::generate(),
            "payment",
        )?,
    )?;
    // From here on, anything that asks the pool for a connection fails.
    pool.close().await;

    let order_id = Uuid::new_v4();
    let placed = order_placed(order_id);
    let confirmed = OrderConfirmed {
        meta: EventMeta::caused_by::<OrderConfirmed>(&placed.meta, "order"),
        order_id,
        total_cents: 800,
        currency: "EUR".into(),
    };
    for delivery in [Delivery::of(&placed)?, Delivery::of(&confirmed)?] {
        let applied = apply(&pool, &handler, &delivery).await;
        assert!(
            matches!(applied, Ok(false)),
            "{} is passed over: {applied:?}",
            delivery.message.name()
        );
    }
    // What payment acts on does need its database, which is closed.
    let reserved = apply(&pool, &handler, &reserved(order_id, "alice", 800)).await;
    assert!(
        reserved.is_err(),
        "StockReserved needs the database: {reserved:?}"
    );
    Ok(())
}
