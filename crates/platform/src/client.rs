//! The edge's API as the tool's own drivers call it: `choreo up` seeding its
//! demo, the chaos runner's load and the benchmark's.

use anyhow::Context;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

/// A client that sends `token` as its bearer token, with a timeout longer
/// than any `?wait=` the drivers ask for.
pub fn bearer(token: &str) -> anyhow::Result<reqwest::Client> {
    Ok(crate::keys::bearer(token)?
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Creates or replaces a product (an admin's `PUT`).
pub async fn put_product(
    admin: &reqwest::Client,
    edge: &str,
    sku: &str,
    name: &str,
    price_cents: i64,
    available: i64,
) -> anyhow::Result<()> {
    let response = admin
        .put(format!("{edge}/v1/admin/products/{sku}"))
        .json(&json!({"name": name, "price_cents": price_cents, "available": available}))
        .send()
        .await
        .with_context(|| format!("seeding product {sku}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "seeding {sku}: {}",
        response.text().await?
    );
    Ok(())
}

/// Sets a customer's wallet (an admin's `PUT`).
pub async fn put_wallet(
    admin: &reqwest::Client,
    edge: &str,
    customer: &str,
    balance_cents: i64,
) -> anyhow::Result<()> {
    let response = admin
        .put(format!("{edge}/v1/admin/customers/{customer}/wallet"))
        .json(&json!({"balance_cents": balance_cents}))
        .send()
        .await
        .with_context(|| format!("seeding wallet {customer}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "seeding {customer}'s wallet: {}",
        response.text().await?
    );
    Ok(())
}

/// One order line of one unit, shipped to an address in `country`.
pub fn order_body(customer: &str, sku: &str, country: &str) -> Value {
    json!({
        "customer_id": customer,
        "items": [{"sku": sku, "quantity": 1}],
        "shipping_address": {"name": "Choreo Tool", "line1": "1 Test St", "city": "Berlin",
                             "postal_code": "10115", "country": country},
    })
}

/// What one `POST /v1/orders` came to.
pub enum Posted {
    /// `201`: the order, as the edge answered it.
    Accepted(Value),
    /// A 4xx other than `429`: the request is wrong and a retry will not
    /// change that.
    Refused(String),
    /// No answer, a 5xx or a `429`: with the same key, a retry is safe.
    Retry(String),
}

/// A W3C `traceparent` for a new trace, for a driver that decides which of
/// its requests the platform traces: the platform's default sampler follows
/// the caller's choice (`sampled`). Its trace id comes first.
pub fn new_trace(sampled: bool) -> (String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let span_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let flags = if sampled { "01" } else { "00" };
    let traceparent = format!("00-{trace_id}-{span_id}-{flags}");
    (trace_id, traceparent)
}

fn traced(request: reqwest::RequestBuilder, traceparent: Option<&str>) -> reqwest::RequestBuilder {
    match traceparent {
        Some(value) => request.header(choreo_telemetry::TRACEPARENT, value),
        None => request,
    }
}

/// One attempt at placing an order under `key`, in the trace `traceparent`
/// names (a new one of the edge's without).
pub async fn post_order(
    client: &reqwest::Client,
    edge: &str,
    key: &str,
    body: &Value,
    traceparent: Option<&str>,
) -> Posted {
    let request = client
        .post(format!("{edge}/v1/orders"))
        .header("idempotency-key", key)
        .json(body);
    let response = traced(request, traceparent).send().await;
    match response {
        Ok(r) if r.status() == 201 => match r.json::<Value>().await {
            Ok(order) if order["id"].is_string() => Posted::Accepted(order),
            Ok(order) => Posted::Refused(format!("201 with an order without an id: {order}")),
            Err(e) => Posted::Retry(format!("201 with an unreadable body: {e}")),
        },
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            if status.is_client_error() && status != 429 {
                Posted::Refused(format!("{status}: {text}"))
            } else {
                Posted::Retry(format!("{status}: {text}"))
            }
        }
        Err(e) => Posted::Retry(choreo_telemetry::error_chain(&e)),
    }
}

/// How long [`place`] keeps retrying one order.
const PLACE_DEADLINE: Duration = Duration::from_secs(120);

/// Places an order, retrying under the same key (so it is placed once)
/// until it is accepted, as a careful client would; its id.
pub async fn place(
    client: &reqwest::Client,
    edge: &str,
    key: &str,
    body: &Value,
) -> anyhow::Result<String> {
    let until = Instant::now() + PLACE_DEADLINE;
    loop {
        let why = match post_order(client, edge, key, body, None).await {
            Posted::Accepted(order) => {
                return order["id"]
                    .as_str()
                    .map(str::to_owned)
                    .context("an order without an id");
            }
            Posted::Refused(why) => anyhow::bail!("order refused ({why})"),
            Posted::Retry(why) => why,
        };
        // The last answer says whether the edge, the order service or its
        // database was the one that did not come back.
        anyhow::ensure!(
            Instant::now() < until,
            "order {key} not accepted within {PLACE_DEADLINE:?} (last answer: {why})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether an order (as the edge shows it) has ended.
pub fn is_terminal(order: &Value) -> bool {
    matches!(order["status"].as_str(), Some("CONFIRMED" | "CANCELLED"))
}

/// The order once it is CONFIRMED or CANCELLED, asked with `?wait=` so the
/// answer comes as soon as it is; at `deadline`, the last answer (`null` if
/// there was none). Each ask is in the trace `traceparent` names, if any.
pub async fn wait_terminal(
    client: &reqwest::Client,
    edge: &str,
    id: &str,
    deadline: Instant,
    traceparent: Option<&str>,
) -> Value {
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64()
            .min(5.0);
        let request = client.get(format!("{edge}/v1/orders/{id}?wait={wait:.3}"));
        if let Ok(r) = traced(request, traceparent).send().await {
            if let Ok(order) = r.json::<Value>().await {
                if is_terminal(&order) {
                    return order;
                }
                // Still PENDING after the wait: ask again at once.
                let pending = order["status"].is_string();
                last = order;
                if pending {
                    continue;
                }
            }
        }
        // No answer, or an error's: the platform is mid-fault.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}
