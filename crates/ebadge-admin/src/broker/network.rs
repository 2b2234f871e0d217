//! A cluster whose nodes each run in a network namespace of their own (`ebadge broker up
//! --nodes 3 --namespaces`), so that the links between nodes, and between a node and the host
//! (where haproxy and the clients run), can be cut and healed one by one: the partitions
//! RabbitMQ's own Jepsen suite injects, on one machine.
//!
//! Each node `i` (0-based) lives in namespace `BRIDGE-(i+1)` with address `10.78.S.(11+i)` on a
//! veth whose other end joins the bridge `BRIDGE` (address `10.78.S.1`) in the host's
//! namespace. Nodes name each other by address (`ebadge-PORT@10.78.S.11`, long names), so no
//! host file is touched. A cut is a `blackhole` route in each node's namespace (for a link to
//! the host, in the node's only): packets are dropped silently, as when a switch fails, and each
//! side learns of it only by its own timeouts (Erlang's `net_ticktime`, AMQP heartbeats,
//! haproxy's checks).
//!
//! ```no_run
//! # async fn f() -> Result<(), ebadge_admin::broker::BrokerError> {
//! use ebadge_admin::broker::{End, LocalBroker, UpOptions};
//! let broker = LocalBroker::new("target/partitions");
//! broker.up(&UpOptions { nodes: Some(3), namespaces: true, net_ticktime: Some(10), ..Default::default() }).await?;
//! broker.isolate(0)?;                    // node 1 sees nobody, nobody sees it
//! broker.heal_all()?;
//! broker.cut(End::Node(0), End::Node(2))?; // a bridge: 1 and 3 apart, both still see 2
//! # Ok(()) }
//! ```

use super::layout::BrokerState;
use super::{BrokerError, LocalBroker};
use serde::{Deserialize, Serialize};
use std::process::{Command, Stdio};

/// iproute2's `ip` (run as root: never looked up on the PATH).
pub(super) const IP: &str = "/usr/sbin/ip";

/// The namespaces of a local cluster, kept in `broker.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    /// The bridge in the host's namespace that joins the nodes' links; also the prefix of the
    /// namespaces' names.
    pub bridge: String,
    /// The third octet of the subnet `10.78.S.0/24`.
    pub subnet: u8,
}

impl NetworkState {
    /// A network for the cluster whose haproxy listens on `port`, on a subnet no interface of
    /// the host uses yet.
    pub(super) fn choose(port: u16) -> Result<Self, BrokerError> {
        let addresses = run(IP, &["-o", "-4", "addr", "show"])?;
        let bridge = format!("ebn{port}");
        let start = (port % 200) as u8 + 20;
        (0..200u8)
            .map(|k| start.wrapping_add(k))
            .find(|s| !addresses.contains(&format!(" 10.78.{s}.")))
            .map(|subnet| Self { bridge, subnet })
            .ok_or_else(|| BrokerError::Network {
                command: "choose a subnet".into(),
                output: "every subnet 10.78.*.0/24 is in use on this host".into(),
            })
    }

    /// The host's address on the bridge: where the nodes see haproxy and the clients come from.
    pub fn host_address(&self) -> String {
        format!("10.78.{}.1", self.subnet)
    }

    /// Node `index`'s (0-based) address in its namespace.
    pub fn node_address(&self, index: usize) -> String {
        format!("10.78.{}.{}", self.subnet, 11 + index)
    }

    /// Node `index`'s (0-based) namespace.
    pub fn namespace(&self, index: usize) -> String {
        format!("{}-{}", self.bridge, index + 1)
    }

    fn address(&self, end: End) -> String {
        match end {
            End::Node(i) => self.node_address(i),
            End::Host => self.host_address(),
        }
    }
}

/// One end of a link that [`LocalBroker::cut`] cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum End {
    /// Node `i` (0-based).
    Node(usize),
    /// The host's namespace: haproxy, the clients, the tools.
    Host,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Node(i) => write!(f, "node {}", i + 1),
            End::Host => f.write_str("host"),
        }
    }
}

