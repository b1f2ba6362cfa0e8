//! The choreography as data: for each saga service, every record it
//! consumes with what it does and which records it may emit in response, and
//! every record it passes over with why; for each command a service takes
//! from outside (an HTTP call, its own deadline), what it emits.
//!
//! Nobody owns a choreographed flow, so this table is where it is written
//! down whole. It is kept true in two ways: each service's handler asks it
//! which records to act on ([`Consumer::reacts_to`]), and each service's
//! tests check that what its handlers really emit for a record is among
//! [`Reaction::emits`] and that every listed emission happens. From it
//! `choreo saga graph` draws the flow, and so do the README's and
//! ARCHITECTURE.md's diagrams (tests fail when they drift).

use crate::{Record, Topic, inputs};

/// What a service does with one record it consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaction {
    pub on: Record,
    /// The records it may emit in response; empty for a reaction that only
    /// changes the service's own state.
    pub emits: &'static [Record],
    /// The effect, in a few words.
    pub does: &'static str,
}

/// A record a service consumes and passes over without a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ignored {
    pub record: Record,
    pub why: &'static str,
}

/// A way into the saga from outside the topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// The HTTP route or the timer, e.g. `POST /orders`.
    pub name: &'static str,
    pub emits: &'static [Record],
}

/// One saga service's part in the choreography.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumer {
    /// The service, which is also its consumer group before any prefix.
    pub service: &'static str,
    /// The topics it consumes.
    pub inputs: &'static [Topic],
    /// The topic it publishes on.
    pub publishes: Topic,
    pub reactions: &'static [Reaction],
    pub ignores: &'static [Ignored],
    pub commands: &'static [Command],
}

impl Consumer {
    /// Whether the service acts on `record`; the rest of its input topics'
    /// records are passed over without opening a transaction.
    pub fn reacts_to(&self, record: Record) -> bool {
        self.reaction(record).is_some()
    }

    /// The service's reaction to `record`, if it has one.
    pub fn reaction(&self, record: Record) -> Option<&'static Reaction> {
        self.reactions.iter().find(|r| r.on == record)
    }
}

use Record::*;

/// Order: decides the saga's outcome, and nothing else does.
pub const ORDER: Consumer = Consumer {
    service: "order",
    inputs: inputs::ORDER,
    publishes: Topic::Order,
    reactions: &[
        Reaction {
            on: StockReserved,
            emits: &[OrderConfirmed],
            does: "records the prices; confirms if the shipment came first",
        },
        Reaction {
            on: StockRejected,
            emits: &[OrderCancelled],
            does: "cancels: OUT_OF_STOCK",
        },
        Reaction {
            on: StockReleased,
            emits: &[],
            does: "records the release",
        },
        Reaction {
            on: PaymentFailed,
            emits: &[OrderCancelled],
            does: "cancels: PAYMENT_DECLINED",
        },
        Reaction {
            on: PaymentRefunded,
            emits: &[],
            does: "records the refund",
        },
        Reaction {
            on: ShipmentScheduled,
            emits: &[OrderConfirmed],
            does: "confirms once the prices are in",
        },
        Reaction {
            on: ShipmentFailed,
            emits: &[OrderCancelled],
            does: "cancels: SHIPPING_UNAVAILABLE",
        },
        Reaction {
            on: ShipmentCancelled,
            emits: &[],
            does: "records the cancelled shipment",
        },
    ],
    ignores: &[
        Ignored {
            record: PaymentCompleted,
            why: "recorded from the envelope that shipping's answer or the refund carries",
        },
        Ignored {
            record: ProductSet,
            why: "a catalog change, not a saga step",
        },
        Ignored {
            record: WalletSet,
            why: "a wallet change, not a saga step",
        },
    ],
    commands: &[
        Command {
            name: "POST /orders",
            emits: &[OrderPlaced],
        },
        Command {
            name: "POST /orders/{id}/cancel",
            emits: &[OrderCancelled],
        },
        Command {
            name: "saga deadline",
            emits: &[OrderCancelled],
        },
    ],
};

/// Inventory: reserves stock, and gives it back when the order is cancelled.
pub const INVENTORY: Consumer = Consumer {
    service: "inventory",
    inputs: inputs::INVENTORY,
    publishes: Topic::Inventory,
    reactions: &[
        Reaction {
            on: OrderPlaced,
            emits: &[StockReserved, StockRejected],
            does: "reserves every line, all or nothing",
        },
        Reaction {
            on: OrderCancelled,
            emits: &[StockReleased],
            does: "releases the reservation",
        },
        Reaction {
            on: OrderConfirmed,
            emits: &[],
            does: "ships the reserved stock",
        },
    ],
    ignores: &[],
    commands: &[Command {
        name: "PUT /products/{sku}",
        emits: &[ProductSet],
    }],
};

