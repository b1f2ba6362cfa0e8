//! Black-box tests of the provider stand-in: the real server on a free port
//! over a fresh ledger database, driven as the payment service drives it.

use anyhow::Context;
use choreo_kit::internal_auth::Signer;
use choreo_provider::{CancellationToken, Running, Settings, start};
use choreo_testkit::TestDatabase;
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};
use std::time::Duration;

struct Provider {
    base: String,
    http: reqwest::Client,
    db: TestDatabase,
    shutdown: CancellationToken,
    running: Running,
}

impl Provider {
    async fn start(label: &str) -> anyhow::Result<Self> {
        let db = TestDatabase::create(label).await?;
        let settings = Settings {
            http_addr: "127.0.0.1:0".parse()?,
            database_url: db.url.clone(),
            internal_auth: choreo_testkit::internal_auth(),
            ..Settings::default()
        };
        let shutdown = CancellationToken::new();
        let running = start(settings, shutdown.clone()).await?;
        Ok(Self {
            base: format!("http://{}", running.addr),
            // The tests' own drills need the admin key.
            http: choreo_testkit::operator_client("provider"),
            db,
            shutdown,
            running,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.running.task.await.context("provider task")??;
        self.db.drop_db().await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(StatusCode, Value)> {
        let response = request.send().await?;
        let status = response.status();
        Ok((status, response.json().await?))
    }

    async fn charge(
        &self,
        key: &str,
        order: &str,
        amount: i64,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.send(
            self.http
                .post(format!("{}/v1/charges", self.base))
                .header("idempotency-key", key)
                .json(&json!({"order_id": order, "customer_id": "alice",
                              "amount_cents": amount, "currency": "EUR"})),
        )
        .await
    }

    async fn refund(&self, key: &str, order: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.send(
            self.http
                .post(format!("{}/v1/charges/{key}/refund", self.base))
                .json(&json!({"order_id": order})),
        )
        .await
    }

    async fn fault(&self, kind: &str, setting: Value) -> anyhow::Result<(StatusCode, Value)> {
        self.send(
            self.http
                .put(format!("{}/admin/faults/{kind}", self.base))
                .json(&setting),
        )
        .await
    }
}

const ORDER: &str = "0b5e6a2e-8a5f-4c1e-9f8e-1d2c3b4a5e6f";
const OTHER_ORDER: &str = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f";

#[tokio::test]
async fn a_retried_charge_is_taken_once_and_refunded_once() -> anyhow::Result<()> {
    let provider = Provider::start("provider_retry").await?;
    let (status, first) = provider.charge("pay-1", ORDER, 1200).await?;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["status"], "CAPTURED");
    let (status, again) = provider.charge("pay-1", ORDER, 1200).await?;
    assert_eq!(status, StatusCode::OK, "a retry finds the charge: {again}");
    assert_eq!(again["captured_cents"], 1200);

    let (status, reused) = provider.charge("pay-1", ORDER, 999).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reused}");
    assert_eq!(reused["error"]["code"], "idempotency_key_reused");

    for _ in 0..2 {
        let (status, refunded) = provider.refund("pay-1", ORDER).await?;
        assert_eq!(status, StatusCode::OK, "{refunded}");
        assert_eq!(refunded["status"], "REFUNDED");
        assert_eq!(refunded["refunded_cents"], 1200);
    }
    let (status, after) = provider.charge("pay-1", ORDER, 1200).await?;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a refunded key is not charged again: {after}"
    );
    provider.stop().await
}

#[tokio::test]
async fn a_void_before_the_charge_refuses_the_charge() -> anyhow::Result<()> {
    let provider = Provider::start("provider_void").await?;
    let (status, voided) = provider.refund("pay-2", ORDER).await?;
    assert_eq!(status, StatusCode::OK, "{voided}");
    assert_eq!(voided["status"], "VOIDED");
    let (status, late) = provider.charge("pay-2", ORDER, 500).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{late}");
    assert_eq!(late["captured_cents"], 0);
    let (status, other) = provider.refund("pay-2", OTHER_ORDER).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{other}");

    // A refund naming another order's key changes nothing.
    provider.charge("pay-6", ORDER, 900).await?;
    let (status, _) = provider.refund("pay-6", OTHER_ORDER).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, kept) = provider
        .send(
            provider
                .http
                .get(format!("{}/v1/charges/pay-6", provider.base)),
        )
        .await?;
    assert_eq!(kept["status"], "CAPTURED", "{kept}");
    provider.stop().await
}

