//! The order service binary's `rebuild-timeline` command (`choreo-order
//! rebuild-timeline`, which `choreo rebuild order-timeline` runs): rebuild
//! the order timeline from the topics alone.
//!
//! It re-reads the order service's own topic and its inputs from the
//! beginning and records every step again in the timeline `GET
//! /v1/orders/{id}` shows, swapping the old timeline for the new one in one
//! transaction, for every order whose whole saga the topics still hold
//! ([`super`]). Like a replay, it runs with the service's own configuration
//! and refuses beside the running service, or holds it when `choreo up`
//! supervises it. It moves no offset and goes around the inbox: it is a read
//! model rebuilt, not events applied, so nothing is decided and nothing is
//! published.

use super::{Rebuilt, TimelineRebuild};
use crate::Settings;
use anyhow::Context;
use choreo_events::RegistryClient;
use choreo_messaging::replay::{self, Phase, Request, Start};
use choreo_service::{Tool, replay::stop_on_ctrl_c, run_dir::stop_service};
use clap::{CommandFactory, FromArgMatches};

/// The command, for [`crate::OrderService`]'s tools.
pub(crate) const TOOL: Tool<Settings> = Tool {
    command: TimelineArgs::command,
    run: |settings, matches| {
        Box::pin(async move {
            let args = TimelineArgs::from_arg_matches(&matches)?;
            order_timeline(args, settings).await
        })
    },
};

/// Rebuild the order timeline (each order's saga steps, as `GET
/// /v1/orders/{id}` shows them) from `order.events` and the topics the
/// order service follows.
#[derive(Debug, clap::Parser)]
#[command(name = "rebuild-timeline")]
struct TimelineArgs {
    /// Rebuild and report what would change, then roll back. It does not
    /// stop the service, nor hold up its writes.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The data folder of the `choreo up` that supervises the order
    /// service, if one does: the service is held (stopped) for the rebuild
    /// and started again after it.
    #[arg(long, env = "CHOREO_DATA_DIR", default_value = ".choreo")]
    data_dir: std::path::PathBuf,
}

async fn order_timeline(args: TimelineArgs, settings: Settings) -> anyhow::Result<()> {
    let service = &settings.service;
    let kafka = &service.kafka;
    let group = format!("{}order", kafka.topic_prefix);
    let _hold = if args.dry_run {
        None
    } else {
        stop_service(&args.data_dir, "order", service, &group).await?
    };
    let names = kafka.topics();
    let request = Request {
        group: group.clone(),
        topics: super::topics().into_iter().map(|t| names.name(t)).collect(),
        partition: None,
        start: Start::Beginning,
        until: None,
    };
    let ranges = replay::plan(kafka, &request)
        .await
        .context("finding what the order service's topics hold")?;
    let total: i64 = ranges.iter().map(|r| r.len()).sum();
    // A dry run changes nothing, its schema included: it does not migrate.
    let pool = if args.dry_run {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&service.database_url)
            .await
            .map_err(anyhow::Error::from)
    } else {
        choreo_service::connect(service, crate::migrations())
            .await
            .map_err(anyhow::Error::from)
    }
    .context("connecting to the order service's database")?;
    let stop = stop_on_ctrl_c();

    let mut rebuild = TimelineRebuild::begin(&pool)
        .await
        .context("starting the rebuild")?;
    let mut scan = replay::Scan::open(
        kafka,
        &format!("{group}-rebuild"),
        RegistryClient::new(
            &service.registry_url,
            choreo_kit::operator::for_service_tool(&service.internal_auth, &args.data_dir)?,
        ),
        Phase::Inputs,
        ranges,
    )?;
    let bar = indicatif::ProgressBar::new(total.max(0) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "  rebuilding [{bar:30}] {pos}/{len} events  {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    while let Some(delivery) = scan.next(&stop).await.context("reading the topics")? {
        rebuild.add(&delivery).await.context("recording a step")?;
        bar.set_position(scan.partitions().iter().map(|p| p.tally.reread).sum());
    }
    bar.finish_and_clear();
    // Dropping the rebuild rolls its transaction back.
    anyhow::ensure!(
        scan.finished(),
        "interrupted: the timeline is as it was; run the rebuild again"
    );
    let undecodable: u64 = scan.partitions().iter().map(|p| p.tally.ignored).sum();
    let read: u64 = scan.partitions().iter().map(|p| p.tally.reread).sum();
    let rebuilt = rebuild
        .finish(!args.dry_run)
        .await
        .context("replacing the timeline")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rebuilt)?);
    } else {
        print(&rebuilt, read, undecodable);
    }
    Ok(())
}

fn print(r: &Rebuilt, read: u64, undecodable: u64) {
    let verb = if r.committed {
        "rebuilt"
    } else {
        "would rebuild (dry run, rolled back)"
    };
    println!(
        "order timeline {verb} from {read} records on the topics: {} steps read, {} entries (was {}), \
         {} added, {} removed, {} orders changed",
        r.steps_read, r.entries_after, r.entries_before, r.added, r.removed, r.orders_changed
    );
    println!(
        "{} orders rebuilt; {} kept as they were (the topics no longer hold their OrderPlaced, \
         or some of their events still wait in the outbox)",
        r.orders_rebuilt, r.orders_kept
    );
    if undecodable > 0 {
        println!(
            "{undecodable} records are no readable events (see the dead letters: choreo dlq list); passed over"
        );
    }
    if !r.orders_missing.is_empty() {
        let shown: Vec<String> = r
            .orders_missing
            .iter()
            .take(5)
            .map(|id| id.to_string())
            .collect();
        println!(
            "{} orders on the topics are not in the database ({}{}); their steps are passed over. \
             Restore them with: choreo replay --service order --from-beginning",
            r.orders_missing.len(),
            shown.join(", "),
            if r.orders_missing.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        );
    }
}
