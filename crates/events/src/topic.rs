//! The four saga topics. Each service publishes on exactly one, keyed by order
//! id so that one order's events stay in order on one partition.

use crate::inputs;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topic {
    Order,
    Inventory,
    Payment,
    Shipping,
}

impl Topic {
    pub const ALL: [Topic; 4] = [
        Topic::Order,
        Topic::Inventory,
        Topic::Payment,
        Topic::Shipping,
    ];

    /// The topic's name without any deployment prefix, e.g. `order.events`.
    pub fn base_name(self) -> &'static str {
        match self {
            Topic::Order => "order.events",
            Topic::Inventory => "inventory.events",
            Topic::Payment => "payment.events",
            Topic::Shipping => "shipping.events",
        }
    }
}

/// The services that consume saga events, each with its own consumer group
/// and dead-letter topic.
pub const SAGA_SERVICES: [&str; 4] = ["order", "inventory", "payment", "shipping"];

/// Each saga service (its consumer group's name, before any prefix) with
/// the topics it consumes.
pub const SUBSCRIPTIONS: [(&str, &[Topic]); 4] = [
    ("order", inputs::ORDER),
    ("inventory", inputs::INVENTORY),
    ("payment", inputs::PAYMENT),
    ("shipping", inputs::SHIPPING),
];

/// Topic names as deployed. The prefix lets test runs and tenants share a
/// broker without sharing topics; production leaves it empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topics {
    pub prefix: String,
}

impl Topics {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn name(&self, topic: Topic) -> String {
        format!("{}{}", self.prefix, topic.base_name())
    }

    /// The dead-letter topic of `service`, e.g. `payment.dlq`: where its
    /// consumer puts the events it can never apply.
    pub fn dead_letters(&self, service: &str) -> String {
        format!("{}{service}.dlq", self.prefix)
    }

    /// Every topic a deployment needs: the four saga topics, then each saga
    /// service's dead-letter topic.
    pub fn all(&self) -> Vec<String> {
        Topic::ALL
            .iter()
            .map(|t| self.name(*t))
            .chain(SAGA_SERVICES.iter().map(|s| self.dead_letters(s)))
            .collect()
    }

    /// The inverse of [`Topics::name`], for consumed messages.
    pub fn parse(&self, name: &str) -> Option<Topic> {
        let base = name.strip_prefix(&self.prefix)?;
        Topic::ALL.into_iter().find(|t| t.base_name() == base)
    }
}
