//! What the shipping service does with each event it consumes: one module per
//! event, and the decision a paid order leads to.

mod order_cancelled;
mod payment_completed;

use crate::db::{self, Shipment};
use choreo_events::{EventMeta, ShipmentFailed, ShipmentScheduled};
use choreo_messaging::{Delivery, Handler, HandlerError, Outcome, outbox};
use sqlx::PgConnection;
use std::sync::Arc;

pub(crate) struct ShippingHandler {
    /// ISO 3166-1 alpha-2 codes of the countries shipped to.
    served_countries: Arc<[String]>,
}

impl ShippingHandler {
    pub(crate) fn new(served_countries: &[String]) -> Self {
        Self {
            served_countries: served_countries
                .iter()
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        }
    }
}

impl Handler for ShippingHandler {
    // The records `handle` has an arm for: the rest of the topics' records
    // are passed over without a transaction.
    fn reacts_to(&self, record: &str) -> bool {
        matches!(record, "PaymentCompleted" | "OrderCancelled")
    }

    async fn handle(
        &self,
        tx: &mut PgConnection,
        delivery: &Delivery,
    ) -> Result<Outcome, HandlerError> {
        match delivery.message.name() {
            "PaymentCompleted" => payment_completed::handle(self, tx, delivery).await?,
            "OrderCancelled" => order_cancelled::handle(tx, delivery).await?,
            _ => return Ok(Outcome::Ignored),
        }
        Ok(Outcome::Applied)
    }
}

impl ShippingHandler {
    /// Once both the address and the payment are known, schedules the
    /// shipment (`ShipmentScheduled`) or, for a country not served, fails it
    /// (`ShipmentFailed`). `payment` is the `PaymentCompleted`'s envelope:
    /// the cause of either, and carried in it for the order's timeline.
    /// Only a WAITING shipment moves: a cancelled order is never shipped.
    async fn decide_if_ready(
        &self,
        tx: &mut PgConnection,
        shipment: &Shipment,
        payment: &EventMeta,
    ) -> Result<(), HandlerError> {
        let Some(country) = shipment.country.clone() else {
            return Ok(());
        };
        if !shipment.paid || shipment.status != "WAITING" {
            return Ok(());
        }
        let order_id = shipment.order_id;
        if !self.served_countries.contains(&country) {
            db::set_status(tx, order_id, "FAILED").await?;
            let event = ShipmentFailed {
                meta: EventMeta::once_per_order::<ShipmentFailed>(
                    order_id,
                    Some(payment.event_id),
                    "shipping",
                ),
                order_id,
                country,
                reason: "COUNTRY_NOT_SERVED".to_owned(),
                payment: Some(payment.clone()),
            };
            outbox::enqueue(tx, &event).await?;
            tracing::info!(order_id = %order_id, country = %event.country, "shipment failed: country not served");
            return Ok(());
        }
        db::set_status(tx, order_id, "SCHEDULED").await?;
        let event = ShipmentScheduled {
            meta: EventMeta::once_per_order::<ShipmentScheduled>(
                order_id,
                Some(payment.event_id),
                "shipping",
            ),
            order_id,
            shipment_id: shipment.shipment_id,
            country,
            payment: Some(payment.clone()),
        };
        outbox::enqueue(tx, &event).await?;
        tracing::info!(order_id = %order_id, "shipment scheduled");
        Ok(())
    }
}
