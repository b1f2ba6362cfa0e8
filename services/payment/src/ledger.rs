//! The wallets and payments a run of the service's own events reads and
//! writes, for a replay's recovery: locked at its start with a few
//! statements, changed in memory one event after another by the recovery
//! handlers, and written back at its end with a statement per table. The
//! rules are `db`'s, which a single event and the live service use.

use crate::db::payment_id;
use choreo_events::EventMeta;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

/// What the row in the database is, against the run's copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// No row yet: the run made it.
    Absent,
    Same,
    Changed,
}

impl Stored {
    fn changed(&mut self) {
        if *self == Stored::Same {
            *self = Stored::Changed;
        }
    }
}

#[derive(Debug)]
struct Wallet {
    balance_cents: i64,
    currency: String,
    updated_at: DateTime<Utc>,
    stored: Stored,
}

/// An order's payment, as `db::record` writes it.
#[derive(Debug)]
pub(crate) struct Payment {
    customer_id: String,
    amount_cents: i64,
    currency: String,
    pub(crate) status: &'static str,
    charged_cents: i64,
    refunded_cents: i64,
    completed_event: Option<serde_json::Value>,
    created_at: DateTime<Utc>,
    stored: Stored,
}

/// The rows of a run of events, locked in its transaction.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    wallets: BTreeMap<String, Wallet>,
    payments: HashMap<Uuid, Payment>,
    /// Admin changes recorded before the run, or by it.
    changes: HashSet<Uuid>,
    new_changes: ChangeColumns,
}

/// What a run needs locked.
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    pub(crate) orders: Vec<Uuid>,
    pub(crate) customers: Vec<String>,
    pub(crate) changes: Vec<Uuid>,
}

/// A wallet would go below zero, which its table refuses: the run goes
/// again one event at a time, and the database says which event.
#[derive(Debug, thiserror::Error)]
#[error("wallet {customer_id} would go below zero")]
pub(crate) struct Overdrawn {
    pub(crate) customer_id: String,
}

type PaymentRow = (
    Uuid,
    String,
    i64,
    String,
    String,
    i64,
    i64,
    Option<serde_json::Value>,
    DateTime<Utc>,
);

impl Ledger {
    /// Locks the payments of `wanted.orders`, then the wallets of
    /// `wanted.customers` and of those payments, in key order so that two
    /// runs cannot deadlock; reads which of `wanted.changes` are recorded.
    pub(crate) async fn lock(conn: &mut PgConnection, wanted: Wanted) -> Result<Self, sqlx::Error> {
        let Wanted {
            mut orders,
            mut customers,
            changes,
        } = wanted;
        orders.sort_unstable();
        orders.dedup();
        let mut ledger = Ledger::default();
        let rows: Vec<PaymentRow> = sqlx::query_as(
            "SELECT order_id, customer_id, amount_cents, currency, status, charged_cents,
                    refunded_cents, completed_event, created_at
             FROM payments WHERE order_id = ANY($1) ORDER BY order_id FOR UPDATE",
        )
        .bind(&orders)
        .fetch_all(&mut *conn)
        .await?;
        for (order_id, customer_id, amount, currency, status, charged, refunded, event, at) in rows
        {
            customers.push(customer_id.clone());
            let payment = Payment {
                customer_id,
                amount_cents: amount,
                currency,
                status: status_of(&status)?,
                charged_cents: charged,
                refunded_cents: refunded,
                completed_event: event,
                created_at: at,
                stored: Stored::Same,
            };
            ledger.payments.insert(order_id, payment);
        }
        customers.sort_unstable();
        customers.dedup();
        let wallets: Vec<(String, i64, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT customer_id, balance_cents, currency, updated_at FROM wallets
             WHERE customer_id = ANY($1) ORDER BY customer_id FOR UPDATE",
        )
        .bind(&customers)
        .fetch_all(&mut *conn)
        .await?;
        for (customer_id, balance_cents, currency, updated_at) in wallets {
            let wallet = Wallet {
                balance_cents,
                currency,
                updated_at,
                stored: Stored::Same,
            };
            ledger.wallets.insert(customer_id, wallet);
        }
        if !changes.is_empty() {
            let known: Vec<Uuid> =
                sqlx::query_scalar("SELECT event_id FROM wallet_changes WHERE event_id = ANY($1)")
                    .bind(&changes)
                    .fetch_all(conn)
                    .await?;
            ledger.changes.extend(known);
        }
        Ok(ledger)
    }

    /// The order's payment, if the service decided it.
    pub(crate) fn payment(&self, order_id: Uuid) -> Option<&Payment> {
        self.payments.get(&order_id)
    }

