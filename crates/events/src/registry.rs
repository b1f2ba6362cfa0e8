//! A client for the Confluent Schema Registry REST API: Choreo's own
//! `services/schema-registry` locally, Confluent's in production.
//!
//! Schema ids never change once assigned, so both directions are cached for
//! the life of the process.

use apache_avro::Schema;
use choreo_kit::internal_auth::{REGISTRY as AUDIENCE, Signer};
use serde::Deserialize;
use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema registry at {url} unreachable")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("schema registry answered {status} for {url}: {message} (error_code {error_code})")]
    Rejected {
        url: String,
        status: u16,
        error_code: i64,
        message: String,
    },
    #[error("schema {schema_id} from the registry is not valid Avro")]
    BadSchema {
        schema_id: u32,
        #[source]
        source: Box<apache_avro::Error>,
    },
}

impl RegistryError {
    /// Whether waiting and trying again can help: the registry was down or
    /// answered 5xx. A 4xx (unknown id, incompatible schema) will not change.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Rejected { status, .. } => *status >= 500,
            RegistryError::BadSchema { .. } => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RegistryClient {
    base_url: String,
    http: reqwest::Client,
    /// Every call carries a credential: the registry trusts no address.
    signer: Signer,
    ids: Arc<RwLock<HashMap<String, u32>>>,
    schemas: Arc<RwLock<HashMap<u32, Arc<Schema>>>>,
}

#[derive(Deserialize)]
struct IdBody {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error_code: i64,
    #[serde(default)]
    message: String,
}

impl RegistryClient {
    /// A client of the registry at `base_url`, signing its calls with
    /// `signer`.
    pub fn new(base_url: impl Into<String>, signer: Signer) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            http,
            signer,
            ids: Arc::default(),
            schemas: Arc::default(),
        }
    }

    /// Sends `request` to `url` with a fresh credential (the registry
    /// trusts no address); no answer is [`RegistryError::Unreachable`].
    async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        request
            .header(
                reqwest::header::AUTHORIZATION,
                self.signer.authorization(AUDIENCE),
            )
            .send()
            .await
            .map_err(|source| RegistryError::Unreachable {
                url: url.to_owned(),
                source,
            })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Whether the registry answers, for readiness probes: lists its
    /// subjects within `timeout`.
    ///
    /// # Errors
    /// When the registry is unreachable, slow or answers with an error.
    pub async fn ping(&self, timeout: Duration) -> Result<(), RegistryError> {
        let url = format!("{}/subjects", self.base_url);
        let response = self
            .send(&url, self.http.get(&url).timeout(timeout))
            .await?;
        read_json::<serde_json::Value>(&url, response).await?;
        Ok(())
    }

    /// Registers `schema_text` under `subject` (a no-op answering the
    /// existing id when it is already there) and returns its global id.
    ///
    /// # Errors
    /// [`RegistryError::Rejected`] with error code 409 when the schema is
    /// incompatible with the subject's earlier versions.
    #[tracing::instrument(skip_all, fields(subject = %subject), err)]
    pub async fn register(&self, subject: &str, schema_text: &str) -> Result<u32, RegistryError> {
        if let Some(id) = self.ids.read().ok().and_then(|m| m.get(subject).copied()) {
            return Ok(id);
        }
        let url = format!("{}/subjects/{subject}/versions", self.base_url);
        let body = serde_json::json!({ "schema": schema_text });
        let request = self
            .http
            .post(&url)
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(&body);
        let response = self.send(&url, request).await?;
        let IdBody { id } = read_json(&url, response).await?;
        if let Ok(mut ids) = self.ids.write() {
            ids.insert(subject.to_owned(), id);
        }
        Ok(id)
    }

    /// The schema registered under `schema_id`.
    ///
    /// # Errors
    /// [`RegistryError::Rejected`] (40403) for an unknown id.
    pub async fn schema_by_id(&self, schema_id: u32) -> Result<Arc<Schema>, RegistryError> {
        if let Some(s) = self
            .schemas
            .read()
            .ok()
            .and_then(|m| m.get(&schema_id).cloned())
        {
            return Ok(s);
        }
        let url = format!("{}/schemas/ids/{schema_id}", self.base_url);
        let response = self.send(&url, self.http.get(&url)).await?;
        let SchemaBody { schema } = read_json(&url, response).await?;
        let parsed = Schema::parse_str(&schema).map_err(|e| RegistryError::BadSchema {
            schema_id,
            source: Box::new(e),
        })?;
        let parsed = Arc::new(parsed);
        if let Ok(mut schemas) = self.schemas.write() {
            schemas.insert(schema_id, parsed.clone());
        }
        Ok(parsed)
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    url: &str,
    response: reqwest::Response,
) -> Result<T, RegistryError> {
    let status = response.status();
    if status.is_success() {
        return response
            .json::<T>()
            .await
            .map_err(|source| RegistryError::Unreachable {
                url: url.to_owned(),
                source,
            });
    }
    let body: ErrorBody = response.json().await.unwrap_or_default();
    Err(RegistryError::Rejected {
        url: url.to_owned(),
        status: status.as_u16(),
        error_code: body.error_code,
        message: body.message,
    })
}
