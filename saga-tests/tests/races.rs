//! Late and crossing events: events on different topics have no order
//! between them, and a cancel can race a confirmation. Whatever arrives
//! when, no stock stays reserved, no money stays taken, and every order ends
//! in exactly one outcome.

use choreo_events::*;
use choreo_saga_tests::{Options, Platform, timeline};
use uuid::Uuid;

/// The envelope of an event another service would have caused.
fn meta<E: Event>(order_id: Uuid, producer: &str) -> EventMeta {
    let cause = EventMeta::first::<OrderPlaced>(order_id, "test");
    EventMeta::caused_by::<E>(&cause, producer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_arriving_after_the_cancel_takes_no_money() -> anyhow::Result<()> {
    // Inventory is down: the order waits for stock when the customer cancels.
    let platform = Platform::start_with(Options {
        down: vec!["inventory"],
        ..Default::default()
    })
    .await?;
    platform.edge.set_wallet("kim", 5_000).await?;
    let id = platform.place("kim", &[("TEA-01", 1)]).await?;
    let (status, _) = platform.cancel(&id).await?;
    assert_eq!(status, 202);
    platform.wait_until_consumed().await?;

    // Inventory's reservation, made before it saw the cancel, arrives late.
    let order_id = Uuid::parse_str(&id)?;
    platform
        .publish(&StockReserved {
            meta: meta::<StockReserved>(order_id, "inventory"),
            order_id,
            customer_id: "kim".into(),
            lines: vec![PricedLine {
                sku: "TEA-01".into(),
                quantity: 1,
                unit_price_cents: 900,
                line_total_cents: 900,
            }],
            total_cents: 900,
            currency: "EUR".into(),
            shipping_address: Some(choreo_testkit::shipping_address("DE")),
        })
        .await?;
    platform.wait_until_consumed().await?;

    assert_eq!(
        platform.wallet("kim").await?["balance_cents"],
        5_000,
        "nothing charged"
    );
    let order = platform.edge.order(&id, 0).await?;
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(order["cancel_reason"], "CUSTOMER_CANCELLED");
    assert!(!timeline(&order).contains(&"PaymentCompleted".to_owned()));
    platform.assert_audit_clean().await?;
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipment_scheduled_for_a_cancelled_order_is_cancelled() -> anyhow::Result<()> {
    // Inventory and payment are down; shipping learns of a payment late,
    // schedules, and only then sees the order was cancelled.
    let platform = Platform::start_with(Options {
        down: vec!["inventory", "payment"],
        ..Default::default()
    })
    .await?;
    let id = platform.place("lena", &[("TEA-01", 1)]).await?;
    let order_id = Uuid::parse_str(&id)?;
    platform
        .publish(&PaymentCompleted {
            meta: meta::<PaymentCompleted>(order_id, "payment"),
            order_id,
            payment_id: Uuid::new_v4(),
            customer_id: "lena".into(),
            amount_cents: 900,
            currency: "EUR".into(),
            shipping_address: Some(choreo_testkit::shipping_address("DE")),
        })
        .await?;
    // Scheduled, but the order has no prices yet, so it stays PENDING.
    platform.wait_for_event(&id, "ShipmentScheduled").await?;
    assert_eq!(platform.edge.order(&id, 0).await?["status"], "PENDING");

    let (status, _) = platform.cancel(&id).await?;
    assert_eq!(status, 202);
    let order = platform.wait_for_event(&id, "ShipmentCancelled").await?;
    assert_eq!(order["status"], "CANCELLED");
    let shipment: serde_json::Value = platform
        .service_client("shipping")?
        .get(format!("{}/shipments/{id}", platform.shipping))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(shipment["status"], "CANCELLED");
    platform.assert_audit_clean().await?;
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_confirmation_ends_in_exactly_one_outcome() -> anyhow::Result<()> {
    let platform = Platform::start().await?;
    platform.edge.set_product("TEA-01", 100, 1_000).await?;
    platform.edge.set_wallet("mia", 1_000_000).await?;
    // Cancels sent at different points of the saga: some land while it runs,
    // some after it is confirmed.
    let mut outcomes = Vec::new();
    for round in 0..12u64 {
        let id = platform.place("mia", &[("TEA-01", 1)]).await?;
        tokio::time::sleep(std::time::Duration::from_millis(round * 60)).await;
        let (status, _) = platform.cancel(&id).await?;
        outcomes.push((id, status));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (id, status) in &outcomes {
        let expected = match status {
            202 => "CANCELLED",
            409 => "CONFIRMED",
            other => anyhow::bail!("cancel of {id} answered {other}"),
        };
        let order = platform.wait_for_status(id, expected).await?;
        let events = timeline(&order);
        let confirmed = events.iter().filter(|e| *e == "OrderConfirmed").count();
        let cancelled = events.iter().filter(|e| *e == "OrderCancelled").count();
        assert_eq!(
            confirmed + cancelled,
            1,
            "order {id} has exactly one outcome: {events:?}"
        );
        seen.insert(expected);
    }
    // The audit proves the cancelled ones were compensated: no stock held,
    // no money kept, no shipment live.
    platform.assert_audit_clean().await?;
    let tea = platform.edge.product("TEA-01").await?;
    assert_eq!(tea["reserved"], 0);
    println!("outcomes seen: {seen:?}");
    platform.stop().await
}
