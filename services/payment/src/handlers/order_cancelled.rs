//! The order was cancelled: refund a charge (`PaymentRefunded`, wallet
//! credited, the provider's charge refunded). An order not charged yet is
//! recorded as VOIDED, so that a `StockReserved` arriving late charges
//! nothing; its key is voided at the provider too, since a charge may have
//! been taken there by a try whose transaction never committed here.

use crate::{db, provider::Provider};
use choreo_events::{EventMeta, OrderCancelled, PaymentRefunded};
use choreo_messaging::{HandlerError, outbox};
use sqlx::PgConnection;

#[tracing::instrument(skip_all, fields(order_id = tracing::field::Empty), err)]
pub(super) async fn handle(
    tx: &mut PgConnection,
    cancelled: OrderCancelled,
    provider: &Provider,
) -> Result<(), HandlerError> {
    let order_id = cancelled.order_id;
    tracing::Span::current().record("order_id", tracing::field::display(order_id));
    let Some(payment) = db::lock_payment(tx, order_id).await? else {
        provider.refund(db::payment_id(order_id), order_id).await?;
        // As of the cancellation it answers: no event of this service's
        // tells of it.
        db::record_without_charge(tx, order_id, "", 0, "VOIDED", cancelled.meta.occurred_at)
            .await?;
        return Ok(());
    };
    // DECLINED and VOIDED rows voided their key at the provider when they
    // were written; nothing is left to give back.
    if payment.status != "COMPLETED" {
        return Ok(());
    }
    // The provider first: should the refund here then fail, the retry asks
    // the provider again, which answers with the refund it made.
    provider.refund(payment.payment_id, order_id).await?;
    let meta = EventMeta::caused_by::<PaymentRefunded>(&cancelled.meta, "payment");
    db::refund(tx, order_id, &payment, meta.occurred_at).await?;
    let event = PaymentRefunded {
        meta,
        order_id,
        payment_id: payment.payment_id,
        customer_id: payment.customer_id.clone(),
        amount_cents: payment.charged_cents,
        currency: payment.currency.clone(),
        reason: cancelled.reason.clone(),
        // For the order's timeline, should shipping never have answered the
        // payment.
        payment: payment.completed_event.clone(),
    };
    outbox::enqueue(tx, &event).await?;
    tracing::info!(order_id = %order_id, amount_cents = payment.charged_cents, "payment refunded");
    Ok(())
}
