//! The local broker supervisor: Debian's `rabbitmq-server` run in a directory of ours with our
//! configuration (TLS only, SASL EXTERNAL only, no guest, management on loopback), never the
//! system service.
//!
//! Layout of a broker directory `D`: `D/pki` (see [`crate::pki`]), `D/node` (configuration, data,
//! logs, the Erlang cookie) or, for a cluster, `D/node-1` … `D/node-N` and `D/haproxy`,
//! `D/broker.toml` (ports and node names, kept across restarts so clients reconnect to the same
//! address) and `D/profile.toml` (the connection profile for `--as NAME`).
//!
//! A cluster (`nodes > 1`) forms by a fixed peer list (`classic_config`) with one shared Erlang
//! cookie; haproxy listens in front of it (see [`crate::haproxy`]) and the profile points there.

mod cluster;
mod config;
mod layout;
mod network;
mod process;
mod tls;

pub use config::{
    ENABLED_PLUGINS, advanced_config, cluster_fleet_settings, fleet_settings, security_settings,
};
pub use layout::{BrokerState, FrontState, NodeState};
pub use network::{End, NetworkState};

use crate::haproxy;
use crate::pki::Pki;
use process::{kill_and_wait, live_pid, stop_process};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's package puts the server script that runs in the foreground as the caller.
pub const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// Its control tool.
pub const RABBITMQCTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";

/// The program named by the environment variable `var` (another RabbitMQ than Debian's, such
/// as a newer release in a chroot, for a benchmark), or `default`.
fn program(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// The management API account that provisioning, audit and revoke use.
pub const ADMIN_USER: &str = ebadge_bus::conventions::MANAGEMENT_USER;

/// How long `up` waits for a node to boot, or a cluster to form (7 s and 20 s here when new;
/// minutes for a node that loads 240,000 definitions).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// A broker supervisor failure, saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// RabbitMQ (or haproxy, for a cluster) is not installed.
    #[error(
        "{1} is not installed ({0} is missing): run `apt-get install -y {1}` (as root) or \
         `make deps`, then try again"
    )]
    NotInstalled(PathBuf, &'static str),
    /// The directory holds a broker of another size.
    #[error(
        "{dir} holds a broker of {has} node(s), not {asked}: use another directory, or \
         stop that broker (`ebadge broker down`) and remove the directory"
    )]
    Shape {
        /// The broker directory.
        dir: PathBuf,
        /// Nodes it has.
        has: usize,
        /// Nodes asked for.
        asked: usize,
    },
    /// A running broker was asked for another statistics interval.
    #[error(
        "{dir} has nodes running with management statistics every {has}; \
         stop it first (`ebadge broker down --dir {dir}`), then `up` with the new interval"
    )]
    StatisticsWhileRunning {
        /// The broker directory.
        dir: PathBuf,
        /// The interval it runs with, in words.
        has: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The PKI failed.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// The node did not come up.
    #[error("the broker did not start: {reason}\nlast lines of {log}:\n{tail}")]
    Boot {
        /// What happened.
        reason: String,
        /// The console log.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },
    /// A node runs but does not complete TLS on its AMQPS port, or does not present the PKI's
    /// server certificate.
    #[error(
        "node {node} does not complete TLS with the broker's server certificate: {reason}. Check \
         that pki/server.pem and pki/server.key are readable and belong together, then \
         `ebadge broker reload-tls` (the node's log: {log})"
    )]
    Tls {
        /// The Erlang node name.
        node: String,
        /// What the handshake on its AMQPS port did.
        reason: String,
        /// The node's console log.
        log: PathBuf,
    },
    /// A link of a cluster that was not set up with namespaces was to be cut.
    #[error(
        "the broker in {0} was not set up with --namespaces: its nodes share the host's network, \
         so no link between them can be cut. Set up one that can: `ebadge broker up --dir NEW \
         --nodes 3 --namespaces` (as root)"
    )]
    NotNamespaced(PathBuf),
    /// Namespaces were asked for by a user who cannot make them.
    #[error(
        "a cluster set up with --namespaces has a network namespace per node and a bridge: \
         making, cutting and removing them needs root (`sudo ebadge broker …`)"
    )]
    NeedsRoot,
    /// A setting fixed when the directory was set up was asked with another value.
    #[error(
        "{dir} was set up with {what} {has}: it stays so. Use another directory, or stop this \
         broker (`ebadge broker down --dir {dir}`) and remove the directory"
    )]
    Fixed {
        /// The broker directory.
        dir: PathBuf,
        /// The option.
        what: &'static str,
        /// What the directory has, in words.
        has: String,
    },
    /// An `ip` command that sets up or cuts the nodes' network failed.
    #[error("{command} failed: {output}")]
    Network {
        /// The command.
        command: String,
        /// What it printed.
        output: String,
    },
    /// A port is taken.
    #[error("port {0} is in use: choose another port, or stop what listens there")]
    PortInUse(u16),
    /// rabbitmqctl failed.
    #[error("rabbitmqctl {command} failed: {output}")]
    Ctl {
        /// The subcommand.
        command: String,
        /// What it printed.
        output: String,
    },
}

