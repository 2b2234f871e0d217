//! The management API, in one place: the typed client of `rabbitmq_http_client`
//! ([`admin_client`]), its error ([`ApiError`]), and raw JSON requests ([`RawApi`]) for the
//! endpoints whose typed responses do not parse on RabbitMQ 3.10 (`/api/nodes`, `/api/overview`)
//! or that it does not offer (policies with any definition, `get` on a queue, bindings' property
//! keys).

use crate::profile::Management;
use serde_json::Value;

/// The HTTP method of [`RawApi::send`], so that callers need no HTTP crate of their own.
pub use reqwest::Method;

/// The management API client type used throughout.
pub type AdminClient = rabbitmq_http_client::api::Client<String, String, String>;

/// A management API failure.
#[derive(Debug, thiserror::Error)]
#[error("management API: {context}: {reason}")]
pub struct ApiError {
    /// What we were doing.
    pub context: String,
    /// What the API said.
    pub reason: String,
}

impl ApiError {
    /// Wraps an error with what was being done.
    pub fn new(context: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self {
            context: context.into(),
            reason: e.to_string(),
        }
    }
}

/// The typed management API client for the administrator account of `m`.
pub fn admin_client(m: &Management) -> AdminClient {
    AdminClient::new(
        format!("{}/api", m.url.trim_end_matches('/')),
        m.user.clone(),
        m.password.clone(),
    )
}

/// Requests on the management API, as JSON.
#[derive(Debug, Clone)]
pub struct RawApi {
    client: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

/// One node of the cluster, as `/api/nodes` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeInfo {
    /// Erlang node name.
    pub name: String,
    /// Whether it runs now (a stopped member is still listed).
    pub running: bool,
}

impl RawApi {
    /// Requests with the administrator account of `m`.
    pub fn new(m: &Management) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("a plain HTTP client builds"),
            base: format!("{}/api", m.url.trim_end_matches('/')),
            user: m.user.clone(),
            password: m.password.clone(),
        }
    }

    /// `GET /api/<path>`.
    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        let context = format!("GET /api/{path}");
        self.client
            .get(format!("{}/{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| ApiError::new(&context, e))?
            .json()
            .await
            .map_err(|e| ApiError::new(&context, e))
    }

    /// `PUT`, `POST` or `DELETE` on `/api/<path>` with a JSON body; the answer's JSON (`Null`
    /// when it has none). A `DELETE` of something already gone succeeds.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let context = format!("{method} /api/{path}");
        let response = self
            .client
            .request(method.clone(), format!("{}/{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .json(body)
            .send()
            .await
            .map_err(|e| ApiError::new(&context, e))?;
        if method == reqwest::Method::DELETE && response.status() == reqwest::StatusCode::NOT_FOUND
        {
            return Ok(Value::Null);
        }
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ApiError::new(&context, e))?;
        if !status.is_success() {
            return Err(ApiError::new(&context, format!("{status}: {text}")));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The cluster's members, running or not.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ApiError> {
        let nodes = self.get("nodes").await?;
        Ok(nodes
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| NodeInfo {
                name: n["name"].as_str().unwrap_or("?").to_owned(),
                running: n["running"].as_bool().unwrap_or(false),
            })
            .collect())
    }
}
