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

use crate::haproxy;
use crate::mgmt::RawApi;
use crate::pki::Pki;
use ebadge_bus::profile::{Management, Profile};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's package puts the server script that runs in the foreground as the caller.
pub const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// Its control tool.
pub const RABBITMQCTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
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
        "{dir} holds a broker of {has} node(s), not {asked}: use another --dir, or \
         `ebadge broker down --dir {dir}` and remove the directory"
    )]
    Shape {
        /// The broker directory.
        dir: PathBuf,
        /// Nodes it has.
        has: usize,
        /// Nodes asked for.
        asked: usize,
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
    /// A port is taken.
    #[error("port {0} is in use: choose another with --port, or stop what listens there")]
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
}

/// The haproxy in front of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontState {
    /// AMQPS port clients connect to (TLS passed through to a node).
    pub amqps_port: u16,
    /// Management API port (forwarded to a live node).
    pub management_port: u16,
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
    /// The connection profile file.
    pub profile: PathBuf,
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
    /// Its connection profile file.
    pub fn profile_path(&self) -> PathBuf {
        self.dir.join("profile.toml")
    }
    fn node_dir(&self, node: &NodeState) -> PathBuf {
        self.dir.join(&node.dir)
    }
    fn state_path(&self) -> PathBuf {
        self.dir.join("broker.toml")
    }
    fn pid_path(&self, node: &NodeState) -> PathBuf {
        self.node_dir(node).join("rabbitmq.pid")
    }
    fn haproxy_dir(&self) -> PathBuf {
        self.dir.join("haproxy")
    }
    /// The console log of the first node (RabbitMQ's own logs are next to it).
    pub fn console_log(&self) -> PathBuf {
        let first = self.state().ok().flatten().map(|s| s.nodes[0].dir.clone());
        self.dir
            .join(first.as_deref().unwrap_or("node"))
            .join("log")
            .join("console.log")
    }
    fn node_log(&self, node: &NodeState) -> PathBuf {
        self.node_dir(node).join("log").join("console.log")
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

    fn existing_state(&self) -> Result<BrokerState, BrokerError> {
        self.state()?.ok_or_else(|| BrokerError::Io {
            path: self.state_path(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no broker was set up in this directory; `ebadge broker up` starts one",
            ),
        })
    }

    /// The process id of node `index` (0-based), if its process is alive.
    pub fn node_pid(&self, index: usize) -> Option<u32> {
        let state = self.state().ok()??;
        live_pid(&self.pid_path(state.nodes.get(index)?), "beam")
    }

    fn haproxy_pid(&self) -> Option<u32> {
        live_pid(&self.haproxy_dir().join("haproxy.pid"), "haproxy")
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
                amqps_url: format!("amqps://localhost:{}", n.amqps_port),
                management_url: format!("http://127.0.0.1:{}", n.management_port),
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
            Some(_) if self.status()?.running => return Ok((self.status()?, true)),
            Some(state) => state,
            None => self.new_state(options)?,
        };
        let server = std::env::var_os("EBADGE_RABBITMQ_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(RABBITMQ_SERVER));
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
        self.pki().init(&names)?;
        self.write_state(&state)?;
        let starting: Vec<&NodeState> = state
            .nodes
            .iter()
            .filter(|n| live_pid(&self.pid_path(n), "beam").is_none())
            .collect();
        for node in &starting {
            for p in [node.amqps_port, node.management_port, node.dist_port] {
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
            let mut retries = 2;
            loop {
                match self.wait_until_up(&state, node).await {
                    Ok(()) => break,
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

    /// Kills node `index` (0-based) with SIGKILL, as a crash would: no clean shutdown, its
    /// connections die with it. `up` starts it again. Returns the pid killed.
    pub fn kill_node(&self, index: usize) -> Result<Option<u32>, BrokerError> {
        let Some(pid) = self.node_pid(index) else {
            return Ok(None);
        };
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.node_pid(index).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Some(pid))
    }

    /// Makes every running node read its certificate files again (after `Pki::issue_server`,
    /// i.e. rotation): new connections get the new certificate, open ones carry on. Returns how
    /// many nodes it reached.
    pub fn reload_tls(&self) -> Result<usize, BrokerError> {
        let state = self.existing_state()?;
        let mut reloaded = 0;
        for node in &state.nodes {
            if live_pid(&self.pid_path(node), "beam").is_some() {
                self.ctl_node(node, &["eval", "ssl:clear_pem_cache()."])?;
                reloaded += 1;
            }
        }
        Ok(reloaded)
    }

    /// Runs `rabbitmqctl -n NODE ARGS…` against the first node, with this broker's environment.
    pub fn ctl(&self, state: &BrokerState, args: &[&str]) -> Result<String, BrokerError> {
        self.ctl_node(&state.nodes[0], args)
    }

    fn ctl_node(&self, node: &NodeState, args: &[&str]) -> Result<String, BrokerError> {
        let output = Command::new(RABBITMQCTL)
            .args(["-n", &node.name])
            .args(args)
            .envs(self.env(node))
            .stdin(Stdio::null())
            .output()
            .map_err(|source| BrokerError::Io {
                path: RABBITMQCTL.into(),
                source,
            })?;
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

    fn new_state(&self, options: &UpOptions) -> Result<BrokerState, BrokerError> {
        let count = options.nodes.unwrap_or(1).max(1);
        let clustered = count > 1;
        let front = if clustered {
            Some(FrontState {
                amqps_port: options.port.map_or_else(free_port, Ok)?,
                management_port: free_port()?,
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
            });
        }
        Ok(BrokerState {
            admin_password: uuid::Uuid::new_v4().simple().to_string(),
            cookie: uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
            front,
            nodes,
        })
    }

    fn env(&self, node: &NodeState) -> Vec<(&'static str, PathBuf)> {
        let dir = self.node_dir(node);
        vec![
            ("HOME", dir.join("home")),
            ("RABBITMQ_NODENAME", node.name.clone().into()),
            ("RABBITMQ_MNESIA_BASE", dir.join("mnesia")),
            ("RABBITMQ_LOG_BASE", dir.join("log")),
            ("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf")),
            ("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins")),
            ("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf")),
            ("RABBITMQ_PID_FILE", self.pid_path(node)),
            ("RABBITMQ_DIST_PORT", node.dist_port.to_string().into()),
        ]
    }

    fn write_state(&self, state: &BrokerState) -> Result<(), BrokerError> {
        create_dir(&self.dir)?;
        write_file(
            &self.state_path(),
            &toml::to_string(state).expect("state serializes"),
            true,
        )
    }

    fn write_config(&self, state: &BrokerState, node: &NodeState) -> Result<(), BrokerError> {
        let dir = self.node_dir(node);
        for d in [dir.join("home"), dir.join("mnesia"), dir.join("log")] {
            create_dir(&d)?;
        }
        let pki = self.pki();
        let (server_cert, server_key) = pki.server();
        let definitions = dir.join("definitions.json");
        let mut conf = String::from(
            "# Written by `ebadge broker up`: TLS only, client certificates only, no guest.\n",
        );
        let settings = security_settings(node.amqps_port)
            .into_iter()
            .chain([
                ("management.tcp.ip".into(), "127.0.0.1".into()),
                (
                    "management.tcp.port".into(),
                    node.management_port.to_string(),
                ),
                (
                    "definitions.import_backend".into(),
                    "local_filesystem".into(),
                ),
                (
                    "definitions.local.path".into(),
                    definitions.display().to_string(),
                ),
                ("log.console".into(), "true".into()),
                ("log.console.level".into(), "warning".into()),
            ])
            .chain(fleet_settings())
            .chain(cluster_settings(state));
        for (key, value) in settings {
            conf.push_str(&format!("{key} = {value}\n"));
        }
        write_file(&dir.join("rabbitmq.conf"), &conf, false)?;
        pki.ensure_crl()?;
        write_file(
            &dir.join("advanced.config"),
            &advanced_config(&pki.ca_cert(), &server_cert, &server_key, &pki.crl_dir()),
            false,
        )?;
        write_file(
            &dir.join("enabled_plugins"),
            "[rabbitmq_management,rabbitmq_auth_mechanism_ssl].\n",
            false,
        )?;
        write_file(&dir.join("rabbitmq-env.conf"), "", false)?;
        let cookie = dir.join("home").join(".erlang.cookie");
        let _ = std::fs::remove_file(&cookie);
        write_file(&cookie, &state.cookie, true)?;
        write_file(
            &definitions,
            &boot_definitions(&state.admin_password).to_string(),
            true,
        )
    }

    fn spawn(&self, server: &Path, node: &NodeState) -> Result<(), BrokerError> {
        let _ = std::fs::remove_file(self.pid_path(node));
        spawn_logged(
            Command::new(server)
                .envs(self.env(node))
                .current_dir(self.node_dir(node)),
            &self.node_log(node),
        )
        .map(|_| ())
    }

    async fn wait_until_up(
        &self,
        state: &BrokerState,
        node: &NodeState,
    ) -> Result<(), BrokerError> {
        let client = admin_client(
            &format!("http://127.0.0.1:{}", node.management_port),
            &state.admin_password,
        );
        let started = Instant::now();
        let mut saw_pid = false;
        let pid_file = self.pid_path(node);
        loop {
            if client.list_vhosts().await.is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", node.amqps_port)).is_ok()
            {
                return Ok(());
            }
            saw_pid |= live_pid(&pid_file, "beam").is_some();
            let died = saw_pid && live_pid(&pid_file, "beam").is_none();
            if died || started.elapsed() > BOOT_TIMEOUT {
                let reason = if died {
                    format!("node {} exited during boot", node.name)
                } else {
                    format!(
                        "node {} not up after {} s",
                        node.name,
                        BOOT_TIMEOUT.as_secs()
                    )
                };
                return Err(self.boot_error(reason, node));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until every node sees all the others running: a node that formed a cluster of its
    /// own would take clients no other node knows about.
    async fn wait_for_cluster(&self, state: &BrokerState) -> Result<(), BrokerError> {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            let mut complete = true;
            for node in &state.nodes {
                let api = RawApi::new(&Management {
                    url: format!("http://127.0.0.1:{}", node.management_port),
                    user: ADMIN_USER.into(),
                    password: state.admin_password.clone(),
                });
                match api.nodes().await {
                    Ok(seen) => {
                        let running = seen.iter().filter(|n| n.running).count();
                        if running != state.nodes.len() {
                            complete = false;
                            last = format!("{} sees {running} running node(s)", node.name);
                        }
                    }
                    Err(e) => {
                        complete = false;
                        last = e.to_string();
                    }
                }
            }
            if complete {
                return Ok(());
            }
            if started.elapsed() > BOOT_TIMEOUT {
                return Err(self.boot_error(
                    format!(
                        "the cluster did not form within {} s: {last}",
                        BOOT_TIMEOUT.as_secs()
                    ),
                    &state.nodes[0],
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn boot_error(&self, reason: String, node: &NodeState) -> BrokerError {
        BrokerError::Boot {
            reason,
            log: self.node_log(node),
            tail: tail(&self.node_log(node), 15),
        }
    }

    fn start_haproxy(&self, state: &BrokerState) -> Result<(), BrokerError> {
        let front = state.front.as_ref().expect("a cluster has a front");
        if self.haproxy_pid().is_some() {
            return Ok(());
        }
        let dir = self.haproxy_dir();
        create_dir(&dir)?;
        for p in [front.amqps_port, front.management_port] {
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                return Err(BrokerError::PortInUse(p));
            }
        }
        let backends: Vec<haproxy::Backend> = state
            .nodes
            .iter()
            .map(|n| haproxy::Backend {
                name: n.dir.clone(),
                host: "127.0.0.1".into(),
                amqps_port: n.amqps_port,
                management_port: n.management_port,
            })
            .collect();
        let frontend = haproxy::Frontend {
            bind: "127.0.0.1".into(),
            max_connections: haproxy::LOCAL_MAX_CONNECTIONS,
            amqps_port: front.amqps_port,
            management_port: Some(front.management_port),
            admin_socket: dir.join("admin.sock"),
        };
        let config_file = dir.join("haproxy.cfg");
        write_file(&config_file, &haproxy::config(&frontend, &backends), false)?;
        let log = dir.join("haproxy.log");
        let mut child = spawn_logged(
            Command::new(haproxy::HAPROXY)
                .args(["-db", "-f"])
                .arg(&config_file),
            &log,
        )?;
        write_file(&dir.join("haproxy.pid"), &child.id().to_string(), false)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", front.amqps_port)).is_ok() {
                return Ok(());
            }
            // The child itself, not its pid file: until it has exec'd, its command line is ours.
            if !matches!(child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(BrokerError::Boot {
            reason: "haproxy did not start".into(),
            tail: tail(&log, 15),
            log,
        })
    }

    fn write_profile(&self, state: &BrokerState) -> Result<(), BrokerError> {
        let profile = Profile {
            amqps_url: format!("amqps://localhost:{}", state.amqps_port()),
            ca: "pki/ca.pem".into(),
            certs: "pki/clients".into(),
            ca_key: Some("pki/ca.key".into()),
            heartbeat_seconds: None,
            management: Some(Management {
                url: format!("http://127.0.0.1:{}", state.management_port()),
                user: ADMIN_USER.into(),
                password: state.admin_password.clone(),
            }),
        };
        profile
            .save(&self.profile_path())
            .map_err(|source| BrokerError::Io {
                path: self.profile_path(),
                source,
            })
    }
}

/// The rabbitmq.conf settings that make a node conform to D3.2.3 6.1 (TLS only, login by the
/// certificate's CN, EXTERNAL only); the TLS options themselves are in [`advanced_config`].
/// The local broker writes them; `deploy/rabbitmq/` carries the same, and a test keeps the two
/// in step.
pub fn security_settings(amqps_port: u16) -> Vec<(String, String)> {
    [
        ("listeners.tcp", "none".to_owned()),
        ("listeners.ssl.default", amqps_port.to_string()),
        ("auth_mechanisms.1", "EXTERNAL".into()),
        ("ssl_cert_login_from", "common_name".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The node's TLS options, as the Erlang terms of `advanced.config`: TLS 1.2/1.3, client
/// certificates required and verified, and checked against the CA's CRL in `crl_dir`
/// (`<issuer hash>.r0`, read at every handshake, so a revocation applies at once). rabbitmq.conf
/// cannot name a CRL directory, and `ssl_options` in advanced.config replaces rabbitmq.conf's
/// whole list, so all of them are here.
pub fn advanced_config(ca: &Path, cert: &Path, key: &Path, crl_dir: &Path) -> String {
    format!(
        "%% TLS options of the AMQPS listener (eBADGE bus, D3.2.3 6.1): client certificates\n\
         %% required, verified, and checked against the CA's revocation list.\n\
         [{{rabbit, [{{ssl_options, [\n\
         \x20   {{cacertfile, \"{}\"}},\n\
         \x20   {{certfile, \"{}\"}},\n\
         \x20   {{keyfile, \"{}\"}},\n\
         \x20   {{verify, verify_peer}},\n\
         \x20   {{fail_if_no_peer_cert, true}},\n\
         \x20   {{versions, ['tlsv1.3', 'tlsv1.2']}},\n\
         \x20   {{crl_check, peer}},\n\
         \x20   {{crl_cache, {{ssl_crl_hash_dir, {{internal, [{{dir, \"{}\"}}]}}}}}}\n\
         ]}}]}}].\n",
        ca.display(),
        cert.display(),
        key.display(),
        crl_dir.display()
    )
}

/// Settings for many connections and queues, on every node (`deploy/rabbitmq/rabbitmq.conf`
/// carries the same; a test keeps them in step): classic queues of version 2 (less memory and
/// disk I/O per queue than version 1), queue leaders spread over the nodes instead of all on
/// the node that handled the declaration (provisioning declares every queue through one node),
/// and a listen backlog that absorbs a fleet reconnecting at once (the default of 128 drops SYNs
/// and leaves HEHs waiting for their connect timeout). Classic queues are placed at random:
/// `min-masters` looks up every queue of the broker at each declaration, which makes
/// provisioning 20,000 HEH inboxes quadratic; quorum queues are `balanced` (least leaders below
/// 1,000 queues, random above).
pub fn fleet_settings() -> Vec<(String, String)> {
    [
        ("classic_queue.default_version", "2"),
        ("queue_master_locator", "random"),
        ("queue_leader_locator", "balanced"),
        ("tcp_listen_options.backlog", "4096"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Cluster formation by a fixed list of peers (nothing for a single node).
fn cluster_settings(state: &BrokerState) -> Vec<(String, String)> {
    if state.nodes.len() < 2 {
        return Vec::new();
    }
    let mut settings = vec![
        (
            "cluster_name".to_owned(),
            format!("ebadge-{}", state.amqps_port()),
        ),
        (
            "cluster_formation.peer_discovery_backend".into(),
            "classic_config".into(),
        ),
        // A node cut off from the majority stops serving rather than diverge.
        ("cluster_partition_handling".into(), "pause_minority".into()),
    ];
    for (i, node) in state.nodes.iter().enumerate() {
        settings.push((
            format!("cluster_formation.classic_config.nodes.{}", i + 1),
            node.name.clone(),
        ));
    }
    settings
}

/// The pid in `pid_file`, if that process is alive and its command line contains `program` (a
/// recycled pid belongs to some other program).
fn live_pid(pid_file: &Path, program: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // A zombie (killed, not yet reaped by its parent) is not running.
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    (String::from_utf8_lossy(&cmdline).contains(program) && !zombie).then_some(pid)
}

/// SIGTERM, then SIGKILL after 30 s.
fn stop_process(pid: u32, alive: impl Fn() -> bool) {
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive() {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// Starts a long-lived child with its output in `log`, in its own process group: it outlives
/// `ebadge broker up` and ignores our Ctrl-C.
fn spawn_logged(
    command: &mut Command,
    log_path: &Path,
) -> Result<std::process::Child, BrokerError> {
    use std::os::unix::process::CommandExt;
    let io_error = |source| BrokerError::Io {
        path: log_path.into(),
        source,
    };
    // Appended: the log of an earlier start (a crash) stays readable.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(io_error)?;
    let err = log.try_clone().map_err(io_error)?;
    let child = command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|source| BrokerError::Io {
            path: command.get_program().into(),
            source,
        })?;
    Ok(child)
}

fn create_dir(dir: &Path) -> Result<(), BrokerError> {
    std::fs::create_dir_all(dir).map_err(|source| BrokerError::Io {
        path: dir.into(),
        source,
    })
}

/// A management API client for the administrator account.
pub fn admin_client(
    url: &str,
    password: &str,
) -> rabbitmq_http_client::api::Client<String, String, String> {
    rabbitmq_http_client::api::Client::new(
        format!("{}/api", url.trim_end_matches('/')),
        ADMIN_USER.to_owned(),
        password.to_owned(),
    )
}

/// Definitions loaded at boot: vhost `/` and the administrator, so RabbitMQ never seeds `guest`.
fn boot_definitions(admin_password: &str) -> serde_json::Value {
    use rabbitmq_http_client::password_hashing::{
        base64_encoded_salted_password_hash_sha256, salt,
    };
    let hash = base64_encoded_salted_password_hash_sha256(&salt(), admin_password);
    serde_json::json!({
        "vhosts": [{"name": "/"}],
        "users": [{
            "name": ADMIN_USER,
            "password_hash": hash,
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": "administrator"
        }],
        "permissions": [{"user": ADMIN_USER, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]
    })
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

fn write_file(path: &Path, text: &str, private: bool) -> Result<(), BrokerError> {
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

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
