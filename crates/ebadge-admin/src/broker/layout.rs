//! The broker directory: where each part lives, and `broker.toml`, the ports and names kept
//! across restarts so clients reconnect to the same addresses.

use super::{ADMIN_USER, BrokerError, LocalBroker, UpOptions};
use crate::profile::{Management, OperatorProfile};
use ebadge_bus::profile::Profile;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One RabbitMQ node of a local broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Erlang node name, `ebadge-<amqps port>@localhost`.
    pub name: String,
    /// Its directory under the broker directory (`node`, or `node-1` … in a cluster).
    pub dir: String,
    /// AMQPS port (the node's only AMQP listener).
    pub amqps_port: u16,
    /// Management API port, on 127.0.0.1.
    pub management_port: u16,
    /// Erlang distribution port.
    pub dist_port: u16,
    /// The `rabbitmq_prometheus` endpoint's port, on 127.0.0.1 (0 in a directory set up before
    /// it existed: chosen at the next start).
    #[serde(default)]
    pub prometheus_port: u16,
}

/// The haproxy in front of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontState {
    /// AMQPS port clients connect to (TLS passed through to a node).
    pub amqps_port: u16,
    /// Management API port (forwarded to a live node).
    pub management_port: u16,
    /// haproxy's own Prometheus exporter, on 127.0.0.1 (0: chosen at the next start).
    #[serde(default)]
    pub prometheus_port: u16,
}

/// Ports and names of a local broker, kept in `D/broker.toml` so clients reconnect to the same
/// addresses after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerState {
    /// The administrator's password (the file is mode 0600).
    pub admin_password: String,
    /// The Erlang cookie the nodes and rabbitmqctl share.
    pub cookie: String,
    /// haproxy, for a cluster.
    pub front: Option<FrontState>,
    /// The nodes (one, or a cluster).
    pub nodes: Vec<NodeState>,
}

impl BrokerState {
    /// The AMQPS port clients use: haproxy's for a cluster, the node's otherwise.
    pub fn amqps_port(&self) -> u16 {
        self.front
            .as_ref()
            .map_or(self.nodes[0].amqps_port, |f| f.amqps_port)
    }
    /// The management port tools use.
    pub fn management_port(&self) -> u16 {
        self.front
            .as_ref()
            .map_or(self.nodes[0].management_port, |f| f.management_port)
    }
    /// The administrator's account on the management API (haproxy's port for a cluster).
    pub fn management(&self) -> Management {
        self.management_at(self.management_port())
    }
    /// The administrator's account on the management API at `port` (one node's own).
    pub fn management_at(&self, port: u16) -> Management {
        Management {
            url: format!("http://127.0.0.1:{port}"),
            user: ADMIN_USER.into(),
            password: self.admin_password.clone(),
        }
    }
}

impl LocalBroker {
    pub(super) fn node_dir(&self, node: &NodeState) -> PathBuf {
        self.dir.join(&node.dir)
    }

    pub(super) fn state_path(&self) -> PathBuf {
        self.dir.join("broker.toml")
    }

    pub(super) fn pid_path(&self, node: &NodeState) -> PathBuf {
        self.node_dir(node).join("rabbitmq.pid")
    }

    pub(super) fn haproxy_dir(&self) -> PathBuf {
        self.dir.join("haproxy")
    }

    pub(super) fn node_log(&self, node: &NodeState) -> PathBuf {
        self.node_dir(node).join("log").join("console.log")
    }

    pub(super) fn existing_state(&self) -> Result<BrokerState, BrokerError> {
        self.state()?.ok_or_else(|| BrokerError::Io {
            path: self.state_path(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no broker was set up in this directory; `ebadge broker up` starts one",
            ),
        })
    }

    pub(super) fn new_state(&self, options: &UpOptions) -> Result<BrokerState, BrokerError> {
        let count = options.nodes.unwrap_or(1).max(1);
        let clustered = count > 1;
        let front = if clustered {
            Some(FrontState {
                amqps_port: options.port.map_or_else(free_port, Ok)?,
                management_port: free_port()?,
                prometheus_port: free_port()?,
            })
        } else {
            None
        };
        let mut nodes = Vec::new();
        for i in 0..count {
            let amqps_port = match options.port {
                Some(p) if !clustered => p,
                _ => free_port()?,
            };
            nodes.push(NodeState {
                name: format!("ebadge-{amqps_port}@localhost"),
                dir: if clustered {
                    format!("node-{}", i + 1)
                } else {
                    "node".into()
                },
                amqps_port,
                management_port: free_port()?,
                dist_port: free_port()?,
                prometheus_port: free_port()?,
            });
        }
        Ok(BrokerState {
            admin_password: uuid::Uuid::new_v4().simple().to_string(),
            cookie: uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
            front,
            nodes,
        })
    }

    /// Gives the metrics endpoints of a directory set up before they existed their ports.
    pub(super) fn with_metrics_ports(
        &self,
        mut state: BrokerState,
    ) -> Result<BrokerState, BrokerError> {
        for node in &mut state.nodes {
            if node.prometheus_port == 0 {
                node.prometheus_port = free_port()?;
            }
        }
        if let Some(front) = &mut state.front
            && front.prometheus_port == 0
        {
            front.prometheus_port = free_port()?;
        }
        Ok(state)
    }

    pub(super) fn write_state(&self, state: &BrokerState) -> Result<(), BrokerError> {
        create_dir(&self.dir)?;
        write_file(
            &self.state_path(),
            &toml::to_string(state).expect("state serializes"),
            true,
        )
    }

    pub(super) fn write_profile(&self, state: &BrokerState) -> Result<(), BrokerError> {
        let profile = OperatorProfile {
            client: Profile {
                amqps_url: format!("amqps://localhost:{}", state.amqps_port()),
                ca: "pki/ca.pem".into(),
                certs: "pki/clients".into(),
                heartbeat_seconds: None,
            },
            management: state.management(),
            ca_key: Some("pki/ca.key".into()),
        };
        profile
            .save(&self.profile_path())
            .map_err(|source| BrokerError::Io {
                path: self.profile_path(),
                source,
            })
    }
}

pub(super) fn free_port() -> Result<u16, BrokerError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| BrokerError::Io {
            path: "127.0.0.1:0".into(),
            source,
        })
}

pub(super) fn write_file(path: &Path, text: &str, private: bool) -> Result<(), BrokerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|source| BrokerError::Io {
            path: path.into(),
            source,
        })
}

pub(super) fn create_dir(dir: &Path) -> Result<(), BrokerError> {
    std::fs::create_dir_all(dir).map_err(|source| BrokerError::Io {
        path: dir.into(),
        source,
    })
}
