//! `choreo offsets`: where each service's consumer group stands on its
//! input topics: committed offset, end and lag per partition. Reading
//! committed offsets does not join the group, so it is safe on a live
//! platform, and it is what an operator looks at before and after a replay.

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
        rows.extend(partitions.into_iter().map(|p| Row {
            service,
            group: group.clone(),
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
        "{:<10} {:<24} {:>9} {:>10} {:>10} {:>8}",
        "SERVICE", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"
    );
    for row in &rows {
        println!(
            "{:<10} {:<24} {:>9} {:>10} {:>10} {:>8}",
            row.service,
            row.topic,
            row.partition,
            row.committed.map_or("-".to_owned(), |c| c.to_string()),
            row.end,
            row.lag
        );
    }
    let total: i64 = rows.iter().map(|r| r.lag).sum();
    println!("{} partitions, lag {total} in all", rows.len());
    Ok(())
}
