//! The saga auditor: reads every service's database, read-only, and checks
//! the invariants that say the order saga ended consistent.
//!
//! - Orders: every order older than the deadline plus a grace period is
//!   CONFIRMED or CANCELLED, and its timeline never holds both outcomes.
//! - Stock, per SKU: `available + reserved + shipped = stocked_total`, none
//!   negative; `reserved` and `shipped` match the reservations; a decided
//!   order holds no reservation.
//! - Money, per order: charged − refunded is the total when CONFIRMED and 0
//!   when CANCELLED (one payment row per order is a primary key).
//! - Provider, per order, when the payment provider's ledger is given: what
//!   the provider kept (captured − refunded, over every charge it holds for
//!   the order) is what the payment service kept. A charge taken twice, or
//!   a refund the provider never made, shows here.
//! - Shipments: a CONFIRMED order has exactly one live (SCHEDULED) shipment,
//!   a CANCELLED one none.
//! - Outbox: no row older than a bound is unpublished, in any service.
//!
//! Cross-service checks only look at orders decided more than `settle` ago,
//! because compensation follows the decision asynchronously. Each check is
//! one pass over one table per service, joined in memory, so tens of
//! thousands of orders take a fraction of a second.

mod checks;

use serde::Serialize;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use std::{str::FromStr, time::Duration};
use uuid::Uuid;

/// Where each service keeps its data.
#[derive(Debug, Clone)]
pub struct Databases {
    pub order: String,
    pub inventory: String,
    pub payment: String,
    pub shipping: String,
    /// The payment provider's ledger (the stand-in's database), if it is
    /// to be reconciled.
    pub provider: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// The order service's saga deadline.
    pub deadline: Duration,
    /// Added to the deadline before a PENDING order is a violation.
    pub grace: Duration,
    /// Compensation must be done this long after an order was decided.
    pub settle: Duration,
    /// An outbox row must be published this long after it was written.
    pub outbox: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(30),
            grace: Duration::from_secs(10),
            settle: Duration::from_secs(10),
            outbox: Duration::from_secs(60),
        }
    }
}

/// One broken invariant, with what it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// `order-outcome`, `stock`, `money`, `provider`, `shipment` or
    /// `outbox`.
    pub invariant: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}]", self.invariant)?;
        if let Some(id) = self.order_id {
            write!(f, " order {id}")?;
        }
        if let Some(sku) = &self.sku {
            write!(f, " sku {sku}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub orders: usize,
    pub skus: usize,
    pub violations: Vec<Violation>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// `why`: when the server may have run out of connections, who holds
    /// them (`choreo_kit::postgres::explain`); empty otherwise.
    #[error("connecting to the {service} database{why}")]
    Connect {
        service: &'static str,
        why: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("reading the {service} database")]
    Read {
        service: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

/// Read-only pools on the four service databases.
pub(crate) struct Pools {
    pub(crate) order: PgPool,
    pub(crate) inventory: PgPool,
    pub(crate) payment: PgPool,
    pub(crate) shipping: PgPool,
    pub(crate) provider: Option<PgPool>,
}

async fn read_only(service: &'static str, url: &str) -> Result<PgPool, AuditError> {
    let connect = |source, why| AuditError::Connect {
        service,
        why,
        source,
    };
    // Every transaction read-only: the auditor must never change what it
    // audits, whatever a query does by mistake.
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| connect(e, String::new()))?
        .options([("default_transaction_read_only", "on")]);
    match PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
    {
        Ok(pool) => Ok(pool),
        Err(e) => {
            let why = choreo_kit::postgres::explain(url, &e).await;
            Err(connect(e, why))
        }
    }
}

/// Runs every check and returns what it found.
///
/// # Errors
/// When a database cannot be reached or read; a violation is not an error.
pub async fn audit(databases: &Databases, bounds: Bounds) -> Result<Report, AuditError> {
    let pools = Pools {
        order: read_only("order", &databases.order).await?,
        inventory: read_only("inventory", &databases.inventory).await?,
        payment: read_only("payment", &databases.payment).await?,
        shipping: read_only("shipping", &databases.shipping).await?,
        provider: match &databases.provider {
            Some(url) => Some(read_only("provider", url).await?),
            None => None,
        },
    };
    let report = checks::run(&pools, bounds).await;
    for pool in [
        &pools.order,
        &pools.inventory,
        &pools.payment,
        &pools.shipping,
    ]
    .into_iter()
    .chain(&pools.provider)
    {
        pool.close().await;
    }
    report
}