    /// Records the admin change `change`; `false` when it is recorded
    /// already (as `db::record_wallet_change`).
    pub(crate) fn record_wallet_change(
        &mut self,
        change: &EventMeta,
        customer_id: &str,
        delta_cents: i64,
    ) -> bool {
        if !self.changes.insert(change.event_id) {
            return false;
        }
        let new = &mut self.new_changes;
        new.event_id.push(change.event_id);
        new.customer_id.push(customer_id.to_owned());
        new.delta_cents.push(delta_cents);
        new.applied_at.push(change.occurred_at);
        true
    }

    /// Adds `delta` to the wallet, made empty as of `at` if there is none
    /// (as the service did when it set it).
    pub(crate) fn reapply_wallet_change(
        &mut self,
        customer_id: &str,
        delta: i64,
        at: DateTime<Utc>,
    ) -> Result<(), Overdrawn> {
        self.wallets
            .entry(customer_id.to_owned())
            .or_insert_with(|| Wallet {
                balance_cents: 0,
                currency: "EUR".to_owned(),
                updated_at: at,
                stored: Stored::Absent,
            });
        self.credit(customer_id, delta, at)
    }

    /// Adds `delta` (negative: takes it away) to the wallet, if there is
    /// one, changed as of `at` (as `db::credit`).
    fn credit(
        &mut self,
        customer_id: &str,
        delta: i64,
        at: DateTime<Utc>,
    ) -> Result<(), Overdrawn> {
        let Some(wallet) = self.wallets.get_mut(customer_id) else {
            return Ok(());
        };
        wallet.balance_cents += delta;
        if wallet.balance_cents < 0 {
            return Err(Overdrawn {
                customer_id: customer_id.to_owned(),
            });
        }
        wallet.updated_at = wallet.updated_at.max(at);
        wallet.stored.changed();
        Ok(())
    }

    /// Debits the wallet and records the payment as COMPLETED, announced by
    /// `completed` (as `db::charge`).
    pub(crate) fn charge(
        &mut self,
        order_id: Uuid,
        customer_id: &str,
        amount_cents: i64,
        currency: &str,
        completed: &EventMeta,
    ) -> Result<(), PaymentError> {
        self.credit(customer_id, -amount_cents, completed.occurred_at)?;
        let event = serde_json::to_value(completed).map_err(PaymentError::Encode)?;
        let charged = Charged {
            currency: currency.to_owned(),
            event,
        };
        self.record(
            order_id,
            customer_id,
            amount_cents,
            "COMPLETED",
            completed.occurred_at,
            Some(charged),
        );
        Ok(())
    }

    /// Records a decision that moved no money (as
    /// `db::record_without_charge`).
    pub(crate) fn record_without_charge(
        &mut self,
        order_id: Uuid,
        customer_id: &str,
        amount_cents: i64,
        status: &'static str,
        at: DateTime<Utc>,
    ) {
        self.record(order_id, customer_id, amount_cents, status, at, None);
    }

    /// The order's payment, made by this run (as `db::record`).
    fn record(
        &mut self,
        order_id: Uuid,
        customer_id: &str,
        amount_cents: i64,
        status: &'static str,
        at: DateTime<Utc>,
        charged: Option<Charged>,
    ) {
        let charged_cents = if charged.is_some() { amount_cents } else { 0 };
        let (currency, completed_event) =
            charged.map_or(("EUR".to_owned(), None), |c| (c.currency, Some(c.event)));
        let payment = Payment {
            customer_id: customer_id.to_owned(),
            amount_cents,
            currency,
            status,
            charged_cents,
            refunded_cents: 0,
            completed_event,
            created_at: at,
            stored: Stored::Absent,
        };
        self.payments.insert(order_id, payment);
    }

    /// Credits a COMPLETED payment back to its wallet and marks it
    /// REFUNDED, as of `at` (as `db::refund`).
    pub(crate) fn refund(&mut self, order_id: Uuid, at: DateTime<Utc>) -> Result<(), Overdrawn> {
        let Some(payment) = self.payments.get_mut(&order_id) else {
            return Ok(());
        };
        payment.status = "REFUNDED";
        payment.refunded_cents = payment.charged_cents;
        payment.stored.changed();
        let (customer_id, charged) = (payment.customer_id.clone(), payment.charged_cents);
        self.credit(&customer_id, charged, at)
    }

