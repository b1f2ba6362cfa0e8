//! The Grafana dashboards and the alert rules the chart and compose ship
//! (`helm/choreo/monitoring`) ask only for metrics a running platform
//! serves: every query parses as PromQL, and every metric it selects is a
//! family some process's `/metrics` holds.

use anyhow::Context;
use choreo_testkit::metrics::Exposition;
use promql_parser::parser::{self, Expr};
use std::{collections::BTreeSet, path::PathBuf};

/// Series Prometheus makes itself, not any process.
const PROMETHEUS_OWN: [&str; 1] = ["up"];

fn monitoring_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../helm/choreo/monitoring")
}

/// Every query of the dashboards (panels and variables) and the alert
/// rules, with where it is.
fn queries() -> anyhow::Result<Vec<(String, String)>> {
    let dir = monitoring_dir();
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(dir.join("dashboards"))? {
        let path = entry?.path();
        let board: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("{} does not parse", path.display()))?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        for panel in board["panels"].as_array().context("panels")? {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().context("a target's expr")?;
                queries.push((format!("{name}: {}", panel["title"]), expr.to_owned()));
            }
        }
        for variable in board["templating"]["list"]
            .as_array()
            .context("templating")?
        {
            if let Some(query) = variable["query"]["query"].as_str() {
                // label_values(<selector>, <label>): its selector.
                let selector = query
                    .strip_prefix("label_values(")
                    .and_then(|q| q.rsplit_once(','))
                    .map(|(selector, _)| selector)
                    .with_context(|| format!("{name}: variable query {query}"))?;
                queries.push((
                    format!("{name}: variable {}", variable["name"]),
                    selector.to_owned(),
                ));
            }
        }
    }
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("alerts.yml"))?)?;
    for group in rules["groups"].as_sequence().context("groups")? {
        for rule in group["rules"].as_sequence().context("rules")? {
            let name = rule["alert"].as_str().context("an alert's name")?;
            let expr = rule["expr"].as_str().context("an alert's expr")?;
            queries.push((format!("alert {name}"), expr.to_owned()));
        }
    }
    Ok(queries)
}

/// The metric names `expr` selects.
fn selected(expr: &Expr, names: &mut BTreeSet<String>) {
    match expr {
        Expr::VectorSelector(v) => names.extend(v.name.clone()),
        Expr::MatrixSelector(m) => names.extend(m.vs.name.clone()),
        Expr::Aggregate(a) => {
            selected(&a.expr, names);
            if let Some(param) = &a.param {
                selected(param, names);
            }
        }
        Expr::Unary(u) => selected(&u.expr, names),
        Expr::Binary(b) => {
            selected(&b.lhs, names);
            selected(&b.rhs, names);
        }
        Expr::Paren(p) => selected(&p.expr, names),
        Expr::Subquery(s) => selected(&s.expr, names),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selected(a, names)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The family a sample name belongs to: counters' `_total`, histograms'
/// `_bucket`, `_count` and `_sum` are one family with their base name.
fn family_of<'a>(name: &'a str, families: &BTreeSet<&str>) -> Option<&'a str> {
    std::iter::once(name)
        .chain(
            ["_total", "_bucket", "_count", "_sum"]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix)),
        )
        .find(|candidate| families.contains(candidate))
}

pub(crate) fn dashboards_and_alerts_read_served_metrics(
    scraped: &[Vec<Exposition>],
) -> anyhow::Result<()> {
    let families: BTreeSet<&str> = scraped
        .iter()
        .flatten()
        .flat_map(|e| e.families.keys().map(String::as_str))
        .collect();
    let queries = queries()?;
    assert!(queries.len() > 40, "only {} queries found", queries.len());
    let mut missing = Vec::new();
    for (at, query) in &queries {
        // Grafana's own variables, as Grafana fills them in.
        let promql = query
            .replace("$__rate_interval", "1m")
            .replace("$job", "order")
            .replace("$instance", ".*");
        let expr = parser::parse(&promql)
            .map_err(|e| anyhow::anyhow!("{at}: {query} does not parse: {e}"))?;
        let mut names = BTreeSet::new();
        selected(&expr, &mut names);
        assert!(!names.is_empty(), "{at}: {query} selects no metric");
        for name in names {
            if !PROMETHEUS_OWN.contains(&name.as_str()) && family_of(&name, &families).is_none() {
                missing.push(format!("{at}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "queried but served by no process: {missing:#?}\nserved: {families:?}"
    );
    Ok(())
}