impl LocalBroker {
    /// The namespaced network, or why there is none (never set up, or not there now).
    fn network(&self) -> Result<(BrokerState, NetworkState), BrokerError> {
        let state = self.existing_state()?;
        let network = state
            .network
            .clone()
            .ok_or_else(|| BrokerError::NotNamespaced(self.dir.clone()))?;
        if !is_root() {
            return Err(BrokerError::NeedsRoot);
        }
        if !std::path::Path::new("/sys/class/net")
            .join(&network.bridge)
            .exists()
        {
            return Err(BrokerError::Network {
                command: format!("find the bridge {}", network.bridge),
                output: format!(
                    "the cluster's network is not there (stopped, or the machine restarted): \
                     `ebadge broker up --dir {}` makes it again",
                    self.dir.display()
                ),
            });
        }
        Ok((state, network))
    }

    /// Cuts the link between `a` and `b`: from then on neither hears the other (packets are
    /// dropped, not refused). Cutting a cut link does nothing.
    pub fn cut(&self, a: End, b: End) -> Result<(), BrokerError> {
        self.set_link(a, b, "replace")
    }

    /// Restores the link between `a` and `b` (nothing if it was not cut).
    pub fn heal(&self, a: End, b: End) -> Result<(), BrokerError> {
        self.set_link(a, b, "del")
    }

    /// Cuts node `index` (0-based) off from every other node and from the host.
    pub fn isolate(&self, index: usize) -> Result<(), BrokerError> {
        let (state, _) = self.network()?;
        for other in (0..state.nodes.len()).filter(|&o| o != index) {
            self.cut(End::Node(index), End::Node(other))?;
        }
        self.cut(End::Node(index), End::Host)
    }

    /// Restores every link.
    pub fn heal_all(&self) -> Result<(), BrokerError> {
        let (state, network) = self.network()?;
        for i in 0..state.nodes.len() {
            let namespace = network.namespace(i);
            run(
                IP,
                &["-n", &namespace, "route", "flush", "type", "blackhole"],
            )?;
        }
        Ok(())
    }

    /// The links cut now, each once (`a < b`).
    pub fn cuts(&self) -> Result<Vec<(End, End)>, BrokerError> {
        let (state, network) = self.network()?;
        let mut cuts = Vec::new();
        for i in 0..state.nodes.len() {
            let routes = run(
                IP,
                &[
                    "-n",
                    &network.namespace(i),
                    "route",
                    "show",
                    "type",
                    "blackhole",
                ],
            )?;
            for peer in (0..state.nodes.len())
                .map(End::Node)
                .chain([End::Host])
                .filter(|&e| e != End::Node(i))
            {
                let cut = routes
                    .lines()
                    .any(|l| l.split_whitespace().nth(1) == Some(&network.address(peer)));
                let pair = (End::Node(i).min(peer), End::Node(i).max(peer));
                if cut && !cuts.contains(&pair) {
                    cuts.push(pair);
                }
            }
        }
        Ok(cuts)
    }

