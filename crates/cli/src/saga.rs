//! `choreo saga`: the choreography as `choreo_events::choreography` writes
//! it down, for people and for tools.

use choreo_events::graph::{self, Format};
use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args)]
pub(crate) struct SagaArgs {
    #[command(subcommand)]
    command: SagaCommand,
}

#[derive(Debug, Subcommand)]
enum SagaCommand {
    /// Print the choreography: every record, which service reacts to it and
    /// what that service emits in response.
    Graph {
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    /// A Mermaid flowchart (GitHub renders it in Markdown).
    Mermaid,
    /// Graphviz: `choreo saga graph --format dot | dot -Tsvg`.
    Dot,
}

pub(crate) fn run(args: SagaArgs) {
    match args.command {
        SagaCommand::Graph { format } => print!(
            "{}",
            graph::render(match format {
                GraphFormat::Mermaid => Format::Mermaid,
                GraphFormat::Dot => Format::Dot,
            })
        ),
    }
}
