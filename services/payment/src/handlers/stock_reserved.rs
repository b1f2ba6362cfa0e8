//! Stock is reserved: charge the customer's wallet the order's total
//! through the provider (`PaymentCompleted`), or decline when the customer
//! has no wallet, too little in it, or the provider refuses the charge
//! (`PaymentFailed`). An order cancelled before this arrives is never
//! charged.

use crate::{
    db,
    provider::{Capture, Provider},
};
use choreo_events::{EventMeta, PaymentCompleted, PaymentFailed, StockReserved};
use choreo_messaging::{HandlerError, outbox};
use sqlx::PgConnection;

#[tracing::instrument(skip_all, fields(order_id = tracing::field::Empty), err)]
pub(super) async fn handle(
    tx: &mut PgConnection,
    reserved: StockReserved,
    provider: &Provider,
) -> Result<(), HandlerError> {
    let order_id = reserved.order_id;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    // One decision per order: the order is the business key. A VOIDED row
    // means the order was cancelled first; charging now would take money
    // for an order that will never ship.
    if let Some(payment) = db::lock_payment(tx, order_id).await? {
        tracing::info!(order_id = %order_id, status = %payment.status, "order already decided; not charging");
        return Ok(());
    }
    let wallet = db::lock_wallet(tx, &reserved.customer_id).await?;
    let mut decline = match &wallet {
        None => Some("UNKNOWN_CUSTOMER".to_owned()),
        Some(w) if w.balance_cents < reserved.total_cents => Some("INSUFFICIENT_FUNDS".to_owned()),
        Some(_) => None,
    };
    if decline.is_none() {
        // Inside the transaction, with the wallet locked: the wait is
        // bounded by the provider timeout, and a lost answer rolls all of
        // this back for a retry under the same key.
        let payment_id = db::payment_id(order_id);
        let capture = provider
            .capture(
                payment_id,
                order_id,
                &reserved.customer_id,
                reserved.total_cents,
                &reserved.currency,
            )
            .await?;
        match capture {
            Capture::Captured => {}
            Capture::Declined(reason) => decline = Some(reason),
            Capture::Voided => {
                // The cancellation got to the provider first; its own
                // transaction here records the order VOIDED (or already
                // has). Nothing to charge, nothing to announce.
                tracing::info!(order_id = %order_id, "charge voided at the provider; not charging");
                // As of the reservation it answers: no event of this
                // service's tells of it.
                db::record_without_charge(
                    tx,
                    order_id,
                    &reserved.customer_id,
                    0,
                    "VOIDED",
                    reserved.meta.occurred_at,
                )
                .await?;
                return Ok(());
            }
        }
    }
    if let Some(reason) = decline {
        // The key is voided at the provider whatever declined it: an earlier
        // try may have been charged there and lost its answer, and the
        // wallet (drained meanwhile by another order) now says no. Voiding
        // is idempotent, and a charge the provider declined stays declined.
        provider.refund(db::payment_id(order_id), order_id).await?;
        let meta = EventMeta::caused_by::<PaymentFailed>(&reserved.meta, "payment");
        db::record_without_charge(
            tx,
            order_id,
            &reserved.customer_id,
            reserved.total_cents,
            "DECLINED",
            meta.occurred_at,
        )
        .await?;
        let event = PaymentFailed {
            meta,
            order_id,
            customer_id: reserved.customer_id.clone(),
            amount_cents: reserved.total_cents,
            reason: reason.clone(),
        };
        outbox::enqueue(tx, &event).await?;
        tracing::info!(order_id = %order_id, reason, "payment declined");
        return Ok(());
    }
    let meta = EventMeta::caused_by::<PaymentCompleted>(&reserved.meta, "payment");
    db::charge(
        tx,
        order_id,
        &reserved.customer_id,
        reserved.total_cents,
        &reserved.currency,
        &meta,
    )
    .await?;
    let event = PaymentCompleted {
        meta,
        order_id,
        payment_id: db::payment_id(order_id),
        customer_id: reserved.customer_id.clone(),
        amount_cents: reserved.total_cents,
        currency: reserved.currency.clone(),
        shipping_address: reserved.shipping_address.clone(),
    };
    outbox::enqueue(tx, &event).await?;
    tracing::info!(order_id = %order_id, amount_cents = reserved.total_cents, "payment completed");
    Ok(())
}
