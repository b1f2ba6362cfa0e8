//! The envelope every event carries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Ids are UUIDv5 under this namespace, derived from what caused the event, so
/// that handling the same cause twice (redelivery, replay, a restored
/// database) produces the same event id and consumers' inboxes drop the copy.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_3c2e_9b4d_4e8a_a7c1_5d0e_2f9b_8c31);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMeta {
    #[serde(with = "crate::uuid_text")]
    pub event_id: Uuid,
    pub event_type: String,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub occurred_at: DateTime<Utc>,
    /// The order id: every event of one saga shares it.
    #[serde(with = "crate::uuid_text")]
    pub correlation_id: Uuid,
    /// The event that caused this one; `None` for a saga's first event.
    #[serde(with = "crate::uuid_text::option", default)]
    pub causation_id: Option<Uuid>,
    /// The emitting service.
    pub producer: String,
}

impl EventMeta {
    /// The envelope of a saga's first event, caused by a command rather than
    /// by another event.
    pub fn first<E: crate::Event>(order_id: Uuid, producer: &str) -> Self {
        Self::build::<E>(order_id, None, order_id, producer)
    }

    /// The envelope of an event emitted while handling `cause`.
    pub fn caused_by<E: crate::Event>(cause: &EventMeta, producer: &str) -> Self {
        Self::build::<E>(
            cause.correlation_id,
            Some(cause.event_id),
            cause.event_id,
            producer,
        )
    }

    /// The envelope of an event that happens once per order however it came
    /// about: a step that waits for several events (shipping needs the
    /// address and the payment). Its id derives from the order, so whichever
    /// cause happens to arrive last, after a replay too, it is the same event.
    pub fn once_per_order<E: crate::Event>(
        order_id: Uuid,
        causation_id: Option<Uuid>,
        producer: &str,
    ) -> Self {
        Self::build::<E>(order_id, causation_id, order_id, producer)
    }

    fn build<E: crate::Event>(
        order_id: Uuid,
        causation_id: Option<Uuid>,
        seed: Uuid,
        producer: &str,
    ) -> Self {
        let mut name = seed.as_bytes().to_vec();
        name.extend_from_slice(E::NAME.as_bytes());
        Self {
            event_id: Uuid::new_v5(&EVENT_ID_NAMESPACE, &name),
            event_type: E::NAME.to_owned(),
            // Avro carries microseconds; truncate now so that an event equals
            // itself after a round trip.
            occurred_at: truncate_to_micros(Utc::now()),
            correlation_id: order_id,
            causation_id,
            producer: producer.to_owned(),
        }
    }
}

fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}
