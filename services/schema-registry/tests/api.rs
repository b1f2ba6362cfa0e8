//! Black-box tests of the registry's REST API: each test starts the real
//! service on a free port over a fresh PostgreSQL database and talks to it the
//! way a Confluent serializer or tool would.

use anyhow::Context;
use choreo_schema_registry::{CancellationToken, Running, Settings, start};
use choreo_testkit::TestDatabase;
use reqwest::{
    StatusCode,
    header::{AUTHORIZATION, CONTENT_TYPE},
};
use serde_json::{Value, json};

const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

const ORDER_V1: &str = r#"{"type":"record","name":"OrderPlaced","namespace":"io.choreo.events",
    "fields":[{"name":"order_id","type":"string"}]}"#;
/// v1 plus a field with a default: readers of v2 can read v1 data.
const ORDER_V2_WITH_DEFAULT: &str = r#"{"type":"record","name":"OrderPlaced","namespace":"io.choreo.events",
    "fields":[{"name":"order_id","type":"string"},{"name":"quantity","type":"int","default":1}]}"#;
/// v1 plus a required field: readers of it cannot read v1 data.
const ORDER_V2_REQUIRED_FIELD: &str = r#"{"type":"record","name":"OrderPlaced","namespace":"io.choreo.events",
    "fields":[{"name":"order_id","type":"string"},{"name":"quantity","type":"int"}]}"#;

/// A running registry over its own database.
struct Registry {
    base: String,
    http: reqwest::Client,
    db: TestDatabase,
    shutdown: CancellationToken,
    running: Running,
}

impl Registry {
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
            http: choreo_testkit::operator_client("registry"),
            db,
            shutdown,
            running,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.running.task.await.context("registry task")??;
        self.db.drop_db().await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(StatusCode, Value)> {
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        let body = serde_json::from_str(&text)
            .with_context(|| format!("{status} body is not JSON: {text}"))?;
        Ok((status, body))
    }

    async fn get(&self, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    async fn put(&self, path: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
        self.send(self.http.put(format!("{}{path}", self.base)).json(&body))
            .await
    }

    async fn register(&self, subject: &str, schema: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.post(
            &format!("/subjects/{subject}/versions"),
            json!({"schema": schema}),
        )
        .await
    }

    /// Registers and returns the id, failing the test on anything but 200.
    async fn register_ok(&self, subject: &str, schema: &str) -> anyhow::Result<i64> {
        let (status, body) = self.register(subject, schema).await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "register answered {status}: {body}"
        );
        body["id"].as_i64().context("no id in the answer")
    }
}

/// Asserts a Confluent error answer.
fn assert_error(answer: &(StatusCode, Value), status: StatusCode, error_code: i64) {
    let (actual, body) = answer;
    assert_eq!(*actual, status, "{body}");
    assert_eq!(body["error_code"], error_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn registering_returns_an_id_and_registering_again_returns_the_same_id() -> anyhow::Result<()>
{
    let registry = Registry::start("sr_idempotent").await?;

    let first = registry.register_ok("orders-value", ORDER_V1).await?;
    // Same schema, different spelling: still the same schema.
    let respelled = r#"{ "namespace": "io.choreo.events", "type": "record",
        "fields": [ { "type": "string", "name": "order_id" } ], "name": "OrderPlaced" }"#;
    let again = registry.register_ok("orders-value", respelled).await?;

    assert_eq!(first, again);
    assert_eq!(
        registry.get("/subjects/orders-value/versions").await?.1,
        json!([1])
    );
    registry.stop().await
}

#[tokio::test]
async fn the_same_schema_under_two_subjects_has_one_id() -> anyhow::Result<()> {
    let registry = Registry::start("sr_global_ids").await?;

    let in_orders = registry.register_ok("orders-value", ORDER_V1).await?;
    let in_audit = registry.register_ok("audit-value", ORDER_V1).await?;
    let other = registry
        .register_ok("audit-value", ORDER_V2_WITH_DEFAULT)
        .await?;

    assert_eq!(in_orders, in_audit);
    assert_ne!(in_orders, other);
    registry.stop().await
}

#[tokio::test]
async fn a_schema_is_fetched_by_its_id_as_registered() -> anyhow::Result<()> {
    let registry = Registry::start("sr_by_id").await?;
    let id = registry.register_ok("orders-value", ORDER_V1).await?;

    let response = registry
        .http
        .get(format!("{}/schemas/ids/{id}", registry.base))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some(MEDIA_TYPE)
    );
    let body: Value = response.json().await?;
    assert_eq!(body, json!({"schema": ORDER_V1}));
    registry.stop().await
}

