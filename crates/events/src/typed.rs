//! Messages decoded once into types: [`Record`] names every record, each
//! topic has an enum of its records ([`OrderEvent`], [`InventoryEvent`],
//! [`PaymentEvent`], [`ShippingEvent`]) and each saga service an enum of what
//! it consumes ([`inputs`]). A handler matches its input exhaustively, so a
//! record added to a topic does not compile until every consumer of that
//! topic has decided what to do with it: act, or pass it over and say why.

use crate::{CodecError, Decoded, Event, NAMESPACE, Topic, records::*};

/// What a consumer decodes its messages into: a topic's enum, or a service's
/// enum over its input topics.
pub trait Input: Sized + Send + std::fmt::Debug + 'static {
    /// The topics the input is read from.
    const TOPICS: &'static [Topic];

    /// The message as this input, or `None` for a record that is not one of
    /// its topics' (a newer producer's record, which a consumer passes over
    /// so that a later version of it can still apply it on a replay).
    ///
    /// # Errors
    /// [`CodecError`] when the message names one of the input's records but
    /// does not decode as it: corrupt bytes, or schemas that do not resolve.
    fn decode(message: &Decoded) -> Result<Option<Self>, CodecError>;

    /// Which record this is.
    fn record(&self) -> Record;
}

/// Declares [`Record`] and the per-topic enums from one list, so that the
/// two cannot disagree.
macro_rules! topics {
    ($(
        $(#[$doc:meta])*
        $enum:ident on $topic:ident { $($variant:ident($record:ident)),+ $(,)? }
    )+) => {
        /// Every record Choreo publishes, by name: the types-instead-of-strings
        /// form of an Avro record name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Record { $($($record,)+)+ }

        impl Record {
            /// Every record, topic by topic.
            pub const ALL: &'static [Record] = &[$($(Record::$record,)+)+];

            /// The record's simple name, e.g. `OrderPlaced`.
            pub fn name(self) -> &'static str {
                match self { $($(Record::$record => <$record as Event>::NAME,)+)+ }
            }

            /// The topic the record is published on.
            pub fn topic(self) -> Topic {
                match self { $($(Record::$record => <$record as Event>::TOPIC,)+)+ }
            }

            /// The `.avsc` text exactly as it is in `schemas/`.
            pub fn schema_text(self) -> &'static str {
                match self { $($(Record::$record => <$record as Event>::schema_text(),)+)+ }
            }
        }

        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq)]
            pub enum $enum { $($variant($record),)+ }

            impl $enum {
                /// The topic these records travel on.
                pub const TOPIC: Topic = Topic::$topic;
            }

            impl Input for $enum {
                const TOPICS: &'static [Topic] = &[Topic::$topic];

                fn decode(message: &Decoded) -> Result<Option<Self>, CodecError> {
                    Ok(Some(match message.record() {
                        $(Some(Record::$record) => Self::$variant(message.parse()?),)+
                        _ => return Ok(None),
                    }))
                }

                fn record(&self) -> Record {
                    match self { $(Self::$variant(_) => Record::$record,)+ }
                }
            }
        )+
    };
}

topics! {
    /// `order.events`: the saga's start and its outcome.
    OrderEvent on Order {
        Placed(OrderPlaced),
        Confirmed(OrderConfirmed),
        Cancelled(OrderCancelled),
    }
    /// `inventory.events`: reservations, their release, and catalog changes.
    InventoryEvent on Inventory {
        StockReserved(StockReserved),
        StockRejected(StockRejected),
        StockReleased(StockReleased),
        ProductSet(ProductSet),
    }
    /// `payment.events`: charges, their refunds, and wallet changes.
    PaymentEvent on Payment {
        Completed(PaymentCompleted),
        Failed(PaymentFailed),
        Refunded(PaymentRefunded),
        WalletSet(WalletSet),
    }
    /// `shipping.events`: shipments and their cancellation.
    ShippingEvent on Shipping {
        Scheduled(ShipmentScheduled),
        Failed(ShipmentFailed),
        Cancelled(ShipmentCancelled),
    }
}

