//! `choreo offsets`: where each service's consumer group stands on its
//! input topics: committed offset, end and lag per partition, and which
//! replica holds it. Reading committed offsets and describing the group do
//! not join it, so it is safe on a live platform, and it is what an
//! operator looks at before and after a replay, or when one replica lags.

use crate::setup::BrokerArgs;
use anyhow::Context;
use choreo_events::SUBSCRIPTIONS;
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub(crate) struct OffsetsArgs {
    /// Only this service's group (order, inventory, payment or shipping).
    #[arg(long)]
    service: Option<String>,
    /// Print JSON, one array of partitions.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerArgs,
}

#[derive(Debug, Serialize)]
struct Row {
    service: &'static str,
    group: String,
    topic: String,
    partition: i32,
    /// The next offset the group will read; null when it never committed.
    committed: Option<i64>,
    end: i64,
    lag: i64,
    /// The member holding the partition, by its client id (a replica's
    /// instance id, `inventory-1`); null while no member holds it.
    held_by: Option<String>,
}

pub(crate) async fn run(args: OffsetsArgs) -> anyhow::Result<()> {
    let kafka = args.broker.settings()?;
    let services: Vec<_> = SUBSCRIPTIONS
        .iter()
        .filter(|(name, _)| args.service.as_deref().is_none_or(|s| s == *name))
        .collect();
    if let (Some(service), true) = (&args.service, services.is_empty()) {
        anyhow::bail!(
            "no service {service:?}; the services are {}",
            SUBSCRIPTIONS.map(|(name, _)| name).join(", ")
        );
    }
    let topics = kafka.topics();
    let mut rows = Vec::new();
    for (service, inputs) in services {
        let group = format!("{}{service}", kafka.topic_prefix);
        let names: Vec<String> = inputs.iter().map(|t| topics.name(*t)).collect();
        let partitions = choreo_messaging::admin::group_lag(&kafka, &group, &names)
            .await
            .with_context(|| format!("reading the offsets of group {group}"))?;
        let mut holders = choreo_messaging::admin::group_holders(&kafka, &group)
            .await
            .with_context(|| format!("describing group {group}"))?;
        rows.extend(partitions.into_iter().map(|p| Row {
            service,
            group: group.clone(),
            held_by: holders.remove(&(p.topic.clone(), p.partition)),
            lag: p.lag(),
            topic: p.topic,
            partition: p.partition,
            committed: p.committed,
            end: p.end,
        }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<10} {:<24} {:>9} {:>10} {:>10} {:>8}  HELD BY",
        "SERVICE", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"
    );
    for row in &rows {
        println!(
            "{:<10} {:<24} {:>9} {:>10} {:>10} {:>8}  {}",
            row.service,
            row.topic,
            row.partition,
            row.committed.map_or("-".to_owned(), |c| c.to_string()),
            row.end,
            row.lag,
            row.held_by.as_deref().unwrap_or("-")
        );
    }
    let total: i64 = rows.iter().map(|r| r.lag).sum();
    println!("{} partitions, lag {total} in all", rows.len());
    Ok(())
}
