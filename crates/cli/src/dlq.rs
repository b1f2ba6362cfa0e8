//! `choreo dlq`: look at the events a service could not apply, and put them
//! back on their source topic once the cause is fixed.

use crate::setup::BrokerArgs;
use anyhow::{Context, bail};
use choreo_events::{Decoder, RegistryClient, SAGA_SERVICES};
use choreo_messaging::dead_letter::{self, DeadLetter};
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub(crate) struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
    #[command(flatten)]
    broker: BrokerArgs,
}

#[derive(Debug, clap::Subcommand)]
enum DlqCommand {
    /// List dead letters, oldest first, with their state (pending or redriven).
    List {
        /// Only this service's (order, inventory, payment or shipping).
        #[arg(long)]
        service: Option<String>,
        /// Only those not redriven yet.
        #[arg(long)]
        pending: bool,
        /// Print JSON, one array of dead letters.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter whole: error, source, headers and value.
    Show {
        id: Uuid,
        /// Decodes the value with the schema registry when it can.
        #[arg(
            long,
            env = "CHOREO_REGISTRY_URL",
            default_value = "http://127.0.0.1:8081"
        )]
        registry_url: String,
        /// Where `choreo up` keeps the admin key the registry is called
        /// with (unless `CHOREO_INTERNAL_AUTH__ADMIN_SECRET` is set).
        #[arg(long, env = "CHOREO_DATA_DIR", default_value = ".choreo")]
        data_dir: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back on their source topic, for the service that
    /// failed them; they are processed once.
    Redrive {
        /// Only this service's.
        #[arg(long)]
        service: Option<String>,
        /// These dead letters (comma-separated or repeated).
        #[arg(
            long,
            value_delimiter = ',',
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        ids: Vec<Uuid>,
        /// Every pending dead letter (of `--service`, if given).
        #[arg(long)]
        all: bool,
        /// Redrive dead letters that were redriven before.
        #[arg(long)]
        force: bool,
    },
}

pub(crate) async fn run(args: DlqArgs) -> anyhow::Result<()> {
    let kafka = args.broker.settings()?;
    match args.command {
        DlqCommand::List {
            service,
            pending,
            json,
        } => {
            let mut letters = read(&kafka, service.as_deref()).await?;
            if pending {
                letters.retain(|l| l.redriven_at.is_none());
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&letters)?);
            } else {
                print_table(&letters);
            }
        }
        DlqCommand::Show {
            id,
            registry_url,
            data_dir,
            json,
        } => {
            let letters = read(&kafka, None).await?;
            let letter = letters
                .iter()
                .find(|l| l.id == id)
                .with_context(|| format!("no dead letter {id}"))?;
            // Without the admin key the registry cannot be asked: the
            // letter is still shown, its value undecoded, saying why.
            let decoded = match (letter.value(), choreo_kit::operator::operator(&data_dir)) {
                (Some(value), Ok(operator)) => {
                    Decoder::new(RegistryClient::new(&registry_url, operator))
                        .decode(value)
                        .await
                        .and_then(|d| d.to_json())
                        .map_err(|e| choreo_telemetry::error_chain(&e))
                }
                (Some(_), Err(no_key)) => Err(choreo_telemetry::error_chain(&no_key)),
                (None, _) => Err("no value".to_owned()),
            };
            if json {
                let mut out = serde_json::to_value(letter)?;
                out["decoded"] = match &decoded {
                    Ok(v) => v.clone(),
                    Err(e) => serde_json::json!({ "error": e }),
                };
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_letter(letter, &decoded);
            }
        }
        DlqCommand::Redrive {
            service,
            ids,
            all,
            force,
        } => {
            let letters = read(&kafka, service.as_deref()).await?;
            let chosen = choose(&letters, &ids, all, force)?;
            if chosen.is_empty() {
                println!("nothing to redrive");
                return Ok(());
            }
            dead_letter::redrive(&kafka, &chosen)
                .await
                .context("redriving")?;
            for letter in &chosen {
                println!(
                    "redriven {} to {}/{} for {}",
                    letter.id, letter.source_topic, letter.source_partition, letter.service
                );
            }
        }
    }
    Ok(())
}

