//! What a service's handler really emits for each record, compared with
//! what [`choreo_events::choreography`] says it may: each application's
//! emissions are the outbox rows it added.

use anyhow::Context;
use choreo_events::{Record, choreography::Consumer};
use choreo_messaging::{Delivery, Handler, HandlerError};
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};

/// The records a handler emitted, per record it applied.
#[derive(Debug, Default)]
pub struct Emissions {
    seen: BTreeMap<Record, BTreeSet<Record>>,
}

impl Emissions {
    /// [`choreo_messaging::apply`], noting what the application emitted.
    /// Applications must not run concurrently on `pool`.
    ///
    /// # Errors
    /// The handler's error, or the database's.
    pub async fn apply<H: Handler>(
        &mut self,
        pool: &PgPool,
        handler: &H,
        delivery: &Delivery,
    ) -> anyhow::Result<bool> {
        let before: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM outbox")
            .fetch_one(pool)
            .await?;
        let applied = choreo_messaging::apply(pool, handler, delivery)
            .await
            .map_err(|e: HandlerError| anyhow::anyhow!("{e:?}"))?;
        let names: Vec<String> =
            sqlx::query_scalar("SELECT record_name FROM outbox WHERE id > $1 ORDER BY id")
                .bind(before)
                .fetch_all(pool)
                .await?;
        let record = delivery.message.record().context("a Choreo record")?;
        if !applied && names.is_empty() {
            // A duplicate or a record passed over: not a reaction.
            return Ok(false);
        }
        let emitted = self.seen.entry(record).or_default();
        for name in names {
            emitted.insert(Record::from_full_name(&name).context("a Choreo record")?);
        }
        Ok(applied)
    }

    /// Every emission seen is one `consumer`'s reaction lists.
    ///
    /// # Errors
    /// Names the record and the emission the table lacks.
    pub fn within(&self, consumer: &Consumer) -> anyhow::Result<()> {
        for (record, emitted) in &self.seen {
            let listed = consumer.reaction(*record).map_or(&[][..], |r| r.emits);
            for e in emitted {
                anyhow::ensure!(
                    listed.contains(e),
                    "{} emitted {e} on {record}, which choreography::{} does not list",
                    consumer.service,
                    consumer.service.to_uppercase()
                );
            }
        }
        Ok(())
    }

    /// [`Emissions::within`], and every reaction `consumer` lists happened
    /// with every emission it lists.
    ///
    /// # Errors
    /// Names what the table lists and the handler never did.
    pub fn matches(&self, consumer: &Consumer) -> anyhow::Result<()> {
        self.within(consumer)?;
        for reaction in consumer.reactions {
            let emitted = self
                .seen
                .get(&reaction.on)
                .with_context(|| format!("{} never applied {}", consumer.service, reaction.on))?;
            for e in reaction.emits {
                anyhow::ensure!(
                    emitted.contains(e),
                    "{} never emitted {e} on {}, which the choreography lists",
                    consumer.service,
                    reaction.on
                );
            }
        }
        Ok(())
    }
}