    /// `ip route {replace|del} blackhole` in the namespace of each node end of the link `a`–`b`.
    /// Not in the host's: there a local sender (haproxy) could be told at once, where a real cut
    /// leaves it to its timeouts; a node that drops its replies to the host is enough.
    fn set_link(&self, a: End, b: End, verb: &str) -> Result<(), BrokerError> {
        let (state, network) = self.network()?;
        for end in [a, b] {
            if let End::Node(i) = end
                && i >= state.nodes.len()
            {
                return Err(BrokerError::Network {
                    command: format!("{verb} the link {a}–{b}"),
                    output: format!("the cluster has {} nodes", state.nodes.len()),
                });
            }
        }
        if a == b {
            return Ok(());
        }
        for (here, there) in [(a, b), (b, a)] {
            let End::Node(i) = here else { continue };
            let target = format!("{}/32", network.address(there));
            let namespace = network.namespace(i);
            match run(IP, &["-n", &namespace, "route", verb, "blackhole", &target]) {
                Ok(_) => {}
                // Healing a link that is not cut: "RTNETLINK answers: No such process".
                Err(BrokerError::Network { output, .. })
                    if verb == "del" && output.contains("No such process") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Makes the bridge and each node's namespace, if they are not there (after `down`, or a
    /// reboot).
    pub(super) fn network_up(
        &self,
        state: &BrokerState,
        network: &NetworkState,
    ) -> Result<(), BrokerError> {
        if !is_root() {
            return Err(BrokerError::NeedsRoot);
        }
        let bridge = &network.bridge;
        if run(IP, &["link", "show", bridge]).is_ok() {
            // Ours only if it carries our address: another broker's bridge is never taken over
            // (its `down` would end our nodes' processes).
            let addresses = run(IP, &["-o", "-4", "addr", "show", "dev", bridge])?;
            if !addresses.contains(&format!(" {}/24", network.host_address())) {
                return Err(BrokerError::Network {
                    command: format!("use the bridge {bridge}"),
                    output: format!(
                        "{bridge} exists without {}: it belongs to another broker or program. \
                         Stop that broker (`ebadge broker down`) or remove the bridge \
                         (`ip link del {bridge}`), then try again",
                        network.host_address()
                    ),
                });
            }
        } else {
            run(IP, &["link", "add", bridge, "type", "bridge"])?;
            run(
                IP,
                &[
                    "addr",
                    "add",
                    &format!("{}/24", network.host_address()),
                    "dev",
                    bridge,
                ],
            )?;
            run(IP, &["link", "set", bridge, "up"])?;
        }
        let namespaces = run(IP, &["netns", "list"])?;
        for i in 0..state.nodes.len() {
            let namespace = network.namespace(i);
            let outside = format!("{namespace}h");
            if namespaces
                .lines()
                .any(|l| l.split_whitespace().next() == Some(namespace.as_str()))
            {
                let complete = run(
                    IP,
                    &["-n", &namespace, "-o", "-4", "addr", "show", "dev", "eth0"],
                )
                .is_ok_and(|a| a.contains(&format!(" {}/24", network.node_address(i))));
                if complete {
                    continue;
                }
                // Half made by an `up` that failed: made again.
                let _ = run(IP, &["netns", "del", &namespace]);
            }
            let _ = run(IP, &["link", "del", &outside]);
            run(IP, &["netns", "add", &namespace])?;
            run(
                IP,
                &[
                    "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns",
                    &namespace,
                ],
            )?;
            run(IP, &["link", "set", &outside, "master", bridge, "up"])?;
            let inside = |args: &[&str]| {
                let mut all = vec!["-n", namespace.as_str()];
                all.extend(args);
                run(IP, &all)
            };
            inside(&[
                "addr",
                "add",
                &format!("{}/24", network.node_address(i)),
                "dev",
                "eth0",
            ])?;
            inside(&["link", "set", "eth0", "up"])?;
            inside(&["link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Removes the namespaces and the bridge, ending what still runs in them (`epmd`, which
    /// every node starts and which outlives it).
    pub(super) fn network_down(
        &self,
        state: &BrokerState,
        network: &NetworkState,
    ) -> Result<(), BrokerError> {
        if !is_root() {
            return Err(BrokerError::NeedsRoot);
        }
        for i in 0..state.nodes.len() {
            let namespace = network.namespace(i);
            if let Ok(pids) = run(IP, &["netns", "pids", &namespace]) {
                for pid in pids.split_whitespace() {
                    let _ = Command::new("/bin/kill").args(["-9", pid]).status();
                }
            }
            let _ = run(IP, &["netns", "del", &namespace]);
            // Not always removed with its namespace (seen under gVisor).
            let _ = run(IP, &["link", "del", &format!("{namespace}h")]);
        }
        let _ = run(IP, &["link", "del", &network.bridge]);
        Ok(())
    }
}

/// Runs `program args…`; its output, or an error with what it printed.
fn run(program: &str, args: &[&str]) -> Result<String, BrokerError> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BrokerError::Io {
            path: program.into(),
            source,
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(BrokerError::Network {
            command: format!("{program} {}", args.join(" ")),
            output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Whether we run as root (the owner of `/proc/self` is the effective user).
pub(super) fn is_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(unix))]
    false
}

#[cfg(test)]
mod tests {
    use super::super::{LocalBroker, UpOptions};
    use super::*;

    #[test]
    fn each_node_has_a_namespace_and_an_address_of_its_own_on_the_hosts_subnet() {
        let network = NetworkState {
            bridge: "ebn5671".into(),
            subnet: 42,
        };
        assert_eq!(network.host_address(), "10.78.42.1");
        assert_eq!(network.node_address(0), "10.78.42.11");
        assert_eq!(network.node_address(2), "10.78.42.13");
        assert_eq!(network.namespace(2), "ebn5671-3");
        assert_eq!(End::Node(0).to_string(), "node 1");
        assert_eq!(End::Host.to_string(), "host");
    }

    #[test]
    fn a_namespaced_node_is_named_by_its_address_and_listens_there_with_the_ticktime_asked() {
        let dir = tempfile::tempdir().unwrap();
        let broker = LocalBroker::new(dir.path());
        broker.pki().init(&["localhost".to_owned()]).unwrap();
        let options = UpOptions {
            nodes: Some(3),
            namespaces: true,
            net_ticktime: Some(10),
            ..Default::default()
        };
        let state = broker.new_state(&options).unwrap();
        let network = state.network.clone().expect("a network");
        let node = &state.nodes[1];
        assert_eq!(
            node.address.as_deref(),
            Some(network.node_address(1).as_str())
        );
        assert_eq!(
            node.namespace.as_deref(),
            Some(network.namespace(1).as_str())
        );
        assert!(
            node.name
                .ends_with(&format!("@{}", network.node_address(1)))
        );
        broker.write_config(&state, node).unwrap();
        let conf = std::fs::read_to_string(broker.node_dir(node).join("rabbitmq.conf")).unwrap();
        for line in [
            format!("management.tcp.ip = {}", network.node_address(1)),
            format!("prometheus.tcp.ip = {}", network.node_address(1)),
            "net_ticktime = 10".to_owned(),
        ] {
            assert!(conf.lines().any(|l| l == line), "{line} in\n{conf}");
        }
        let env = broker.env(node);
        assert!(
            env.iter()
                .any(|(k, v)| *k == "RABBITMQ_USE_LONGNAME" && v.as_os_str() == "true")
        );
        // On the host's loopback, nothing of this.
        let plain = broker
            .new_state(&UpOptions {
                nodes: Some(3),
                ..Default::default()
            })
            .unwrap();
        assert!(plain.network.is_none() && plain.nodes[0].name.ends_with("@localhost"));
        assert!(
            !broker
                .env(&plain.nodes[0])
                .iter()
                .any(|(k, _)| *k == "RABBITMQ_USE_LONGNAME")
        );
    }

    #[test]
    fn namespaces_and_the_ticktime_stay_what_the_directory_was_set_up_with() {
        let broker = LocalBroker::new(std::env::temp_dir());
        let asked = |namespaces, net_ticktime| UpOptions {
            namespaces,
            net_ticktime,
            ..Default::default()
        };
        let plain = broker
            .new_state(&UpOptions {
                nodes: Some(3),
                ..Default::default()
            })
            .unwrap();
        assert!(broker.check_fixed(&plain, &asked(false, None)).is_ok());
        let refused = broker.check_fixed(&plain, &asked(true, None)).unwrap_err();
        assert!(refused.to_string().contains("namespaces"), "{refused}");
        let refused = broker
            .check_fixed(&plain, &asked(false, Some(10)))
            .unwrap_err();
        assert!(refused.to_string().contains("60 s"), "{refused}");
        let mut ten = plain.clone();
        ten.net_ticktime = Some(10);
        assert!(broker.check_fixed(&ten, &asked(false, Some(10))).is_ok());
        assert!(broker.check_fixed(&ten, &asked(false, None)).is_ok());
    }
}
