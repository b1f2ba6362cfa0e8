//! Stock is reserved: charge the customer's wallet the order's total and
//! announce it with `PaymentCompleted`.

use crate::db;
use choreo_events::{EventMeta, PaymentCompleted, StockReserved};
use choreo_messaging::{Delivery, HandlerError, outbox};
use sqlx::PgConnection;
use uuid::Uuid;

pub(super) async fn handle(tx: &mut PgConnection, delivery: &Delivery) -> Result<(), HandlerError> {
    let reserved: StockReserved = delivery.parse()?;
    // One charge per order: the order is the business key.
    if db::payment_exists(tx, reserved.order_id).await? {
        tracing::info!(order_id = %reserved.order_id, "order already charged");
        return Ok(());
    }
    let Some(wallet) = db::lock_wallet(tx, &reserved.customer_id).await? else {
        return Err(declined(&reserved, "the customer has no wallet"));
    };
    if wallet.balance_cents < reserved.total_cents {
        return Err(declined(&reserved, "the wallet balance is below the total"));
    }
    // Derived from the order, so re-deriving the charge after a restore
    // yields the same payment id.
    let payment_id = Uuid::new_v5(&reserved.order_id, b"payment");
    db::charge(
        tx,
        reserved.order_id,
        payment_id,
        &reserved.customer_id,
        reserved.total_cents,
        &reserved.currency,
    )
    .await?;
    let event = PaymentCompleted {
        meta: EventMeta::caused_by::<PaymentCompleted>(&reserved.meta, "payment"),
        order_id: reserved.order_id,
        payment_id,
        customer_id: reserved.customer_id.clone(),
        amount_cents: reserved.total_cents,
        currency: reserved.currency.clone(),
    };
    outbox::enqueue(tx, &event, delivery.traceparent.as_deref()).await?;
    tracing::info!(order_id = %reserved.order_id, amount_cents = reserved.total_cents, "payment completed");
    Ok(())
}

/// Until the compensation branch (issue 3) emits `PaymentFailed`, a decline
/// is logged and the order stays PENDING.
fn declined(reserved: &StockReserved, why: &str) -> HandlerError {
    HandlerError::Permanent {
        reason: format!("payment for order {} declined: {why}", reserved.order_id),
    }
}