#[tokio::test]
async fn versions_are_listed_and_latest_is_the_newest() -> anyhow::Result<()> {
    let registry = Registry::start("sr_versions").await?;
    let v1 = registry.register_ok("orders-value", ORDER_V1).await?;
    let v2 = registry
        .register_ok("orders-value", ORDER_V2_WITH_DEFAULT)
        .await?;

    assert_eq!(
        registry.get("/subjects/orders-value/versions").await?,
        (StatusCode::OK, json!([1, 2]))
    );
    assert_eq!(
        registry
            .get("/subjects/orders-value/versions/latest")
            .await?,
        (
            StatusCode::OK,
            json!({"subject": "orders-value", "version": 2, "id": v2, "schema": ORDER_V2_WITH_DEFAULT})
        )
    );
    assert_eq!(
        registry.get("/subjects/orders-value/versions/1").await?,
        (
            StatusCode::OK,
            json!({"subject": "orders-value", "version": 1, "id": v1, "schema": ORDER_V1})
        )
    );
    assert_error(
        &registry.get("/subjects/orders-value/versions/3").await?,
        StatusCode::NOT_FOUND,
        40402,
    );
    for invalid in ["abc", "0"] {
        assert_error(
            &registry
                .get(&format!("/subjects/orders-value/versions/{invalid}"))
                .await?,
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
        );
    }
    registry.stop().await
}

#[tokio::test]
async fn a_backward_incompatible_schema_is_refused_and_changes_nothing() -> anyhow::Result<()> {
    let registry = Registry::start("sr_incompatible").await?;
    let v1 = registry.register_ok("orders-value", ORDER_V1).await?;

    let refused = registry
        .register("orders-value", ORDER_V2_REQUIRED_FIELD)
        .await?;

    assert_error(&refused, StatusCode::CONFLICT, 409);
    let message = refused.1["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("quantity"),
        "the message names the field: {message}"
    );
    assert_eq!(
        registry.get("/subjects/orders-value/versions").await?.1,
        json!([1])
    );
    assert_eq!(
        registry
            .get("/subjects/orders-value/versions/latest")
            .await?
            .1["id"],
        v1
    );
    // The refused schema was not given an id either.
    assert_error(
        &registry.get(&format!("/schemas/ids/{}", v1 + 1)).await?,
        StatusCode::NOT_FOUND,
        40403,
    );
    registry.stop().await
}

#[tokio::test]
async fn adding_a_field_with_a_default_is_accepted_as_version_2() -> anyhow::Result<()> {
    let registry = Registry::start("sr_compatible").await?;
    let v1 = registry.register_ok("orders-value", ORDER_V1).await?;

    let v2 = registry
        .register_ok("orders-value", ORDER_V2_WITH_DEFAULT)
        .await?;

    assert_ne!(v1, v2);
    let latest = registry
        .get("/subjects/orders-value/versions/latest")
        .await?
        .1;
    assert_eq!(
        (latest["version"].clone(), latest["id"].clone()),
        (json!(2), json!(v2))
    );
    registry.stop().await
}

