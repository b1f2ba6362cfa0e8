//! `choreo replay` refuses to run beside a live service, and brings a
//! service restored from a backup back to the truth (twice: the second
//! run changes nothing).

use crate::helpers::*;
use anyhow::Context;
use choreo_testkit::wait_until;
use serde_json::Value;
use tokio::process::Command;

impl Platform<'_> {
    /// A replay beside the running service is refused, and moves nothing;
    /// a dry run shows what would be re-read and moves nothing either.
    pub(crate) async fn replay_refused_beside_a_running_service(&self) -> anyhow::Result<()> {
        let group_before = rows_of_offsets(self.broker_port, "inventory").await?;
        let refused = self.replay("inventory", &["--from-beginning"]).await?;
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{said}");
        assert!(said.contains("inventory is running"), "{said}");

        let dry = self
            .replay("inventory", &["--from-beginning", "--dry-run", "--json"])
            .await?;
        assert!(
            dry.status.success(),
            "{}",
            String::from_utf8_lossy(&dry.stderr)
        );
        let plan: Vec<Value> = serde_json::from_slice(&dry.stdout)?;
        let (own, plan): (Vec<Value>, Vec<Value>) =
            plan.into_iter().partition(|r| r["phase"] == "own");
        assert_eq!(
            own.len(),
            4,
            "inventory's own topic is read first: {own:#?}"
        );
        assert!(
            own.iter().all(|r| r["topic"] == "inventory.events"),
            "{own:#?}"
        );
        let events: i64 = plan.iter().filter_map(|r| r["to"].as_i64()).sum::<i64>()
            - plan.iter().filter_map(|r| r["from"].as_i64()).sum::<i64>();
        let ends: i64 = group_before.iter().filter_map(|r| r["end"].as_i64()).sum();
        assert_eq!(plan.len(), 4, "{plan:#?}");
        assert!(plan.iter().all(|r| r["phase"] == "inputs"), "{plan:#?}");
        assert_eq!(
            events, ends,
            "the whole of inventory's input, from its start: {plan:#?}"
        );
        assert_eq!(
            rows_of_offsets(self.broker_port, "inventory").await?,
            group_before
        );

        // A window that reaches back further than the inbox remembers is
        // refused, before anything is stopped or moved, unless forced.
        // (Here the inbox is told to remember a second.)
        let short_memory = |args: &[&str]| -> anyhow::Result<Command> {
            let mut command = self.command_as("inventory")?;
            command
                .args(["replay", "--service", "inventory", "--from-beginning"])
                .args(args)
                .env("CHOREO_RETENTION__INBOX_DAYS", "0.00001");
            Ok(command)
        };
        let refused = short_memory(&[])?.output().await?;
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{said}");
        assert!(
            said.contains("further than inventory's inbox remembers")
                && said.contains("What could be applied twice")
                && said.contains("--force"),
            "{said}"
        );
        assert!(
            !said.contains("inventory is running"),
            "refused first: {said}"
        );
        let forced_dry = short_memory(&["--dry-run", "--force"])?.output().await?;
        let said = String::from_utf8_lossy(&forced_dry.stderr);
        assert!(forced_dry.status.success(), "{said}");
        assert!(
            said.contains("with --force, a replay of this window would go ahead"),
            "{said}"
        );
        assert_eq!(
            rows_of_offsets(self.broker_port, "inventory").await?,
            group_before
        );

        let unknown = self
            .replay(
                "inventory",
                &["--from-beginning", "--topic", "payment", "--dry-run"],
            )
            .await?;
        let said = String::from_utf8_lossy(&unknown.stderr);
        assert!(!unknown.status.success());
        assert!(
            said.contains("inventory does not consume \"payment\""),
            "{said}"
        );
        Ok(())
    }

    /// The recovery drill of the README's runbook: back up the service's
    /// database, run more orders, restore the backup (the service forgets
    /// them), replay from the backup's time. The service's state, every
    /// order's outcome and the provider's ledger are then what they were
    /// before the incident; replaying again, twice, applies nothing.
    pub(crate) async fn restore_drill(&self, service: &str, contended: bool) -> anyhow::Result<()> {
        let db = format!("{}{service}", self.db_prefix);
        let dump = self.data.join(format!("{service}.dump"));
        let backup_at = chrono::Utc::now();
        let dumped = Command::new("pg_dump")
            .args(["--format=custom", "--file"])
            .arg(&dump)
            .arg(database_url(&db))
            .status()
            .await?;
        anyhow::ensure!(dumped.success(), "pg_dump {db}: {dumped}");
        self.place_and_decide(4).await?;
        let mut keyed = None;
        if contended {
            match service {
                "inventory" => self.contend().await?,
                "payment" => self.contend_for_a_wallet().await?,
                _ => keyed = Some(self.decide_in_order().await?),
            }
        }
        // An order ends before every service has read its last event
        // (inventory ships on OrderConfirmed): the truth is the state once
        // every saga has run out.
        self.wait_quiet().await?;
        let (truth, outcomes, ledger) = (
            self.state(service).await?,
            self.orders().await?,
            self.provider_ledger().await?,
        );

        // The incident: the service stopped, its database restored.
        std::fs::write(self.hold_file(service), "drill\n")?;
        wait_until(&format!("{service} to stop"), DEADLINE, || async {
            pid_of(self.data, service).is_none().then_some(())
        })
        .await?;
        let restored = Command::new("pg_restore")
            .args(["--clean", "--if-exists", "--dbname"])
            .arg(database_url(&db))
            .arg(&dump)
            .status()
            .await?;
        anyhow::ensure!(restored.success(), "pg_restore {db}: {restored}");
        assert_ne!(
            self.state(service).await?,
            truth,
            "the backup predates the last orders"
        );

        let from = backup_at.to_rfc3339();
        let summary = self.replayed(service, &["--from-timestamp", &from]).await?;
        let applied: i64 = summary["partitions"]
            .as_array()
            .context("partitions")?
            .iter()
            .filter_map(|p| p["tally"]["applied"].as_i64())
            .sum();
        assert!(
            applied >= 4,
            "the forgotten orders' events are applied again: {summary:#}"
        );
        std::fs::remove_file(self.hold_file(service))?;
        self.wait_running(service).await?;
        assert_eq!(
            self.state(service).await?,
            truth,
            "{service} is back where it was"
        );
        assert_eq!(
            self.orders().await?,
            outcomes,
            "no order changed its outcome"
        );
        assert_eq!(
            self.provider_ledger().await?,
            ledger,
            "nobody was charged again"
        );
        if let Some((key, location)) = &keyed {
            assert_eq!(
                self.place_keyed(key).await?,
                (location.clone(), true),
                "a retry after the incident finds the order its key placed"
            );
        }

        // Replaying everything, twice, finds it all applied. The replay
        // stops the supervised service and starts it again itself.
        for _ in 0..2 {
            let summary = self.replayed(service, &["--from-beginning"]).await?;
            let partitions = summary["partitions"].as_array().context("partitions")?;
            let (applied, reread): (i64, i64) = partitions.iter().fold((0, 0), |(a, r), p| {
                (
                    a + p["tally"]["applied"].as_i64().unwrap_or(0),
                    r + p["tally"]["reread"].as_i64().unwrap_or(0),
                )
            });
            assert_eq!(applied, 0, "{summary:#}");
            assert!(reread > 0, "{summary:#}");
            self.wait_running(service).await?;
            assert_eq!(self.state(service).await?, truth);
            assert_eq!(self.provider_ledger().await?, ledger);
        }
        assert_eq!(self.orders().await?, outcomes);

        // And the platform goes on: a new order, from a customer with the
        // money for it, runs the whole saga.
        let customer = format!("after-the-{service}-drill");
        self.edge.set_wallet(&customer, 1_000_000).await?;
        let mut body = self.body.clone();
        body["customer_id"] = customer.into();
        let id = self.edge.place_as(self.edge.admin(), &body).await?;
        let order = wait_until("the new order to end", DEADLINE, || async {
            let order = self.edge.order(&id, 5).await.ok()?;
            (order["status"] != "PENDING").then_some(order)
        })
        .await?;
        assert_eq!(
            order["status"], "CONFIRMED",
            "a new order confirms after the {service} drill: {order:#}"
        );
        Ok(())
    }
}