    /// Writes what the run made and changed, with a statement per table and
    /// kind of change.
    pub(crate) async fn save(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let mut made = WalletColumns::default();
        let mut changed = WalletColumns::default();
        for (customer_id, wallet) in self.wallets {
            match wallet.stored {
                Stored::Absent => made.push(customer_id, wallet),
                Stored::Changed => changed.push(customer_id, wallet),
                Stored::Same => {}
            }
        }
        if !made.customer_id.is_empty() {
            sqlx::query(
                "INSERT INTO wallets (customer_id, balance_cents, currency, updated_at)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[])",
            )
            .bind(&made.customer_id)
            .bind(&made.balance_cents)
            .bind(&made.currency)
            .bind(&made.updated_at)
            .execute(&mut *conn)
            .await?;
        }
        if !changed.customer_id.is_empty() {
            // Locked since `lock`: the run's copy is the row.
            sqlx::query(
                "UPDATE wallets w SET balance_cents = u.balance, updated_at = u.at
                 FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS u(customer_id, balance, at)
                 WHERE w.customer_id = u.customer_id",
            )
            .bind(&changed.customer_id)
            .bind(&changed.balance_cents)
            .bind(&changed.updated_at)
            .execute(&mut *conn)
            .await?;
        }
        let new = self.new_changes;
        if !new.event_id.is_empty() {
            sqlx::query(
                "INSERT INTO wallet_changes (event_id, customer_id, delta_cents, applied_at)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::timestamptz[])",
            )
            .bind(&new.event_id)
            .bind(&new.customer_id)
            .bind(&new.delta_cents)
            .bind(&new.applied_at)
            .execute(&mut *conn)
            .await?;
        }
        let mut made = PaymentColumns::default();
        let mut changed = PaymentColumns::default();
        for (order_id, payment) in self.payments {
            match payment.stored {
                Stored::Absent => made.push(order_id, payment),
                Stored::Changed => changed.push(order_id, payment),
                Stored::Same => {}
            }
        }
        if !made.order_id.is_empty() {
            sqlx::query(
                "INSERT INTO payments (order_id, payment_id, customer_id, amount_cents, currency,
                     status, charged_cents, refunded_cents, completed_event, created_at)
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::text[],
                     $6::text[], $7::bigint[], $8::bigint[], $9::jsonb[], $10::timestamptz[])",
            )
            .bind(&made.order_id)
            .bind(&made.payment_id)
            .bind(&made.customer_id)
            .bind(&made.amount_cents)
            .bind(&made.currency)
            .bind(&made.status)
            .bind(&made.charged_cents)
            .bind(&made.refunded_cents)
            .bind(&made.completed_event)
            .bind(&made.created_at)
            .execute(&mut *conn)
            .await?;
        }
        if !changed.order_id.is_empty() {
            sqlx::query(
                "UPDATE payments p SET status = u.status, refunded_cents = u.refunded
                 FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS u(order_id, status, refunded)
                 WHERE p.order_id = u.order_id",
            )
            .bind(&changed.order_id)
            .bind(&changed.status)
            .bind(&changed.refunded_cents)
            .execute(conn)
            .await?;
        }
        Ok(())
    }
}

/// What a payment that moved money records besides its amount.
struct Charged {
    currency: String,
    /// The envelope of the `PaymentCompleted` that announced it.
    event: serde_json::Value,
}

/// Why a charge could not be recorded in memory.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PaymentError {
    #[error(transparent)]
    Overdrawn(#[from] Overdrawn),
    #[error("encoding the PaymentCompleted envelope: {0}")]
    Encode(serde_json::Error),
}

fn status_of(text: &str) -> Result<&'static str, sqlx::Error> {
    ["COMPLETED", "REFUNDED", "DECLINED", "VOIDED"]
        .into_iter()
        .find(|s| *s == text)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown payment status {text:?}").into()))
}

/// Admin changes the run recorded, column by column.
#[derive(Debug, Default)]
struct ChangeColumns {
    event_id: Vec<Uuid>,
    customer_id: Vec<String>,
    delta_cents: Vec<i64>,
    applied_at: Vec<DateTime<Utc>>,
}

#[derive(Default)]
struct WalletColumns {
    customer_id: Vec<String>,
    balance_cents: Vec<i64>,
    currency: Vec<String>,
    updated_at: Vec<DateTime<Utc>>,
}

impl WalletColumns {
    fn push(&mut self, customer_id: String, wallet: Wallet) {
        self.customer_id.push(customer_id);
        self.balance_cents.push(wallet.balance_cents);
        self.currency.push(wallet.currency);
        self.updated_at.push(wallet.updated_at);
    }
}

#[derive(Default)]
struct PaymentColumns {
    order_id: Vec<Uuid>,
    payment_id: Vec<Uuid>,
    customer_id: Vec<String>,
    amount_cents: Vec<i64>,
    currency: Vec<String>,
    status: Vec<&'static str>,
    charged_cents: Vec<i64>,
    refunded_cents: Vec<i64>,
    completed_event: Vec<Option<serde_json::Value>>,
    created_at: Vec<DateTime<Utc>>,
}

impl PaymentColumns {
    fn push(&mut self, order_id: Uuid, payment: Payment) {
        self.order_id.push(order_id);
        self.payment_id.push(payment_id(order_id));
        self.customer_id.push(payment.customer_id);
        self.amount_cents.push(payment.amount_cents);
        self.currency.push(payment.currency);
        self.status.push(payment.status);
        self.charged_cents.push(payment.charged_cents);
        self.refunded_cents.push(payment.refunded_cents);
        self.completed_event.push(payment.completed_event);
        self.created_at.push(payment.created_at);
    }
}