/// The dead letters of `service`, or of every saga service.
async fn read(
    kafka: &choreo_messaging::KafkaSettings,
    service: Option<&str>,
) -> anyhow::Result<Vec<DeadLetter>> {
    let services: Vec<&str> = match service {
        Some(s) if SAGA_SERVICES.contains(&s) => vec![s],
        Some(s) => bail!(
            "unknown service {s:?}: expected one of {}",
            SAGA_SERVICES.join(", ")
        ),
        None => SAGA_SERVICES.to_vec(),
    };
    let mut out = Vec::new();
    for s in services {
        out.extend(dead_letter::list(kafka, s).await.with_context(|| {
            format!(
                "reading {s}'s dead letters from {}",
                kafka.bootstrap_servers
            )
        })?);
    }
    Ok(out)
}

/// The letters to redrive. Asking for an unknown id, or (without `force`)
/// for one already redriven, redrives nothing: a typo must not half-run.
fn choose(
    letters: &[DeadLetter],
    ids: &[Uuid],
    all: bool,
    force: bool,
) -> anyhow::Result<Vec<DeadLetter>> {
    if all {
        return Ok(letters
            .iter()
            .filter(|l| force || l.redriven_at.is_none())
            .cloned()
            .collect());
    }
    let mut chosen = Vec::new();
    for id in ids {
        let letter = letters
            .iter()
            .find(|l| l.id == *id)
            .with_context(|| format!("no dead letter {id}; nothing was redriven"))?;
        if let (Some(at), false) = (letter.redriven_at, force) {
            bail!(
                "dead letter {id} was already redriven at {at}; pass --force to redrive it again (nothing was redriven)"
            );
        }
        if !chosen.iter().any(|c: &DeadLetter| c.id == *id) {
            chosen.push(letter.clone());
        }
    }
    Ok(chosen)
}

fn state(letter: &DeadLetter) -> String {
    match letter.redriven_at {
        Some(at) => format!("redriven {}", at.format("%Y-%m-%d %H:%M:%S")),
        None => "pending".to_owned(),
    }
}

fn print_table(letters: &[DeadLetter]) {
    if letters.is_empty() {
        println!("no dead letters");
        return;
    }
    println!(
        "{:<36}  {:<9}  {:<28}  {:<19}  {:<28}  ERROR",
        "ID", "SERVICE", "SOURCE", "FAILED AT", "STATE"
    );
    for l in letters {
        let source = format!(
            "{}/{}@{}",
            l.source_topic, l.source_partition, l.source_offset
        );
        let failed = l
            .failed_at
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let error: String = l.error.chars().take(100).collect();
        println!(
            "{:<36}  {:<9}  {:<28}  {:<19}  {:<28}  {error}",
            l.id,
            l.service,
            source,
            failed,
            state(l)
        );
    }
}

fn print_letter(l: &DeadLetter, decoded: &Result<serde_json::Value, String>) {
    println!("id:         {}", l.id);
    println!("service:    {}", l.service);
    println!("state:      {}", state(l));
    println!("error:      {}", l.error);
    println!(
        "source:     {} partition {} offset {}",
        l.source_topic, l.source_partition, l.source_offset
    );
    if let Some(t) = l.failed_at {
        println!("failed at:  {}", t.to_rfc3339());
    }
    println!("key:        {}", l.key.as_deref().unwrap_or("(none)"));
    println!("headers:");
    for (k, v) in &l.headers {
        println!("  {k}: {}", v.as_deref().unwrap_or("(null)"));
    }
    println!(
        "value (hex): {}",
        l.value_hex.as_deref().unwrap_or("(none)")
    );
    match decoded {
        Ok(v) => println!(
            "value (decoded):\n{}",
            serde_json::to_string_pretty(v).unwrap_or_default()
        ),
        Err(e) => println!("value does not decode: {e}"),
    }
}
