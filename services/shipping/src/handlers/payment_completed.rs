//! The order is paid: ship it to the address the payment carries
//! (`ShipmentScheduled`), or, for a country not served, fail it
//! (`ShipmentFailed`). Both carry the payment's envelope for the order's
//! timeline. A cancelled order is never shipped.

use super::ShippingHandler;
use crate::shipments::{Shipments, Status};
use choreo_events::{EventMeta, PaymentCompleted, ShipmentFailed, ShipmentScheduled};
use choreo_messaging::{HandlerError, outbox};

pub(super) fn handle(
    handler: &ShippingHandler,
    shipments: &mut Shipments,
    paid: &PaymentCompleted,
    emitted: &mut outbox::Pending,
) -> Result<(), HandlerError> {
    let order_id = paid.order_id;
    let at = paid.meta.occurred_at;
    let shipment = shipments.record_paid(order_id, paid.shipping_address.as_ref(), at)?;
    // Only a WAITING shipment moves: CANCELLED is a cancel seen first.
    if shipment.status != Status::Waiting {
        return Ok(());
    }
    let Some(country) = shipment.country.clone() else {
        // Only a payment from before the address travelled with the saga
        // sends none, and only a shipping service from before then stored
        // one from OrderPlaced. With neither, no retry helps: the dead
        // letter says why, and the order's deadline cancels and refunds it.
        return Err(HandlerError::Permanent {
            reason: format!(
                "PaymentCompleted for order {order_id} carries no shipping address and none is stored: \
                 upgrade inventory and payment before shipping"
            ),
        });
    };
    let shipment_id = shipment.shipment_id;
    let payment = &paid.meta;
    if !handler.served_countries.contains(&country) {
        shipments.set_status(order_id, Status::Failed, at);
        tracing::info!(order_id = %order_id, country = %country, "shipment failed: country not served");
        emitted.push(&ShipmentFailed {
            meta: EventMeta::once_per_order::<ShipmentFailed>(
                order_id,
                Some(payment.event_id),
                "shipping",
            ),
            order_id,
            country,
            reason: "COUNTRY_NOT_SERVED".to_owned(),
            payment: Some(payment.clone()),
        })?;
        return Ok(());
    }
    shipments.set_status(order_id, Status::Scheduled, at);
    emitted.push(&ShipmentScheduled {
        meta: EventMeta::once_per_order::<ShipmentScheduled>(
            order_id,
            Some(payment.event_id),
            "shipping",
        ),
        order_id,
        shipment_id,
        country,
        payment: Some(payment.clone()),
    })?;
    tracing::info!(order_id = %order_id, "shipment scheduled");
    Ok(())
}
