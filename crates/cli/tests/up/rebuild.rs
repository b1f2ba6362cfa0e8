//! `choreo rebuild order-timeline` mends a damaged timeline from the topics.

use crate::helpers::*;
use anyhow::Context;
use serde_json::Value;

impl Platform<'_> {
    /// `choreo rebuild order-timeline --json`, checked to succeed.
    pub(crate) async fn rebuild(&self, args: &[&str]) -> anyhow::Result<Value> {
        let data = self.data.to_string_lossy().into_owned();
        let mut all = vec!["rebuild", "order-timeline", "--json", "--data-dir", &data];
        all.extend_from_slice(args);
        let out = self.as_service("order", &all).await?;
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        anyhow::ensure!(out.status.success(), "choreo rebuild failed: {printed}");
        serde_json::from_slice(&out.stdout).with_context(|| format!("a JSON report: {printed}"))
    }

    /// A bad deploy damaged the order timeline: it lost every
    /// StockReserved step and recorded a payment that never happened.
    /// `choreo rebuild order-timeline` shows what it would mend (and a dry
    /// run changes nothing), mends it from the topics alone, and a second
    /// rebuild finds nothing to mend.
    pub(crate) async fn rebuild_the_order_timeline(&self) -> anyhow::Result<()> {
        let truth = self.timeline().await?;
        let location = self.place(self.body).await?;
        self.wait_decided(&location).await?;
        self.wait_quiet().await?;
        let truth_with_it = self.timeline().await?;
        assert!(truth_with_it.len() > truth.len());
        let shown = |location: String| async move {
            let order: Value = self
                .edge
                .admin()
                .get(format!("{}{location}", self.edge.base()))
                .send()
                .await?
                .json()
                .await?;
            anyhow::Ok(order["timeline"].clone())
        };
        let before = shown(location.clone()).await?;

        let db = format!("{}order", self.db_prefix);
        let lost = self
            .number(
                "order",
                "SELECT count(*) FROM order_timeline WHERE event_type = 'StockReserved'",
            )
            .await?;
        assert!(lost > 0);
        execute(
            &db,
            "DELETE FROM order_timeline WHERE event_type = 'StockReserved'",
        )
        .await?;
        execute(
            &db,
            "INSERT INTO order_timeline (order_id, event_id, event_type, service, occurred_at)
             SELECT id, gen_random_uuid(), 'PaymentCompleted', 'payment', now() FROM orders ORDER BY id LIMIT 1",
        )
        .await?;
        let damaged = self.timeline().await?;
        assert_ne!(shown(location.clone()).await?, before);

        let dry = self.rebuild(&["--dry-run"]).await?;
        assert_eq!(dry["added"], lost, "{dry:#}");
        assert_eq!(dry["removed"], 1, "{dry:#}");
        assert_eq!(dry["committed"], false, "{dry:#}");
        assert_eq!(self.timeline().await?, damaged, "a dry run changes nothing");

        let rebuilt = self.rebuild(&[]).await?;
        assert_eq!(rebuilt["added"], lost, "{rebuilt:#}");
        assert_eq!(rebuilt["removed"], 1, "{rebuilt:#}");
        assert_eq!(rebuilt["committed"], true, "{rebuilt:#}");
        assert_eq!(
            rebuilt["orders_missing"],
            serde_json::json!([]),
            "{rebuilt:#}"
        );
        self.wait_running("order").await?;
        assert_eq!(self.timeline().await?, truth_with_it);
        assert_eq!(
            shown(location.clone()).await?,
            before,
            "the order shows its steps again"
        );

        let again = self.rebuild(&[]).await?;
        assert_eq!(again["added"], 0, "{again:#}");
        assert_eq!(again["removed"], 0, "{again:#}");
        assert_eq!(again["entries_after"], truth_with_it.len(), "{again:#}");
        self.wait_running("order").await?;
        assert_eq!(self.timeline().await?, truth_with_it);
        Ok(())
    }
}
