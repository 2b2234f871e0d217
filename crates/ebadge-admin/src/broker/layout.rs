//! The broker directory: where each part lives, and `broker.toml`, the ports and names kept
//! across restarts so clients reconnect to the same addresses.

use super::{ADMIN_USER, BrokerError, LocalBroker, UpOptions};
use crate::profile::{Management, OperatorProfile};
use ebadge_bus::Profile;
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
    /// Its address in its own network namespace ([`UpOptions::namespaces`]); none: it listens on
    /// the host's loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Its network namespace, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl NodeState {
    /// The address its listeners are reached at from the host.
    pub fn host(&self) -> &str {
        self.address.as_deref().unwrap_or("127.0.0.1")
    }

    /// The host name its AMQPS address uses (`localhost` on the host's loopback, as in the
    /// profile).
    pub fn amqps_host(&self) -> &str {
        self.address.as_deref().unwrap_or("localhost")
    }
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
    /// Seconds between management statistics ([`UpOptions::statistics_interval`]); none:
    /// RabbitMQ's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics_interval: Option<u32>,
    /// Erlang's `net_ticktime` ([`UpOptions::net_ticktime`]); none: RabbitMQ's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_ticktime: Option<u32>,
    /// The nodes' namespaces ([`UpOptions::namespaces`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<super::NetworkState>,
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
        self.management_on("127.0.0.1", port)
    }
    /// The administrator's account on node `node`'s own management API.
    pub fn node_management(&self, node: &NodeState) -> Management {
        self.management_on(node.host(), node.management_port)
    }
    fn management_on(&self, host: &str, port: u16) -> Management {
        Management {
            url: format!("http://{host}:{port}"),
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
        let mut ports = FreePorts::default();
        if let Some(port) = options.port {
            ports.take(port);
        }
        let front = if clustered {
            Some(FrontState {
                amqps_port: options.port.map_or_else(|| ports.next(), Ok)?,
                management_port: ports.next()?,
                prometheus_port: ports.next()?,
            })
        } else {
            None
        };
        let network = match (options.namespaces, &front) {
            (false, _) => None,
            (true, Some(front)) => Some(super::NetworkState::choose(front.amqps_port)?),
            (true, None) => {
                return Err(BrokerError::Network {
                    command: "--namespaces".into(),
                    output: "namespaces are for a cluster: add --nodes 3".into(),
                });
            }
        };
        let mut nodes = Vec::new();
        for i in 0..count {
            let amqps_port = match options.port {
                Some(p) if !clustered => p,
                _ => ports.next()?,
            };
            let address = network.as_ref().map(|n| n.node_address(i));
            nodes.push(NodeState {
                name: format!(
                    "ebadge-{amqps_port}@{}",
                    address.as_deref().unwrap_or("localhost")
                ),
                namespace: network.as_ref().map(|n| n.namespace(i)),
                address,
                dir: if clustered {
                    format!("node-{}", i + 1)
                } else {
                    "node".into()
                },
                amqps_port,
                management_port: ports.next()?,
                dist_port: ports.next()?,
                prometheus_port: ports.next()?,
            });
        }
        Ok(BrokerState {
            admin_password: uuid::Uuid::new_v4().simple().to_string(),
            cookie: uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
            front,
            nodes,
            statistics_interval: options.statistics_interval,
            net_ticktime: options.net_ticktime,
            network,
        })
    }

    /// Gives every endpoint of an existing directory a port of its own: the metrics endpoints
    /// of a directory set up before they existed (port 0), and any port that clashes with one
    /// before it (an earlier `broker up` could hand out one port twice). AMQPS ports stay: they
    /// name the nodes and are in the clients' profiles.
    pub(super) fn with_distinct_ports(
        &self,
        mut state: BrokerState,
    ) -> Result<BrokerState, BrokerError> {
        let mut ports = FreePorts::default();
        for node in &state.nodes {
            ports.take(node.amqps_port);
        }
        if let Some(front) = &state.front {
            ports.take(front.amqps_port);
        }
        let mut own = |port: &mut u16| -> Result<(), BrokerError> {
            if *port == 0 || !ports.take(*port) {
                *port = ports.next()?;
            }
            Ok(())
        };
        for node in &mut state.nodes {
            own(&mut node.management_port)?;
            own(&mut node.dist_port)?;
            own(&mut node.prometheus_port)?;
        }
        if let Some(front) = &mut state.front {
            own(&mut front.management_port)?;
            own(&mut front.prometheus_port)?;
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
                // The broker runs with the bus's limit (config::security_settings).
                max_message_bytes: None,
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

/// Free ports for one broker, each handed out once. The system may offer a port again as soon
/// as its probe is closed, and two endpoints of one broker on one port fail at start (seen: a
/// node whose AMQPS and Prometheus ports were the same answered TLS with plain HTTP).
#[derive(Debug, Default)]
pub(super) struct FreePorts(std::collections::HashSet<u16>);

impl FreePorts {
    /// Marks `port` as taken (given by the user, or by an earlier `broker up`); false if it
    /// already was.
    pub(super) fn take(&mut self, port: u16) -> bool {
        self.0.insert(port)
    }

    /// A free port not handed out before.
    pub(super) fn next(&mut self) -> Result<u16, BrokerError> {
        self.next_from(free_port)
    }

    fn next_from(
        &mut self,
        mut probe: impl FnMut() -> Result<u16, BrokerError>,
    ) -> Result<u16, BrokerError> {
        loop {
            let port = probe()?;
            if self.0.insert(port) {
                return Ok(port);
            }
        }
    }
}

fn free_port() -> Result<u16, BrokerError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| BrokerError::Io {
            path: "127.0.0.1:0".into(),
            source,
        })
}

/// Writes `text` to `path`; a `private` file is owner-only (0600), also when it existed with
/// another mode (the mode of `open` applies only to a file it creates).
pub(super) fn write_file(path: &Path, text: &str, private: bool) -> Result<(), BrokerError> {
    use crate::files::{create_with_mode, set_mode};
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        create_with_mode(&mut options, 0o600);
    }
    options
        .open(path)
        .and_then(|mut f| {
            if private {
                // Before the text goes in: a secret never sits in a readable file.
                set_mode(&f, 0o600)?;
            }
            f.write_all(text.as_bytes())
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_and_the_profile_are_owner_only_when_rewritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let readable = |path: &Path| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap()
        };
        // The Erlang cookie and broker.toml are written this way.
        let cookie = dir.path().join(".erlang.cookie");
        write_file(&cookie, "one", true).unwrap();
        assert_eq!(mode(&cookie), 0o600);
        readable(&cookie);
        write_file(&cookie, "two", true).unwrap();
        assert_eq!(mode(&cookie), 0o600, "rewritten");
        // The operator profile holds the management password.
        let broker = LocalBroker::new(dir.path());
        let options = UpOptions::default();
        let state = broker.new_state(&options).unwrap();
        broker.write_profile(&state).unwrap();
        let profile = broker.profile_path();
        assert_eq!(mode(&profile), 0o600);
        readable(&profile);
        broker.write_profile(&state).unwrap();
        assert_eq!(mode(&profile), 0o600, "rewritten");
    }

    #[test]
    fn a_port_the_system_offers_twice_is_handed_out_once() {
        let mut offers = [5671, 5671, 15672, 5671, 15672, 15692].into_iter();
        let mut probe = || Ok(offers.next().expect("enough offers"));
        let mut ports = FreePorts::default();
        ports.take(15672);
        let got: Vec<u16> = (0..2)
            .map(|_| ports.next_from(&mut probe).unwrap())
            .collect();
        assert_eq!(got, [5671, 15692]);
    }

    #[test]
    fn a_directory_with_a_port_twice_gets_a_new_one_for_the_second_endpoint() {
        let broker = LocalBroker::new(std::env::temp_dir());
        let options = UpOptions {
            nodes: Some(3),
            ..Default::default()
        };
        let mut state = broker.new_state(&options).unwrap();
        let amqps = state.nodes[0].amqps_port;
        state.nodes[0].prometheus_port = amqps;
        state.nodes[1].management_port = state.nodes[2].dist_port;
        let before = state.clone();
        let fixed = broker.with_distinct_ports(state).unwrap();
        assert_eq!(
            fixed.nodes[0].amqps_port, amqps,
            "AMQPS ports name the nodes"
        );
        assert_ne!(fixed.nodes[0].prometheus_port, amqps);
        assert_eq!(
            fixed.nodes[1].management_port, before.nodes[1].management_port,
            "the first keeps it"
        );
        assert_ne!(fixed.nodes[2].dist_port, before.nodes[2].dist_port);
        assert_eq!(
            fixed.nodes[1].dist_port, before.nodes[1].dist_port,
            "the rest stay"
        );
    }
}