impl LocalBroker {
    /// Refuses `--namespaces` or `--net-ticktime` for a directory set up otherwise.
    fn check_fixed(&self, state: &BrokerState, options: &UpOptions) -> Result<(), BrokerError> {
        let fixed = |what, has: String| BrokerError::Fixed {
            dir: self.dir.clone(),
            what,
            has,
        };
        if options.namespaces && state.network.is_none() {
            return Err(fixed(
                "namespaces",
                "none (its nodes share the host's network)".into(),
            ));
        }
        match (options.net_ticktime, state.net_ticktime) {
            (Some(asked), has) if has != Some(asked) => Err(fixed(
                "net_ticktime",
                has.map_or_else(|| "60 s (RabbitMQ's default)".into(), |s| format!("{s} s")),
            )),
            _ => Ok(()),
        }
    }
}

/// `program`, run in `node`'s network namespace if it has one (where its `epmd` listens).
fn in_namespace(node: &NodeState, program: &Path) -> Command {
    match &node.namespace {
        Some(namespace) => {
            let mut command = Command::new(network::IP);
            command.args(["netns", "exec", namespace]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// The statistics interval a broker directory keeps after `up`: the one `asked` for, else the
/// one it has. A node that runs keeps the interval it started with, so a change while any node
/// runs is refused (the error names the interval in use).
fn statistics_interval(
    has: Option<u32>,
    asked: Option<u32>,
    any_node_up: bool,
) -> Result<Option<u32>, String> {
    match asked {
        Some(asked) if Some(asked) != has && any_node_up => Err(has.map_or_else(
            || "5 s (RabbitMQ's default)".to_owned(),
            |s| format!("{s} s"),
        )),
        Some(asked) => Ok(Some(asked)),
        None => Ok(has),
    }
}

/// What `up` is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpOptions {
    /// The AMQPS port clients use, for a broker set up for the first time (free ports are chosen
    /// otherwise). For a cluster it is haproxy's port.
    pub port: Option<u16>,
    /// 1 for a single node; 3 (or more) for a cluster with haproxy in front. None: what the
    /// directory holds (a single node when it is new).
    pub nodes: Option<usize>,
    /// Extra host names or IP addresses in the server certificate (besides localhost, 127.0.0.1
    /// and ::1), for clients that reach the broker by another address. Used when the PKI is made.
    pub hosts: Vec<String>,
    /// Seconds between the management statistics every connection, channel and queue reports
    /// (RabbitMQ's `collect_statistics_interval`; its default, 5 s, when never given). Kept in
    /// the directory; a running broker must be stopped to change it.
    pub statistics_interval: Option<u32>,
    /// Each node in a network namespace of its own, for a cluster whose links are to be cut
    /// ([`LocalBroker::cut`]); needs root. Used when the directory is set up.
    pub namespaces: bool,
    /// Seconds of silence after which a node counts a peer as gone (Erlang's `net_ticktime`,
    /// RabbitMQ's default 60): it bounds how long a partition goes unnoticed. Used when the
    /// directory is set up.
    pub net_ticktime: Option<u32>,
}

/// One node in [`BrokerStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// Erlang node name.
    pub name: String,
    /// Its process id, when running.
    pub pid: Option<u32>,
    /// Its own AMQPS address (bypassing haproxy).
    pub amqps_url: String,
    /// Its own management API.
    pub management_url: String,
    /// Its `rabbitmq_prometheus` endpoint (`/metrics`; `/metrics/detailed` for per-queue
    /// figures), on 127.0.0.1; none for a node set up before it existed and not restarted since.
    pub prometheus_url: Option<String>,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerStatus {
    /// Whether every node (and haproxy, for a cluster) is alive.
    pub running: bool,
    /// The broker directory.
    pub dir: PathBuf,
    /// `amqps://localhost:PORT`: haproxy's address for a cluster.
    pub amqps_url: String,
    /// `http://127.0.0.1:PORT`.
    pub management_url: String,
    /// The nodes.
    pub nodes: Vec<NodeStatus>,
    /// haproxy's process id, for a cluster, when running.
    pub haproxy_pid: Option<u32>,
    /// haproxy's Prometheus exporter, for a cluster.
    pub haproxy_metrics_url: Option<String>,
    /// The connection profile file.
    pub profile: PathBuf,
}

/// The status as `ebadge broker status` prints it: one line per part.
impl std::fmt::Display for BrokerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running = |pid: Option<u32>| match pid {
            Some(pid) => format!("running (pid {pid})"),
            None => "stopped".into(),
        };
        let up = self.nodes.iter().filter(|n| n.pid.is_some()).count();
        let broker = match (self.running, up) {
            (true, _) => "running",
            (false, 0) => "stopped",
            (false, _) => "partly running",
        };
        writeln!(f, "broker      {broker}")?;
        for (i, node) in self.nodes.iter().enumerate() {
            writeln!(
                f,
                "node {}      {} {} ({})",
                i + 1,
                node.name,
                running(node.pid),
                node.amqps_url
            )?;
        }
        if self.nodes.len() > 1 {
            writeln!(f, "haproxy     {}", running(self.haproxy_pid))?;
        }
        writeln!(f, "amqps       {}", self.amqps_url)?;
        writeln!(f, "management  {}", self.management_url)?;
        for node in &self.nodes {
            match &node.prometheus_url {
                Some(url) => writeln!(f, "metrics     {url} ({})", node.name)?,
                None => writeln!(
                    f,
                    "metrics     none on {}: `ebadge broker down` and `up` enable them",
                    node.name
                )?,
            }
        }
        if let Some(url) = &self.haproxy_metrics_url {
            writeln!(f, "metrics     {url} (haproxy)")?;
        }
        writeln!(f, "profile     {}", self.profile.display())?;
        writeln!(f, "directory   {}", self.dir.display())
    }
}

/// A local broker directory.
#[derive(Debug, Clone)]
pub struct LocalBroker {
    dir: PathBuf,
}

impl LocalBroker {
    /// The broker in `dir` (created on `up`). The path is made absolute, because RabbitMQ runs in
    /// its own working directory.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Self { dir }
    }

    /// The broker directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its PKI.
    pub fn pki(&self) -> Pki {
        Pki::new(self.dir.join("pki"))
    }

    /// The administrator's account on its management API (an error if it was never set up).
    pub fn management(&self) -> Result<crate::profile::Management, BrokerError> {
        Ok(self.existing_state()?.management())
    }
    /// Its connection profile file.
    pub fn profile_path(&self) -> PathBuf {
        self.dir.join("profile.toml")
    }

    /// The console log of the first node (RabbitMQ's own logs are next to it).
    pub fn console_log(&self) -> PathBuf {
        let first = self.state().ok().flatten().map(|s| s.nodes[0].dir.clone());
        self.dir
            .join(first.as_deref().unwrap_or("node"))
            .join("log")
            .join("console.log")
    }

    /// The saved state, if the broker was ever started here.
    pub fn state(&self) -> Result<Option<BrokerState>, BrokerError> {
        let path = self.state_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .map_err(|e| BrokerError::Io {
                    path,
                    source: std::io::Error::other(format!(
                        "{e}; this file was written by another version of ebadge: \
                     `ebadge broker down` and start a broker in a new directory"
                    )),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BrokerError::Io { path, source }),
        }
    }

    /// The process id of node `index` (0-based), if its process is alive.
    pub fn node_pid(&self, index: usize) -> Option<u32> {
        let state = self.state().ok()??;
        live_pid(&self.pid_path(state.nodes.get(index)?), "beam")
    }

    /// Status of the broker (an error only if it was never set up here).
    pub fn status(&self) -> Result<BrokerStatus, BrokerError> {
        let state = self.existing_state()?;
        let nodes: Vec<NodeStatus> = state
            .nodes
            .iter()
            .map(|n| NodeStatus {
                name: n.name.clone(),
                pid: live_pid(&self.pid_path(n), "beam"),
                amqps_url: format!("amqps://{}:{}", n.amqps_host(), n.amqps_port),
                management_url: format!("http://{}:{}", n.host(), n.management_port),
                prometheus_url: (n.prometheus_port != 0)
                    .then(|| format!("http://{}:{}/metrics", n.host(), n.prometheus_port)),
            })
            .collect();
        let haproxy_pid = self.haproxy_pid();
        Ok(BrokerStatus {
            running: nodes.iter().all(|n| n.pid.is_some())
                && (state.front.is_none() || haproxy_pid.is_some()),
            dir: self.dir.clone(),
            amqps_url: format!("amqps://localhost:{}", state.amqps_port()),
            management_url: format!("http://127.0.0.1:{}", state.management_port()),
            nodes,
            haproxy_pid,
            haproxy_metrics_url: state
                .front
                .as_ref()
                .filter(|f| f.prometheus_port != 0)
                .map(|f| format!("http://127.0.0.1:{}/metrics", f.prometheus_port)),
            profile: self.profile_path(),
        })
    }

    /// Starts the broker, or the parts of it that are not running (a killed node, haproxy), or
    /// reports the running one. Returns the status and whether it was already running.
    pub async fn up(&self, options: &UpOptions) -> Result<(BrokerStatus, bool), BrokerError> {
        let state = match self.state()? {
            Some(state) if options.nodes.is_some_and(|n| n.max(1) != state.nodes.len()) => {
                return Err(BrokerError::Shape {
                    dir: self.dir.clone(),
                    has: state.nodes.len(),
                    asked: options.nodes.unwrap_or(1).max(1),
                });
            }
            Some(mut state) => {
                self.check_fixed(&state, options)?;
                let status = self.status()?;
                let any_node_up = status.nodes.iter().any(|n| n.pid.is_some());
                state.statistics_interval = statistics_interval(
                    state.statistics_interval,
                    options.statistics_interval,
                    any_node_up,
                )
                .map_err(|has| BrokerError::StatisticsWhileRunning {
                    dir: self.dir.clone(),
                    has,
                })?;
                if status.running {
                    let repaired = self.with_distinct_ports(state.clone())?;
                    if repaired == state {
                        return Ok((status, true));
                    }
                    self.stop_clashing(&state, &repaired)?;
                    repaired
                } else {
                    self.with_distinct_ports(state)?
                }
            }
            None => self.new_state(options)?,
        };
        let server = program("EBADGE_RABBITMQ_SERVER", RABBITMQ_SERVER);
        if !server.exists() {
            return Err(BrokerError::NotInstalled(server, "rabbitmq-server"));
        }
        if state.front.is_some() && !Path::new(haproxy::HAPROXY).exists() {
            return Err(BrokerError::NotInstalled(
                haproxy::HAPROXY.into(),
                "haproxy",
            ));
        }
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
        names.extend(options.hosts.iter().cloned());
        names.extend(state.nodes.iter().filter_map(|n| n.address.clone()));
        self.pki().init(&names)?;
        // Before the network: a failed `up` leaves a state that `down` removes it by.
        self.write_state(&state)?;
        if let Some(network) = &state.network {
            self.network_up(&state, network)?;
        }
        let starting: Vec<&NodeState> = state
            .nodes
            .iter()
            .filter(|n| live_pid(&self.pid_path(n), "beam").is_none())
            .collect();
        for node in &starting {
            for p in [
                node.amqps_port,
                node.management_port,
                node.dist_port,
                node.prometheus_port,
            ] {
                if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                    return Err(BrokerError::PortInUse(p));
                }
            }
            self.write_config(&state, node)?;
            self.spawn(&server, node)?;
        }
        for node in &starting {
            // RabbitMQ 3.10 nodes restarted together can crash while comparing feature flags with
            // a peer that is still booting (`incompatible_feature_flags`, `badmap`); a second
            // start succeeds, so a node that died during boot gets two more.
            // A node whose TLS listener fails every handshake is restarted the same way.
            let mut retries = 2;
            loop {
                match self.wait_until_up(&state, node).await {
                    Ok(()) => break,
                    Err(error @ BrokerError::Tls { .. }) if retries > 0 => {
                        retries -= 1;
                        tracing::warn!(node = %node.name, %error, "the node fails TLS handshakes; restarting it");
                        if let Some(pid) = live_pid(&self.pid_path(node), "beam") {
                            kill_and_wait(pid, || live_pid(&self.pid_path(node), "beam").is_some());
                        }
                        self.spawn(&server, node)?;
                    }
                    Err(error)
                        if retries > 0 && live_pid(&self.pid_path(node), "beam").is_none() =>
                    {
                        retries -= 1;
                        tracing::warn!(node = %node.name, %error, "the node died during boot; starting it again");
                        self.spawn(&server, node)?;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        if state.front.is_some() {
            self.wait_for_cluster(&state).await?;
            self.start_haproxy(&state)?;
        }
        self.write_profile(&state)?;
        Ok((self.status()?, false))
    }

    /// [`up`](Self::up), telling `progress` every 10 s that it is still starting: nodes with
    /// tens of thousands of queues recover them all before they answer.
    pub async fn up_with_progress(
        &self,
        options: &UpOptions,
        progress: impl Fn(&str),
    ) -> Result<(BrokerStatus, bool), BrokerError> {
        let started = Instant::now();
        let up = self.up(options);
        tokio::pin!(up);
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.tick().await;
        loop {
            tokio::select! {
                outcome = &mut up => return outcome,
                _ = tick.tick() => progress(&format!(
                    "still starting after {} s (each node recovers its queues before it answers)",
                    started.elapsed().as_secs()
                )),
            }
        }
    }

    /// Stops the broker cleanly (haproxy first, then each node); returns false if nothing ran.
    pub fn down(&self) -> Result<bool, BrokerError> {
        self.down_with_progress(|_| {})
    }

    /// [`down`](Self::down), telling `progress` what stopped and how long each node took (a
    /// node with tens of thousands of queues takes a while).
    pub fn down_with_progress(&self, progress: impl Fn(&str) + Sync) -> Result<bool, BrokerError> {
        let Some(state) = self.state()? else {
            return Ok(false);
        };
        if state.network.is_some() && !network::is_root() {
            return Err(BrokerError::NeedsRoot);
        }
        let mut stopped = false;
        if let Some(pid) = self.haproxy_pid() {
            stop_process(pid, || self.haproxy_pid().is_some());
            progress("haproxy stopped");
            stopped = true;
        }
        let (progress, state) = (&progress, &state);
        if state.nodes.len() > 1 {
            progress(&format!("stopping {} nodes …", state.nodes.len()));
        }
        // All nodes at once: stopped one after the other, the last ones would find themselves a
        // minority and pause (`pause_minority`), which makes their shutdown crawl with many
        // quorum queues. `up` starts them all together, so no order is needed on the way back.
        let results: Vec<Result<bool, BrokerError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..state.nodes.len())
                .map(|index| {
                    scope.spawn(move || {
                        let started = Instant::now();
                        let stopped = self.stop_node(index);
                        if let Ok(true) = stopped {
                            progress(&format!(
                                "node {} ({}) stopped in {:.1} s",
                                index + 1,
                                state.nodes[index].name,
                                started.elapsed().as_secs_f64()
                            ));
                        }
                        stopped
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a stopping thread does not panic"))
                .collect()
        });
        // The network goes whatever a node's stop said: namespaces left behind would hold ports.
        if let Some(network) = &state.network {
            self.network_down(state, network)?;
        }
        for result in results {
            stopped |= result?;
        }
        Ok(stopped)
    }

    /// Stops node `index` (0-based) cleanly; `up` starts it again. Returns false if it was not
    /// running.
    pub fn stop_node(&self, index: usize) -> Result<bool, BrokerError> {
        let state = self.existing_state()?;
        let node = &state.nodes[index];
        let pid_file = self.pid_path(node);
        let Some(pid) = live_pid(&pid_file, "beam") else {
            return Ok(false);
        };
        if self
            .ctl_node(node, &["stop", &pid_file.to_string_lossy()])
            .is_err()
        {
            // rabbitmqctl could not reach the node (cookie gone, node wedged): stop the process.
            stop_process(pid, || live_pid(&pid_file, "beam").is_some());
        }
        Ok(true)
    }

    /// Stops the running parts of `state` whose ports `repaired` changes. A node that shares a
    /// port with another endpoint (an older `up` handed one out twice) answers on the wrong
    /// listener while its process looks alive: `up` starts it again with ports of its own.
    fn stop_clashing(
        &self,
        state: &BrokerState,
        repaired: &BrokerState,
    ) -> Result<(), BrokerError> {
        for (index, (was, now)) in state.nodes.iter().zip(&repaired.nodes).enumerate() {
            if was != now {
                tracing::warn!(node = %was.name, "the node shares a port with another endpoint: restarting it with its own");
                self.stop_node(index)?;
            }
        }
        if state.front != repaired.front
            && let Some(pid) = self.haproxy_pid()
        {
            stop_process(pid, || self.haproxy_pid().is_some());
        }
        Ok(())
    }

    /// Kills node `index` (0-based) with SIGKILL, as a crash would: no clean shutdown, its
    /// connections die with it. `up` starts it again. Returns the pid killed.
    pub fn kill_node(&self, index: usize) -> Result<Option<u32>, BrokerError> {
        let Some(pid) = self.node_pid(index) else {
            return Ok(None);
        };
        kill_and_wait(pid, || self.node_pid(index).is_some());
        Ok(Some(pid))
    }

    /// Makes every running node read its certificate files again (after `Pki::issue_server`,
    /// i.e. rotation): new connections get the new certificate, open ones carry on. Each node is
    /// then checked by a TLS handshake: it must present the certificate now in `pki/server.pem`
    /// (a node that still presents the old one has its cache cleared again, up to three times).
    /// Returns how many nodes it reached.
    pub async fn reload_tls(&self) -> Result<usize, BrokerError> {
        let state = self.existing_state()?;
        let pki = self.pki();
        let wanted = tls::certificate_in(&pki.server().0)
            .map_err(|reason| self.tls_error(&state.nodes[0], reason))?;
        let mut reloaded = 0;
        for node in &state.nodes {
            if live_pid(&self.pid_path(node), "beam").is_none() {
                continue;
            }
            let mut attempts = 0;
            loop {
                self.ctl_node(node, &["eval", "ssl:clear_pem_cache()."])?;
                attempts += 1;
                let outcome =
                    match tls::presented_certificate(node.host(), node.amqps_port, &pki.ca_cert())
                        .await
                    {
                        Ok(presented) if presented == wanted => break,
                        Ok(_) => "it still presents another certificate".to_owned(),
                        Err(reason) => reason,
                    };
                if attempts == 3 {
                    return Err(self.tls_error(node, outcome));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            reloaded += 1;
        }
        Ok(reloaded)
    }

    fn tls_error(&self, node: &NodeState, reason: String) -> BrokerError {
        BrokerError::Tls {
            node: node.name.clone(),
            reason: format!("port {}: {reason}", node.amqps_port),
            log: self.node_log(node),
        }
    }

    /// Runs `rabbitmqctl -n NODE ARGS…` against the first node, with this broker's environment.
    pub fn ctl(&self, state: &BrokerState, args: &[&str]) -> Result<String, BrokerError> {
        self.ctl_node(&state.nodes[0], args)
    }

    fn ctl_node(&self, node: &NodeState, args: &[&str]) -> Result<String, BrokerError> {
        let ctl = program("EBADGE_RABBITMQCTL", RABBITMQCTL);
        let output = in_namespace(node, &ctl)
            .args(["-n", &node.name])
            .args(args)
            .envs(self.env(node))
            .stdin(Stdio::null())
            .output()
            .map_err(|source| BrokerError::Io { path: ctl, source })?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            Ok(text)
        } else {
            Err(BrokerError::Ctl {
                command: args.join(" "),
                output: text.trim().to_owned(),
            })
        }
    }
}