#[tokio::test]
async fn the_compatibility_endpoint_judges_a_candidate_without_registering_it() -> anyhow::Result<()>
{
    let registry = Registry::start("sr_compat_check").await?;
    registry.register_ok("orders-value", ORDER_V1).await?;
    let latest = "/compatibility/subjects/orders-value/versions/latest";

    let required = registry
        .post(latest, json!({"schema": ORDER_V2_REQUIRED_FIELD}))
        .await?;
    let with_default = registry
        .post(latest, json!({"schema": ORDER_V2_WITH_DEFAULT}))
        .await?;
    let against_v1 = registry
        .post(
            "/compatibility/subjects/orders-value/versions/1",
            json!({"schema": ORDER_V2_WITH_DEFAULT}),
        )
        .await?;
    let verbose = registry
        .post(
            &format!("{latest}?verbose=true"),
            json!({"schema": ORDER_V2_REQUIRED_FIELD}),
        )
        .await?;

    assert_eq!(required, (StatusCode::OK, json!({"is_compatible": false})));
    assert_eq!(
        with_default,
        (StatusCode::OK, json!({"is_compatible": true}))
    );
    assert_eq!(against_v1, (StatusCode::OK, json!({"is_compatible": true})));
    assert_eq!(verbose.1["is_compatible"], false);
    assert!(
        verbose.1["messages"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        verbose.1
    );
    assert_eq!(
        registry.get("/subjects/orders-value/versions").await?.1,
        json!([1])
    );
    registry.stop().await
}

#[tokio::test]
async fn the_compatibility_endpoint_accepts_anything_as_a_first_version_but_not_a_missing_one()
-> anyhow::Result<()> {
    let registry = Registry::start("sr_compat_unknown").await?;

    let latest = registry
        .post(
            "/compatibility/subjects/new-value/versions/latest",
            json!({"schema": ORDER_V1}),
        )
        .await?;
    let numbered = registry
        .post(
            "/compatibility/subjects/new-value/versions/1",
            json!({"schema": ORDER_V1}),
        )
        .await?;
    registry.register_ok("orders-value", ORDER_V1).await?;
    let missing_version = registry
        .post(
            "/compatibility/subjects/orders-value/versions/7",
            json!({"schema": ORDER_V1}),
        )
        .await?;

    assert_eq!(latest, (StatusCode::OK, json!({"is_compatible": true})));
    assert_error(&numbered, StatusCode::NOT_FOUND, 40401);
    assert_error(&missing_version, StatusCode::NOT_FOUND, 40402);
    registry.stop().await
}

#[tokio::test]
async fn the_global_level_defaults_to_backward_and_can_be_changed() -> anyhow::Result<()> {
    let registry = Registry::start("sr_global_config").await?;

    let initial = registry.get("/config").await?;
    let put = registry
        .put("/config", json!({"compatibility": "FULL"}))
        .await?;
    let after = registry.get("/config").await?;
    let invalid = registry
        .put("/config", json!({"compatibility": "SIDEWAYS"}))
        .await?;

    assert_eq!(
        initial,
        (StatusCode::OK, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(put, (StatusCode::OK, json!({"compatibility": "FULL"})));
    assert_eq!(
        after,
        (StatusCode::OK, json!({"compatibilityLevel": "FULL"}))
    );
    assert_error(&invalid, StatusCode::UNPROCESSABLE_ENTITY, 42203);
    assert_eq!(
        registry.get("/config").await?.1,
        json!({"compatibilityLevel": "FULL"})
    );
    registry.stop().await
}

#[tokio::test]
async fn a_subject_level_overrides_the_global_one() -> anyhow::Result<()> {
    let registry = Registry::start("sr_subject_config").await?;
    registry.register_ok("orders-value", ORDER_V1).await?;

    let unset = registry.get("/config/orders-value").await?;
    let defaulted = registry
        .get("/config/orders-value?defaultToGlobal=true")
        .await?;
    let put = registry
        .put("/config/orders-value", json!({"compatibility": "none"}))
        .await?;
    let set = registry.get("/config/orders-value").await?;
    // Under NONE the change BACKWARD refuses goes through.
    let registered = registry
        .register("orders-value", ORDER_V2_REQUIRED_FIELD)
        .await?;

    assert_error(&unset, StatusCode::NOT_FOUND, 40408);
    assert_eq!(
        defaulted,
        (StatusCode::OK, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(put, (StatusCode::OK, json!({"compatibility": "NONE"})));
    assert_eq!(set, (StatusCode::OK, json!({"compatibilityLevel": "NONE"})));
    assert_eq!(registered.0, StatusCode::OK, "{}", registered.1);
    assert_eq!(
        registry.get("/subjects/orders-value/versions").await?.1,
        json!([1, 2])
    );
    assert_eq!(
        registry.get("/config").await?.1,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    registry.stop().await
}

#[tokio::test]
async fn an_invalid_schema_is_refused_with_42201() -> anyhow::Result<()> {
    let registry = Registry::start("sr_invalid").await?;

    for schema in [
        "not json",
        r#"{"type":"recrd","name":"A","fields":[]}"#,
        r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int","default":"one"}]}"#,
        // apache-avro panics on this name; the registry must still answer.
        r#"{"type":"record","name":"1A","fields":[]}"#,
    ] {
        assert_error(
            &registry.register("orders-value", schema).await?,
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        );
    }
    let protobuf = registry
        .post(
            "/subjects/orders-value/versions",
            json!({"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"}),
        )
        .await?;
    assert_error(&protobuf, StatusCode::UNPROCESSABLE_ENTITY, 42201);
    assert_eq!(registry.get("/subjects").await?.1, json!([]));
    registry.stop().await
}

#[tokio::test]
async fn an_unknown_subject_answers_40401() -> anyhow::Result<()> {
    let registry = Registry::start("sr_unknown_subject").await?;

    assert_error(
        &registry.get("/subjects/nope/versions").await?,
        StatusCode::NOT_FOUND,
        40401,
    );
    assert_error(
        &registry.get("/subjects/nope/versions/latest").await?,
        StatusCode::NOT_FOUND,
        40401,
    );
    assert_error(
        &registry.get("/subjects/nope/versions/1").await?,
        StatusCode::NOT_FOUND,
        40401,
    );
    assert_error(
        &registry
            .post("/subjects/nope", json!({"schema": ORDER_V1}))
            .await?,
        StatusCode::NOT_FOUND,
        40401,
    );
    let (_, body) = registry.get("/subjects/nope/versions").await?;
    assert_eq!(body["message"], "Subject 'nope' not found.");
    registry.stop().await
}

#[tokio::test]
async fn an_unknown_schema_id_answers_40403() -> anyhow::Result<()> {
    let registry = Registry::start("sr_unknown_id").await?;

    let answer = registry.get("/schemas/ids/4242").await?;

    assert_error(&answer, StatusCode::NOT_FOUND, 40403);
    registry.stop().await
}

#[tokio::test]
async fn looking_up_a_schema_finds_its_version_under_the_subject() -> anyhow::Result<()> {
    let registry = Registry::start("sr_lookup").await?;
    registry.register_ok("orders-value", ORDER_V1).await?;
    let v2 = registry
        .register_ok("orders-value", ORDER_V2_WITH_DEFAULT)
        .await?;

    let found = registry
        .post(
            "/subjects/orders-value",
            json!({"schema": ORDER_V2_WITH_DEFAULT}),
        )
        .await?;
    let unknown = registry
        .post(
            "/subjects/orders-value",
            json!({"schema": ORDER_V2_REQUIRED_FIELD}),
        )
        .await?;

    assert_eq!(
        found,
        (
            StatusCode::OK,
            json!({"subject": "orders-value", "version": 2, "id": v2, "schema": ORDER_V2_WITH_DEFAULT})
        )
    );
    assert_error(&unknown, StatusCode::NOT_FOUND, 40403);
    registry.stop().await
}

#[tokio::test]
async fn subjects_are_listed_in_order() -> anyhow::Result<()> {
    let registry = Registry::start("sr_subjects").await?;
    for subject in ["payments-value", "orders-value", "Zeta-value"] {
        registry.register_ok(subject, ORDER_V1).await?;
    }

    let subjects = registry.get("/subjects").await?;

    assert_eq!(
        subjects,
        (
            StatusCode::OK,
            json!(["Zeta-value", "orders-value", "payments-value"])
        )
    );
    registry.stop().await
}

#[tokio::test]
async fn request_bodies_are_read_whatever_their_content_type() -> anyhow::Result<()> {
    let registry = Registry::start("sr_content_types").await?;
    let body = json!({"schema": ORDER_V1}).to_string();
    let url = format!("{}/subjects/orders-value/versions", registry.base);

    let mut ids = Vec::new();
    for content_type in [
        Some(MEDIA_TYPE),
        Some("application/vnd.schemaregistry+json"),
        Some("application/json"),
        None,
    ] {
        let mut request = registry.http.post(&url).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let (status, answer) = registry.send(request).await?;
        assert_eq!(status, StatusCode::OK, "{content_type:?}: {answer}");
        ids.push(answer["id"].clone());
    }

    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    registry.stop().await
}

#[tokio::test]
async fn concurrent_registrations_never_share_a_version() -> anyhow::Result<()> {
    let registry = Registry::start("sr_concurrent").await?;
    registry
        .put("/config/orders-value", json!({"compatibility": "NONE"}))
        .await?;
    let schemas: Vec<String> = (0..8)
        .map(|i| {
            format!(r#"{{"type":"record","name":"R","fields":[{{"name":"f{i}","type":"int"}}]}}"#)
        })
        .collect();

    // Eight different schemas and the first one eight more times, all at once.
    let different = schemas
        .iter()
        .map(|s| registry.register_ok("orders-value", s));
    let same = (0..8).map(|_| registry.register_ok("orders-value", &schemas[0]));
    let results = futures::future::join_all(different.chain(same)).await;

    let ids = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    assert_eq!(ids[8..].iter().filter(|id| **id == ids[0]).count(), 8);
    assert_eq!(
        registry.get("/subjects/orders-value/versions").await?.1,
        json!([1, 2, 3, 4, 5, 6, 7, 8])
    );
    registry.stop().await
}

#[tokio::test]
async fn unknown_routes_answer_confluents_404() -> anyhow::Result<()> {
    let registry = Registry::start("sr_unknown_route").await?;

    let answer = registry.get("/no/such/route").await?;

    assert_eq!(
        answer,
        (
            StatusCode::NOT_FOUND,
            json!({"error_code": 404, "message": "HTTP 404 Not Found"})
        )
    );
    registry.stop().await
}

#[tokio::test]
async fn ready_while_the_database_answers() -> anyhow::Result<()> {
    let registry = Registry::start("sr_health").await?;

    assert_eq!(
        registry.get("/health/ready").await?,
        (StatusCode::OK, json!({"status": "ready"}))
    );
    assert_eq!(
        registry.get("/health/live").await?,
        (
            StatusCode::OK,
            json!({"status": "live", "service": "schema-registry"})
        )
    );
    registry.stop().await
}

#[tokio::test]
async fn schemas_need_a_credential_and_compatibility_the_admin_key() -> anyhow::Result<()> {
    let registry = Registry::start("registry_trust").await?;
    let service =
        choreo_kit::internal_auth::Signer::service(&choreo_testkit::internal_auth(), "order")?;
    let as_service = |request: reqwest::RequestBuilder| {
        request.header(AUTHORIZATION, service.authorization("registry"))
    };
    let anonymous = reqwest::Client::new();
    // No credential: nothing read, nothing registered.
    let (status, _) = registry
        .send(anonymous.get(format!("{}/subjects", registry.base)))
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let register = |http: &reqwest::Client| {
        http.post(format!("{}/subjects/orders-value/versions", registry.base))
            .json(&json!({"schema": ORDER_V1}))
    };
    assert_eq!(
        registry.send(register(&anonymous)).await?.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(registry.get("/subjects").await?.1, json!([]));
    // A service registers and reads schemas, but cannot loosen the rules
    // every producer is held to.
    assert_eq!(
        registry.send(as_service(register(&anonymous))).await?.0,
        StatusCode::OK
    );
    let (status, _) = registry
        .send(as_service(
            anonymous
                .put(format!("{}/config", registry.base))
                .json(&json!({"compatibility": "NONE"})),
        ))
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, config) = registry.get("/config").await?;
    assert_eq!(config["compatibilityLevel"], "BACKWARD", "{config}");
    let (status, _) = registry
        .put("/config", json!({"compatibility": "FULL"}))
        .await?;
    assert_eq!(status, StatusCode::OK, "the operator's admin key sets it");
    registry.stop().await
}