/// Payment: charges the reserved total, and refunds it when the order is
/// cancelled.
pub const PAYMENT: Consumer = Consumer {
    service: "payment",
    inputs: inputs::PAYMENT,
    publishes: Topic::Payment,
    reactions: &[
        Reaction {
            on: StockReserved,
            emits: &[PaymentCompleted, PaymentFailed],
            does: "charges the total",
        },
        Reaction {
            on: OrderCancelled,
            emits: &[PaymentRefunded],
            does: "refunds a charge",
        },
    ],
    ignores: &[
        Ignored {
            record: OrderPlaced,
            why: "the charge waits for the reserved, priced stock",
        },
        Ignored {
            record: OrderConfirmed,
            why: "a confirmed order's charge stays as it is",
        },
        Ignored {
            record: StockRejected,
            why: "nothing was charged; order cancels the saga",
        },
        Ignored {
            record: StockReleased,
            why: "payment compensates on OrderCancelled itself",
        },
        Ignored {
            record: ProductSet,
            why: "a catalog change, not a saga step",
        },
    ],
    commands: &[Command {
        name: "PUT /wallets/{customer_id}",
        emits: &[WalletSet],
    }],
};

/// Shipping: schedules a paid order, and calls it off when the order is
/// cancelled.
pub const SHIPPING: Consumer = Consumer {
    service: "shipping",
    inputs: inputs::SHIPPING,
    publishes: Topic::Shipping,
    reactions: &[
        Reaction {
            on: PaymentCompleted,
            emits: &[ShipmentScheduled, ShipmentFailed],
            does: "ships to the address the payment carries",
        },
        Reaction {
            on: OrderCancelled,
            emits: &[ShipmentCancelled],
            does: "calls off a scheduled shipment",
        },
    ],
    ignores: &[
        Ignored {
            record: OrderPlaced,
            why: "the address travels with the payment",
        },
        Ignored {
            record: OrderConfirmed,
            why: "the shipment was scheduled already",
        },
        Ignored {
            record: PaymentFailed,
            why: "nothing to ship; order cancels the saga",
        },
        Ignored {
            record: PaymentRefunded,
            why: "shipping compensates on OrderCancelled itself",
        },
        Ignored {
            record: WalletSet,
            why: "a wallet change, not a saga step",
        },
    ],
    commands: &[],
};

/// The whole choreography, service by service.
pub const CHOREOGRAPHY: [Consumer; 4] = [ORDER, INVENTORY, PAYMENT, SHIPPING];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_service_decides_every_record_of_its_inputs_once() {
        for c in &CHOREOGRAPHY {
            let consumed: BTreeSet<Record> = Record::ALL
                .iter()
                .copied()
                .filter(|r| c.inputs.contains(&r.topic()))
                .collect();
            let mut decided: Vec<Record> = c.reactions.iter().map(|r| r.on).collect();
            decided.extend(c.ignores.iter().map(|i| i.record));
            let unique: BTreeSet<Record> = decided.iter().copied().collect();
            assert_eq!(unique.len(), decided.len(), "{}: a record twice", c.service);
            assert_eq!(unique, consumed, "{}: decided vs consumed", c.service);
        }
    }

    #[test]
    fn services_emit_only_on_their_own_topic() {
        for c in &CHOREOGRAPHY {
            let emitted = c
                .reactions
                .iter()
                .flat_map(|r| r.emits)
                .chain(c.commands.iter().flat_map(|m| m.emits));
            for record in emitted {
                assert_eq!(record.topic(), c.publishes, "{} emits {record}", c.service);
            }
        }
    }

    #[test]
    fn the_services_are_the_saga_services_in_order() {
        let names: Vec<_> = CHOREOGRAPHY.iter().map(|c| c.service).collect();
        assert_eq!(names, crate::SAGA_SERVICES);
        for (service, topics) in crate::SUBSCRIPTIONS {
            let consumer = CHOREOGRAPHY.iter().find(|c| c.service == service);
            assert_eq!(consumer.map(|c| c.inputs), Some(topics));
        }
    }

    #[test]
    fn every_record_is_emitted_by_someone() {
        let emitted: BTreeSet<Record> = CHOREOGRAPHY
            .iter()
            .flat_map(|c| {
                c.reactions
                    .iter()
                    .flat_map(|r| r.emits)
                    .chain(c.commands.iter().flat_map(|m| m.emits))
            })
            .copied()
            .collect();
        let all: BTreeSet<Record> = Record::ALL.iter().copied().collect();
        assert_eq!(emitted, all);
    }
}
