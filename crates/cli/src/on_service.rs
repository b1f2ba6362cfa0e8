//! `choreo replay` and `choreo rebuild`: commands that work inside one
//! service, on its database and with its configuration, through its own
//! code. They run that service's own binary (`choreo-<service> replay …`,
//! `choreo-order rebuild-timeline …`, see `choreo_service::main`), found
//! beside `choreo` or in `CHOREO_BIN_DIR`, in place of this process: the
//! tool links no service, and a deployment can run the same command from
//! the service's own image.

use choreo_events::SAGA_SERVICES;
use choreo_service::replay::ReplayArgs;
use std::{ffi::OsString, os::unix::process::CommandExt, path::PathBuf};

#[derive(Debug, clap::Args)]
pub(crate) struct Binaries {
    /// Where the service binaries are; defaults to the folder of `choreo`.
    #[arg(long, env = "CHOREO_BIN_DIR")]
    bin_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayCommand {
    /// The service to replay into.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(SAGA_SERVICES))]
    service: String,
    #[command(flatten)]
    args: ReplayArgs,
    #[command(flatten)]
    binaries: Binaries,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RebuildCommand {
    #[command(subcommand)]
    model: Model,
    #[command(flatten)]
    binaries: Binaries,
}

#[derive(Debug, clap::Subcommand)]
enum Model {
    /// The order timeline (each order's saga steps, as `GET
    /// /v1/orders/{id}` shows them), from `order.events` and the topics
    /// the order service follows: `choreo-order rebuild-timeline`, whose
    /// `--help` lists its flags (`--dry-run`, `--json`, `--data-dir`).
    #[command(disable_help_flag = true)]
    OrderTimeline {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

/// Runs `choreo-<service> replay …` in place of this process.
pub(crate) fn replay(command: ReplayCommand) -> anyhow::Error {
    let mut args: Vec<OsString> = vec!["replay".into()];
    args.extend(command.args.to_args());
    command.binaries.exec(&command.service, args)
}

/// Runs the service's rebuild in place of this process.
pub(crate) fn rebuild(command: RebuildCommand) -> anyhow::Error {
    match command.model {
        Model::OrderTimeline { args } => {
            let mut all: Vec<OsString> = vec!["rebuild-timeline".into()];
            all.extend(args);
            command.binaries.exec("order", all)
        }
    }
}

impl Binaries {
    /// Replaces this process with `choreo-<service> args`; returns only
    /// when it could not.
    fn exec(&self, service: &str, args: Vec<OsString>) -> anyhow::Error {
        let dir = match self
            .bin_dir
            .clone()
            .map_or_else(crate::up::default_bin_dir, Ok)
        {
            Ok(dir) => dir,
            Err(e) => return e,
        };
        let binary = dir.join(format!("choreo-{service}"));
        let error = std::process::Command::new(&binary).args(args).exec();
        anyhow::Error::new(error).context(format!(
            "running {} (this command runs the service's own binary: build it, or point CHOREO_BIN_DIR at where it is)",
            binary.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Replay {
        #[command(flatten)]
        args: ReplayArgs,
    }

    /// What `choreo replay` passes on parses back to the same request.
    #[test]
    fn replay_flags_survive_the_hand_over() {
        let given = [
            "replay",
            "--topic",
            "order",
            "--topic",
            "payment.events",
            "--partition",
            "2",
            "--from-timestamp",
            "2026-11-22T10:00:00Z",
            "--until",
            "2026-11-22T11:30:00.250Z",
            "--dry-run",
            "--json",
            "--data-dir",
            "/tmp/x y",
        ];
        let first = Replay::parse_from(given);
        let again = Replay::parse_from(
            std::iter::once(OsString::from("replay")).chain(first.args.to_args()),
        );
        assert_eq!(format!("{:?}", first.args), format!("{:?}", again.args));
        let offset = Replay::parse_from(["replay", "--from-offset", "7"]);
        let again = Replay::parse_from(
            std::iter::once(OsString::from("replay")).chain(offset.args.to_args()),
        );
        assert_eq!(format!("{:?}", offset.args), format!("{:?}", again.args));
    }
}
