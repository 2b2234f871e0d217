//! Raw management API requests, for the endpoints whose typed responses in
//! `rabbitmq_http_client` do not parse on RabbitMQ 3.10 (`/api/nodes`, `/api/overview`).

use crate::provision::ApiError;
use ebadge_bus::profile::Management;
use serde_json::Value;

/// GETs on the management API, as JSON.
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