#[tokio::test]
async fn declines_stick_to_their_key_and_are_listed() -> anyhow::Result<()> {
    let provider = Provider::start("provider_declines").await?;
    let (status, _) = provider
        .fault("decline", json!({"share": 1.0, "seed": 3}))
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, declined) = provider.charge("pay-3", ORDER, 700).await?;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{declined}");
    assert_eq!(declined["reason"], "CARD_DECLINED");

    provider
        .send(
            provider
                .http
                .delete(format!("{}/admin/faults/decline", provider.base)),
        )
        .await?;
    let (status, again) = provider.charge("pay-3", ORDER, 700).await?;
    assert_eq!(
        status,
        StatusCode::PAYMENT_REQUIRED,
        "a declined key stays declined: {again}"
    );
    let (status, fresh) = provider.charge("pay-4", OTHER_ORDER, 700).await?;
    assert_eq!(status, StatusCode::CREATED, "{fresh}");

    let (_, list) = provider
        .send(
            provider
                .http
                .get(format!("{}/admin/declined", provider.base)),
        )
        .await?;
    assert_eq!(list["order_ids"], json!([ORDER]));
    provider.stop().await
}

#[tokio::test]
async fn an_error_does_nothing_and_a_timeout_does_it_late() -> anyhow::Result<()> {
    let provider = Provider::start("provider_faults").await?;
    provider.fault("error", json!({"share": 1.0})).await?;
    let (status, failed) = provider.charge("pay-5", ORDER, 300).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{failed}");
    provider
        .send(
            provider
                .http
                .delete(format!("{}/admin/faults/error", provider.base)),
        )
        .await?;
    let (status, _) = provider
        .send(
            provider
                .http
                .get(format!("{}/v1/charges/pay-5", provider.base)),
        )
        .await?;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an injected error charged nothing"
    );

    provider
        .fault("timeout", json!({"share": 1.0, "hold_ms": 2_000}))
        .await?;
    let timed_out = provider
        .http
        .post(format!("{}/v1/charges", provider.base))
        .header("idempotency-key", "pay-5")
        .json(&json!({"order_id": ORDER, "customer_id": "alice", "amount_cents": 300, "currency": "EUR"}))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(timed_out.is_err_and(|e| e.is_timeout()));
    // The charge was taken all the same: a caller that gave up must retry
    // with its key to learn so.
    let charge = choreo_testkit::wait_until(
        "the held charge is recorded",
        Duration::from_secs(10),
        || async {
            let (status, charge) = provider
                .send(
                    provider
                        .http
                        .get(format!("{}/v1/charges/pay-5", provider.base)),
                )
                .await
                .ok()?;
            (status == StatusCode::OK).then_some(charge)
        },
    )
    .await?;
    assert_eq!(charge["status"], "CAPTURED");
    let (status, bad) = provider.fault("timeout", json!({"share": 0.5})).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (status, unknown) = provider.fault("fire", json!({"share": 0.5})).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
    provider
        .send(
            provider
                .http
                .delete(format!("{}/admin/faults/timeout", provider.base)),
        )
        .await?;
    provider.stop().await
}

#[tokio::test]
async fn only_signed_calls_get_in_and_only_the_admin_key_sets_faults() -> anyhow::Result<()> {
    let provider = Provider::start("provider_trust").await?;
    let keys = choreo_testkit::internal_auth();
    let charge = |http: &reqwest::Client| {
        http.post(format!("{}/v1/charges", provider.base))
            .header("idempotency-key", "pay-trust")
            .json(&json!({"order_id": ORDER, "customer_id": "mallory", "amount_cents": 100, "currency": "EUR"}))
    };
    // No credential, or one for another service or from another cluster:
    // 401, and nothing charged.
    let anonymous = reqwest::Client::new();
    let (status, error) = provider.send(charge(&anonymous)).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");
    assert_eq!(error["error"]["code"], "unauthenticated");
    let service = Signer::service(&keys, "payment")?;
    let for_order = charge(&anonymous).header(AUTHORIZATION, service.authorization("order"));
    assert_eq!(provider.send(for_order).await?.0, StatusCode::UNAUTHORIZED);
    let stranger = Signer::service(&choreo_kit::internal_auth::generate(), "payment")?;
    let forged = charge(&anonymous).header(AUTHORIZATION, stranger.authorization("provider"));
    assert_eq!(provider.send(forged).await?.0, StatusCode::UNAUTHORIZED);
    let (status, _) = provider
        .send(anonymous.get(format!("{}/v1/charges/pay-trust", provider.base)))
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = provider
        .send(
            provider
                .http
                .get(format!("{}/v1/charges/pay-trust", provider.base)),
        )
        .await?;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the refused charges took nothing"
    );

    // The service key charges but cannot switch faults on.
    let signed = charge(&anonymous).header(AUTHORIZATION, service.authorization("provider"));
    assert_eq!(provider.send(signed).await?.0, StatusCode::CREATED);
    let fault = anonymous
        .put(format!("{}/admin/faults/decline", provider.base))
        .header(AUTHORIZATION, service.authorization("provider"))
        .json(&json!({"share": 1.0}));
    let (status, error) = provider.send(fault).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
    let (_, faults) = provider
        .send(provider.http.get(format!("{}/admin/faults", provider.base)))
        .await?;
    assert!(faults["decline"].is_null(), "{faults}");

    // Probes stay open.
    let ready = anonymous
        .get(format!("{}/health/ready", provider.base))
        .send()
        .await?;
    assert_eq!(ready.status(), StatusCode::OK);
    provider.stop().await
}
