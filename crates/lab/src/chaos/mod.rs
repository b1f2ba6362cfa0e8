//! `choreo chaos run SUITE…`: failure-injection suites.
//!
//! Each suite (a TOML file, `suite`) runs on a platform of its own: a fresh
//! broker, registry and services on fresh databases, started like `choreo
//! up` starts them. The runner seeds the catalog and wallets, drives the
//! load through the edge while it injects the suite's faults, heals them,
//! waits for every order to be decided, audits every service's database,
//! and judges (`report`): each order must end as its kind allows, the audit
//! must be clean, and so on. A report is printed, and written as JSON and
//! JUnit XML; the command exits 1 if any suite failed.

mod broker_proxy;
mod db_proxy;
mod faults;
mod persist;
mod report;
mod run;
mod suite;

use anyhow::Context;
use choreo_platform::up;
use std::path::{Path, PathBuf};
use suite::Suite;

#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    #[command(subcommand)]
    command: ChaosCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ChaosCommand {
    /// Run suite files, or every `*.toml` in the folders given.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Suite files or folders of them.
    #[arg(required = true)]
    suites: Vec<PathBuf>,
    /// Where the JSON and JUnit reports go.
    #[arg(long, default_value = "target/chaos")]
    report_dir: PathBuf,
    /// Run with this seed instead of each suite's own.
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    installation: up::Installation,
    /// Keep each run's databases and logs for a post-mortem.
    #[arg(long)]
    keep: bool,
    /// Plant a known bug in every saga service, to prove the suites catch
    /// it: such a run is expected to fail.
    #[arg(long, value_enum)]
    mutant: Option<Mutant>,
}

/// Bugs the runtime can be told to have (`choreo_messaging::fail_points`).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mutant {
    /// Commit each event's offset before applying it: a crash in between
    /// loses the event.
    CommitOffsetFirst,
    /// Charge the payment provider under a new idempotency key on every
    /// try: a charge retried after a timeout is taken twice.
    ProviderFreshKey,
}

impl Mutant {
    fn fail_points(self) -> String {
        use choreo_messaging::fail_points::{
            MUTANT_COMMIT_OFFSET_FIRST, MUTANT_PROVIDER_FRESH_KEY,
        };
        let point = match self {
            Mutant::CommitOffsetFirst => MUTANT_COMMIT_OFFSET_FIRST,
            Mutant::ProviderFreshKey => MUTANT_PROVIDER_FRESH_KEY,
        };
        format!("{point}=return")
    }
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<bool> {
    let ChaosCommand::Run(args) = args.command;
    let mut files = Vec::new();
    for path in &args.suites {
        files.extend(suite_files(path)?);
    }
    // Every suite is read and checked before the first one starts.
    let mut suites = Vec::new();
    for file in &files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let mut suite =
            Suite::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        if let Some(seed) = args.seed {
            suite.seed = seed;
        }
        suites.push(suite);
    }
    std::fs::create_dir_all(&args.report_dir)?;
    let bin_dir = args.installation.bin_dir()?;
    let tansu = args.installation.tansu();
    let pg_admin_url = &args.installation.pg_admin_url;

    let mut junit = quick_junit::Report::new("choreo chaos");
    let mut cases = quick_junit::TestSuite::new("suites");
    let mut all_passed = true;
    for suite in &suites {
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let workspace = run::Workspace {
            data_dir: std::env::temp_dir().join(format!("choreo-chaos-{}-{tag}", suite.name)),
            db_prefix: format!("choreo_t_chaos_{tag}_"),
            pg_admin_url: pg_admin_url.clone(),
            tansu: tansu.clone(),
            bin_dir: bin_dir.clone(),
            fail_points: args.mutant.map(Mutant::fail_points),
        };
        println!(
            "suite {}: {} orders, {} faults, seed {}",
            suite.name,
            suite.load.orders,
            suite.faults.len(),
            suite.seed
        );
        if !suite.description.is_empty() {
            println!("  {}", suite.description);
        }
        if let Some(mutant) = args.mutant {
            println!("  with the planted bug {mutant:?}: this run should fail");
        }
        let started = std::time::Instant::now();
        let result = run::run(suite, &workspace).await;
        if !args.keep {
            let names: Vec<String> = up::DATABASES
                .iter()
                .map(|s| format!("{}{s}", workspace.db_prefix))
                .collect();
            if let Err(e) = choreo_platform::setup::drop_databases(pg_admin_url, &names).await {
                tracing::warn!(error = %e, "dropping the run's databases");
            }
            let _ = std::fs::remove_dir_all(&workspace.data_dir);
        } else {
            println!(
                "  kept: {} and databases {}*",
                workspace.data_dir.display(),
                workspace.db_prefix
            );
        }
        let report = result.with_context(|| format!("suite {} could not run", suite.name))?;
        print!("{}", report.text());
        let json_path = args.report_dir.join(format!("{}.json", suite.name));
        std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)?;
        let mut case = report.junit_case();
        case.set_time(started.elapsed());
        cases.add_test_case(case);
        all_passed &= report.passed;
    }
    junit.add_test_suite(cases);
    let junit_path = args.report_dir.join("junit.xml");
    std::fs::write(&junit_path, junit.to_string()?)?;
    println!(
        "reports: {} (JSON per suite) and {}",
        args.report_dir.display(),
        junit_path.display()
    );
    Ok(all_passed)
}

/// `path` itself, or the `*.toml` files in it, in name order.
fn suite_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        anyhow::ensure!(!files.is_empty(), "no *.toml suites in {}", path.display());
        Ok(files)
    } else {
        anyhow::ensure!(path.exists(), "no suite at {}", path.display());
        Ok(vec![path.to_path_buf()])
    }
}
