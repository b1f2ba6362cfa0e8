//! `/metrics` as a scraper reads it: fetched, parsed by a strict
//! OpenMetrics parser (so a malformed exposition fails the test), and read
//! back series by series.

use anyhow::Context;

/// One process's parsed `/metrics`.
pub type Exposition = openmetrics_parser::MetricsExposition<
    openmetrics_parser::OpenMetricsType,
    openmetrics_parser::OpenMetricsValue,
>;

/// `url`'s exposition, which must be served as OpenMetrics text.
///
/// # Errors
/// When it does not answer 200 or does not parse.
pub async fn scrape(url: &str) -> anyhow::Result<Exposition> {
    let response = reqwest::get(url).await?.error_for_status()?;
    let content_type = response
        .headers()
        .get("content-type")
        .context("no content type")?
        .to_str()?
        .to_owned();
    anyhow::ensure!(
        content_type.starts_with("application/openmetrics-text"),
        "{url} answers {content_type}"
    );
    let text = response.text().await?;
    openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .map_err(|e| anyhow::anyhow!("{url} does not parse ({e:?}):\n{text}"))
}

/// A counter's value, a gauge's, or a histogram's count, summed over the
/// series of `family` with `labels`; 0 for a series not there yet.
pub fn sample(exposition: &Exposition, family: &str, labels: &[(&str, &str)]) -> f64 {
    use openmetrics_parser::OpenMetricsValue as V;
    let Some(family) = exposition.families.get(family) else {
        return 0.0;
    };
    family
        .iter_samples()
        .filter(|s| {
            s.get_labelset().is_ok_and(|set| {
                labels
                    .iter()
                    .all(|(k, v)| set.get_label_value(k) == Some(*v))
            })
        })
        .map(|s| match &s.value {
            V::Counter(c) => c.value.as_f64(),
            V::Gauge(n) | V::Unknown(n) => n.as_f64(),
            V::Histogram(h) => h.count.unwrap_or(0) as f64,
            _ => 0.0,
        })
        .sum()
}

/// Every value `label` takes in `family`'s series, sorted, once each.
pub fn label_values(exposition: &Exposition, family: &str, label: &str) -> Vec<String> {
    let mut values: Vec<String> = exposition
        .families
        .get(family)
        .into_iter()
        .flat_map(|f| f.iter_samples())
        .filter_map(|s| {
            s.get_labelset()
                .ok()?
                .get_label_value(label)
                .map(str::to_owned)
        })
        .collect();
    values.sort();
    values.dedup();
    values
}
