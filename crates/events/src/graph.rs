//! The choreography drawn from [`crate::choreography`]: records are the
//! nodes, grouped by the topic they travel on, and each reaction is an edge
//! from the record consumed to each record emitted, labelled with the
//! service that reacts. A reaction that emits nothing ends in a note of what
//! it does; a command (an HTTP call, the deadline) starts an edge from
//! outside. Following the edges answers "what happens after X?": from
//! `PaymentFailed`, order emits `OrderCancelled`, on which inventory emits
//! `StockReleased`.

use crate::choreography::{CHOREOGRAPHY, Consumer};
use crate::{Record, Topic};
use std::fmt::Write;

/// How to draw the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A Mermaid flowchart, as GitHub renders in Markdown.
    Mermaid,
    /// Graphviz.
    Dot,
}

/// An edge of the graph, whichever the format.
enum Edge {
    /// `service` reacting to `from` emits `to`.
    Emits {
        from: Record,
        service: &'static str,
        to: Record,
    },
    /// `service` reacting to `from` emits nothing but does `does`.
    Ends {
        from: Record,
        service: &'static str,
        does: &'static str,
    },
    /// `service` emits `to` on `command`.
    Command {
        service: &'static str,
        command: &'static str,
        to: Record,
    },
}

fn edges() -> Vec<Edge> {
    let mut edges = Vec::new();
    for Consumer {
        service,
        reactions,
        commands,
        ..
    } in &CHOREOGRAPHY
    {
        for command in *commands {
            for to in command.emits {
                edges.push(Edge::Command {
                    service,
                    command: command.name,
                    to: *to,
                });
            }
        }
        for reaction in *reactions {
            if reaction.emits.is_empty() {
                edges.push(Edge::Ends {
                    from: reaction.on,
                    service,
                    does: reaction.does,
                });
            }
            for to in reaction.emits {
                edges.push(Edge::Emits {
                    from: reaction.on,
                    service,
                    to: *to,
                });
            }
        }
    }
    edges
}

/// The choreography in `format`, ending with a newline.
pub fn render(format: Format) -> String {
    match format {
        Format::Mermaid => mermaid(),
        Format::Dot => dot(),
    }
}

fn mermaid() -> String {
    let mut out = String::from("flowchart LR\n");
    for topic in Topic::ALL {
        let name = topic.base_name();
        let _ = writeln!(out, "  subgraph {}[\"{name}\"]", name.replace('.', "_"));
        for record in Record::ALL.iter().filter(|r| r.topic() == topic) {
            let _ = writeln!(out, "    {record}");
        }
        out.push_str("  end\n");
    }
    for (i, edge) in edges().iter().enumerate() {
        let _ = match edge {
            Edge::Emits { from, service, to } => {
                writeln!(out, "  {from} -->|{service}| {to}")
            }
            Edge::Ends {
                from,
                service,
                does,
            } => writeln!(out, "  {from} -.->|{service}| end{i}[\"{does}\"]"),
            Edge::Command {
                service,
                command,
                to,
            } => writeln!(out, "  cmd{i}([\"{command}\"]) -->|{service}| {to}"),
        };
    }
    out
}

fn dot() -> String {
    let mut out = String::from("digraph choreography {\n  rankdir=LR;\n  node [shape=box];\n");
    for topic in Topic::ALL {
        let name = topic.base_name();
        let _ = writeln!(
            out,
            "  subgraph \"cluster_{name}\" {{\n    label=\"{name}\";"
        );
        for record in Record::ALL.iter().filter(|r| r.topic() == topic) {
            let _ = writeln!(out, "    {record};");
        }
        out.push_str("  }\n");
    }
    for (i, edge) in edges().iter().enumerate() {
        let _ = match edge {
            Edge::Emits { from, service, to } => {
                writeln!(out, "  {from} -> {to} [label=\"{service}\"];")
            }
            Edge::Ends {
                from,
                service,
                does,
            } => writeln!(
                out,
                "  end{i} [shape=plaintext, label=\"{does}\"];\n  {from} -> end{i} [label=\"{service}\", style=dashed];"
            ),
            Edge::Command {
                service,
                command,
                to,
            } => writeln!(
                out,
                "  cmd{i} [shape=oval, label=\"{command}\"];\n  cmd{i} -> {to} [label=\"{service}\"];"
            ),
        };
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_answers_what_inventory_does_when_payment_fails() {
        let graph = render(Format::Mermaid);
        assert!(graph.contains("PaymentFailed -->|order| OrderCancelled"));
        assert!(graph.contains("OrderCancelled -->|inventory| StockReleased"));
        let dot = render(Format::Dot);
        assert!(dot.contains("PaymentFailed -> OrderCancelled [label=\"order\"];"));
    }
}
