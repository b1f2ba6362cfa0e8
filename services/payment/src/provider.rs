//! The payment provider the service charges through: the card acquirer
//! that actually moves the money once the wallet allows the charge.
//!
//! Every request carries the payment's id as its idempotency key. The id
//! derives from the order, so whatever redelivers the event (a crash after
//! the provider answered, a timeout after the provider acted, a rebalance)
//! asks for the same charge again, and the provider answers with the one
//! it took. A request that gets no answer is a transient failure: the
//! consumer retries the event, holding its place in the partition. A try
//! that ends in a decline, of any cause, voids the key at the provider, so
//! a charge an earlier try took unknowingly is given back.
//!
//! Without a provider URL (tests, a platform without one) the wallet alone
//! decides and nothing leaves the service.

use choreo_kit::internal_auth::{PROVIDER, Signer};
use choreo_messaging::{HandlerError, fail_points};
use reqwest::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderSettings {
    /// The provider's API (`CHOREO_PROVIDER__URL`); unset: no provider.
    pub url: Option<String>,
    /// How long to wait for an answer before the try counts as lost and
    /// the event is retried, with the same key.
    pub timeout_ms: u64,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self {
            url: None,
            timeout_ms: 5_000,
        }
    }
}

/// The provider's answer to a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Capture {
    /// The money was taken (now, or by an earlier try with this key).
    Captured,
    /// Refused, for this reason (`CARD_DECLINED`).
    Declined(String),
    /// The key was refunded or voided first: the order's cancellation
    /// reached the provider before this charge did.
    Voided,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProviderError {
    #[error("the payment provider did not answer ({what} {key})")]
    Unreachable {
        what: &'static str,
        key: Uuid,
        #[source]
        source: reqwest::Error,
    },
    #[error("the payment provider is failing ({what} {key}: {status}): {body}")]
    Failing {
        what: &'static str,
        key: Uuid,
        status: u16,
        body: String,
    },
    #[error("the payment provider refused the request ({what} {key}: {status}): {body}")]
    Refused {
        what: &'static str,
        key: Uuid,
        status: u16,
        body: String,
    },
}

impl From<ProviderError> for HandlerError {
    /// No answer, a 5xx or any 4xx that a fix elsewhere can cure (a wrong
    /// URL's 404, a 401, a 408) is retried in place; only a request the
    /// provider calls malformed (400, 422) or an answer of the wrong shape
    /// would fail the same way every time, and is dead-lettered with the
    /// provider's words.
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Refused { .. } => HandlerError::Permanent {
                reason: e.to_string(),
            },
            _ => HandlerError::Transient(Box::new(e)),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Provider(Option<Http>);

#[derive(Debug, Clone)]
struct Http {
    client: reqwest::Client,
    url: String,
    /// Signs each call: the provider trusts no address.
    signer: Signer,
}

#[derive(Deserialize)]
struct Charge {
    status: String,
    reason: Option<String>,
}

impl Provider {
    pub(crate) fn none() -> Self {
        Self(None)
    }

    pub(crate) fn new(settings: &ProviderSettings, signer: Signer) -> Result<Self, reqwest::Error> {
        let Some(url) = &settings.url else {
            return Ok(Self::none());
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()?;
        Ok(Self(Some(Http {
            client,
            url: url.trim_end_matches('/').to_owned(),
            signer,
        })))
    }

    /// Charges `amount_cents` for `order_id` under the key `payment_id`.
    #[tracing::instrument(skip_all, fields(order_id = %order_id), err)]
    pub(crate) async fn capture(
        &self,
        payment_id: Uuid,
        order_id: Uuid,
        customer_id: &str,
        amount_cents: i64,
        currency: &str,
    ) -> Result<Capture, ProviderError> {
        let Some(http) = &self.0 else {
            return Ok(Capture::Captured);
        };
        let key = if fail_points::mutant(fail_points::MUTANT_PROVIDER_FRESH_KEY) {
            // The planted bug: a key per try, as a client that forgot why
            // it has one would send.
            Uuid::new_v4()
        } else {
            payment_id
        };
        let response = http
            .client
            .post(format!("{}/v1/charges", http.url))
            .header(AUTHORIZATION, http.signer.authorization(PROVIDER))
            .header(choreo_kit::IDEMPOTENCY_KEY, key.to_string())
            .json(&serde_json::json!({
                "order_id": order_id,
                "customer_id": customer_id,
                "amount_cents": amount_cents,
                "currency": currency,
            }))
            .send()
            .await
            .map_err(|source| ProviderError::Unreachable {
                what: "charge",
                key,
                source,
            })?;
        let status = response.status().as_u16();
        let charge = answer(response, &[200, 201, 402, 409], "charge", key).await?;
        Ok(match (status, charge.status.as_str()) {
            (200 | 201, "CAPTURED") => Capture::Captured,
            (402, _) => Capture::Declined(charge.reason.unwrap_or_else(|| "DECLINED".into())),
            (409, _) => Capture::Voided,
            (_, other) => {
                return Err(ProviderError::Refused {
                    what: "charge",
                    key,
                    status,
                    body: format!("a charge answered with status {other}"),
                });
            }
        })
    }

    /// Refunds the charge `payment_id` in full; a key never charged is
    /// voided, so a charge still on its way is refused when it arrives.
    #[tracing::instrument(skip_all, fields(order_id = %order_id), err)]
    pub(crate) async fn refund(
        &self,
        payment_id: Uuid,
        order_id: Uuid,
    ) -> Result<(), ProviderError> {
        let Some(http) = &self.0 else {
            return Ok(());
        };
        let response = http
            .client
            .post(format!("{}/v1/charges/{payment_id}/refund", http.url))
            .header(AUTHORIZATION, http.signer.authorization(PROVIDER))
            .json(&serde_json::json!({ "order_id": order_id }))
            .send()
            .await
            .map_err(|source| ProviderError::Unreachable {
                what: "refund",
                key: payment_id,
                source,
            })?;
        answer(response, &[200], "refund", payment_id)
            .await
            .map(|_| ())
    }
}

/// The charge in a response whose status is one of `expected`.
async fn answer(
    response: reqwest::Response,
    expected: &[u16],
    what: &'static str,
    key: Uuid,
) -> Result<Charge, ProviderError> {
    let status = response.status().as_u16();
    if !expected.contains(&status) {
        let body = response.text().await.unwrap_or_default();
        return Err(if matches!(status, 400 | 422) {
            ProviderError::Refused {
                what,
                key,
                status,
                body,
            }
        } else {
            ProviderError::Failing {
                what,
                key,
                status,
                body,
            }
        });
    }
    let bytes = response
        .bytes()
        .await
        // A body cut off mid-way is a lost answer: try again.
        .map_err(|source| ProviderError::Unreachable { what, key, source })?;
    serde_json::from_slice(&bytes).map_err(|e| ProviderError::Refused {
        what,
        key,
        status,
        body: format!(
            "an answer of the wrong shape ({e}): {}",
            String::from_utf8_lossy(&bytes)
        ),
    })
}