impl Record {
    /// The record named `name` (`OrderPlaced`), if Choreo has one.
    pub fn from_name(name: &str) -> Option<Record> {
        Self::ALL.iter().copied().find(|r| r.name() == name)
    }

    /// The record of the full Avro name `io.choreo.events.OrderPlaced`.
    pub fn from_full_name(full_name: &str) -> Option<Record> {
        full_name
            .strip_prefix(NAMESPACE)?
            .strip_prefix('.')
            .and_then(Self::from_name)
    }
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Declares a service's input: one variant per topic it consumes.
macro_rules! input {
    ($(#[$doc:meta])* $name:ident { $($variant:ident($enum:ident)),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name { $($variant($enum),)+ }

        impl Input for $name {
            const TOPICS: &'static [Topic] = &[$($enum::TOPIC,)+];

            fn decode(message: &Decoded) -> Result<Option<Self>, CodecError> {
                $(if let Some(event) = $enum::decode(message)? {
                    return Ok(Some(Self::$variant(event)));
                })+
                Ok(None)
            }

            fn record(&self) -> Record {
                match self { $(Self::$variant(e) => e.record(),)+ }
            }
        }
    };
}

/// What each saga service consumes: the choreography at a glance. The
/// reactions to each record are in [`crate::choreography`].
pub mod inputs {
    use super::*;

    input! {
        /// Order follows every other service's outcome.
        OrderInput {
            Inventory(InventoryEvent),
            Payment(PaymentEvent),
            Shipping(ShippingEvent),
        }
    }

    /// Inventory reserves on a placed order and releases on a cancelled one:
    /// it reads `order.events` alone.
    pub type InventoryInput = OrderEvent;

    input! {
        /// Payment charges on reserved stock and refunds on a cancelled order.
        PaymentInput {
            Inventory(InventoryEvent),
            Order(OrderEvent),
        }
    }

    input! {
        /// Shipping schedules on a payment and cancels on a cancelled order.
        ShippingInput {
            Order(OrderEvent),
            Payment(PaymentEvent),
        }
    }

    /// The topics order consumes.
    pub const ORDER: &[Topic] = OrderInput::TOPICS;
    /// The topics inventory consumes.
    pub const INVENTORY: &[Topic] = InventoryInput::TOPICS;
    /// The topics payment consumes.
    pub const PAYMENT: &[Topic] = PaymentInput::TOPICS;
    /// The topics shipping consumes.
    pub const SHIPPING: &[Topic] = ShippingInput::TOPICS;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventMeta;

    #[test]
    fn every_record_is_listed_once_on_its_own_topic() {
        let mut names: Vec<_> = Record::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Record::ALL.len());
        for record in Record::ALL {
            assert_eq!(Record::from_name(record.name()), Some(*record));
            assert_eq!(
                Record::from_full_name(&format!("{NAMESPACE}.{record}")),
                Some(*record)
            );
        }
        assert_eq!(Record::from_full_name("other.OrderPlaced"), None);
        assert_eq!(Record::from_name("OrderPlacd"), None);
    }

    #[test]
    fn a_message_decodes_into_its_topic_and_only_there() -> Result<(), CodecError> {
        let order_id = uuid::Uuid::new_v4();
        let cancelled = OrderCancelled {
            meta: EventMeta::first::<OrderCancelled>(order_id, "order"),
            order_id,
            reason: "TIMEOUT".into(),
            detail: String::new(),
        };
        let message = Decoded::from_event(&cancelled)?;
        assert_eq!(
            OrderEvent::decode(&message)?,
            Some(OrderEvent::Cancelled(cancelled.clone()))
        );
        assert_eq!(InventoryEvent::decode(&message)?, None);
        let payment = inputs::PaymentInput::decode(&message)?;
        assert_eq!(
            payment.as_ref().map(Input::record),
            Some(Record::OrderCancelled)
        );
        assert_eq!(inputs::OrderInput::decode(&message)?, None);
        Ok(())
    }
}
