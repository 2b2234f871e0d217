//! The local broker supervisor: Debian's `rabbitmq-server` run in a directory of ours with our
//! configuration (TLS only, SASL EXTERNAL only, no guest, management on loopback), never the
//! system service.
//!
//! Layout of a broker directory `D`: `D/pki` (see [`crate::pki`]), `D/node` (configuration, data,
//! logs, the Erlang cookie), `D/broker.toml` (ports and node name, kept across restarts so clients
//! reconnect to the same address) and `D/profile.toml` (the connection profile for `--as NAME`).

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
pub const ADMIN_USER: &str = "ebadge-admin";
/// How long `up` waits for a node to boot (one takes about 7 s here).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// A broker supervisor failure, saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// RabbitMQ is not installed.
    #[error(
        "rabbitmq-server is not installed ({0} is missing): run `apt-get install -y rabbitmq-server` \
         (as root) or `make deps`, then try again"
    )]
    NotInstalled(PathBuf),
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

/// Ports and names of a local broker, kept in `D/broker.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerState {
    /// Erlang node name, `ebadge-<port>@localhost`.
    pub node: String,
    /// AMQPS port (the only AMQP listener).
    pub amqps_port: u16,
    /// Management API port, on 127.0.0.1.
    pub management_port: u16,
    /// Erlang distribution port.
    pub dist_port: u16,
    /// The administrator's password (the file is mode 0600).
    pub admin_password: String,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerStatus {
    /// Whether the node's process is alive.
    pub running: bool,
    /// Its process id, when running.
    pub pid: Option<u32>,
    /// The broker directory.
    pub dir: PathBuf,
    /// The node name.
    pub node: String,
    /// `amqps://localhost:PORT`.
    pub amqps_url: String,
    /// `http://127.0.0.1:PORT`.
    pub management_url: String,
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
    fn node_dir(&self) -> PathBuf {
        self.dir.join("node")
    }
    fn state_path(&self) -> PathBuf {
        self.dir.join("broker.toml")
    }
    fn pid_path(&self) -> PathBuf {
        self.node_dir().join("rabbitmq.pid")
    }
    /// The node's console log (RabbitMQ's own logs are next to it).
    pub fn console_log(&self) -> PathBuf {
        self.node_dir().join("log").join("console.log")
    }

    /// The saved state, if the broker was ever started here.
    pub fn state(&self) -> Result<Option<BrokerState>, BrokerError> {
        match std::fs::read_to_string(self.state_path()) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .map_err(|e| BrokerError::Io {
                    path: self.state_path(),
                    source: std::io::Error::other(e.to_string()),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BrokerError::Io {
                path: self.state_path(),
                source,
            }),
        }
    }

    /// The running node's pid, if its process is alive.
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_path())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        // A recycled pid belongs to some other program: only a BEAM counts.
        String::from_utf8_lossy(&cmdline)
            .contains("beam")
            .then_some(pid)
    }

    /// Status of the broker (an error only if it was never set up here).
    pub fn status(&self) -> Result<BrokerStatus, BrokerError> {
        let state = self.state()?.ok_or_else(|| BrokerError::Io {
            path: self.state_path(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no broker was set up in this directory; `ebadge broker up` starts one",
            ),
        })?;
        let pid = self.pid();
        Ok(BrokerStatus {
            running: pid.is_some(),
            pid,
            dir: self.dir.clone(),
            node: state.node.clone(),
            amqps_url: format!("amqps://localhost:{}", state.amqps_port),
            management_url: format!("http://127.0.0.1:{}", state.management_port),
            profile: self.profile_path(),
        })
    }

    /// Starts the broker, or reports the running one. `port` fixes the AMQPS port of a broker set
    /// up for the first time (free ports are chosen otherwise). Returns the status and whether it
    /// was already running.
    pub async fn up(&self, port: Option<u16>) -> Result<(BrokerStatus, bool), BrokerError> {
        if self.state()?.is_some() && self.pid().is_some() {
            return Ok((self.status()?, true));
        }
        let server = std::env::var_os("EBADGE_RABBITMQ_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(RABBITMQ_SERVER));
        if !server.exists() {
            return Err(BrokerError::NotInstalled(server));
        }
        let state = match self.state()? {
            Some(state) => state,
            None => self.new_state(port)?,
        };
        for p in [state.amqps_port, state.management_port, state.dist_port] {
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                return Err(BrokerError::PortInUse(p));
            }
        }
        self.pki()
            .init(&["localhost".into(), "127.0.0.1".into(), "::1".into()])?;
        self.write_config(&state)?;
        self.spawn(&server, &state)?;
        self.wait_until_up(&state).await?;
        self.write_profile(&state)?;
        Ok((self.status()?, false))
    }

    /// Stops the broker cleanly; returns false if it was not running.
    pub fn down(&self) -> Result<bool, BrokerError> {
        let Some(state) = self.state()? else {
            return Ok(false);
        };
        let Some(pid) = self.pid() else {
            return Ok(false);
        };
        let pid_file = self.pid_path();
        let result = self.ctl(&state, &["stop", &pid_file.to_string_lossy()]);
        if result.is_err() {
            // rabbitmqctl could not reach the node (cookie gone, node wedged): stop the process.
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.pid().is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            if self.pid().is_some() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        Ok(true)
    }

    /// Runs `rabbitmqctl -n NODE ARGS…` with this broker's environment.
    pub fn ctl(&self, state: &BrokerState, args: &[&str]) -> Result<String, BrokerError> {
        let output = Command::new(RABBITMQCTL)
            .args(["-n", &state.node])
            .args(args)
            .envs(self.env(state))
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

    fn new_state(&self, port: Option<u16>) -> Result<BrokerState, BrokerError> {
        let amqps_port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        Ok(BrokerState {
            node: format!("ebadge-{amqps_port}@localhost"),
            amqps_port,
            management_port: free_port()?,
            dist_port: free_port()?,
            admin_password: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    fn env(&self, state: &BrokerState) -> Vec<(&'static str, PathBuf)> {
        let node = self.node_dir();
        vec![
            ("HOME", node.join("home")),
            ("RABBITMQ_NODENAME", state.node.clone().into()),
            ("RABBITMQ_MNESIA_BASE", node.join("mnesia")),
            ("RABBITMQ_LOG_BASE", node.join("log")),
            ("RABBITMQ_CONFIG_FILE", node.join("rabbitmq.conf")),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                node.join("enabled_plugins"),
            ),
            ("RABBITMQ_CONF_ENV_FILE", node.join("rabbitmq-env.conf")),
            ("RABBITMQ_PID_FILE", self.pid_path()),
            ("RABBITMQ_DIST_PORT", state.dist_port.to_string().into()),
        ]
    }

    fn write_config(&self, state: &BrokerState) -> Result<(), BrokerError> {
        let node = self.node_dir();
        for d in [node.join("home"), node.join("mnesia"), node.join("log")] {
            std::fs::create_dir_all(&d).map_err(|source| BrokerError::Io { path: d, source })?;
        }
        let pki = self.pki();
        let (server_cert, server_key) = pki.server();
        let definitions = node.join("definitions.json");
        let conf = format!(
            "# Written by `ebadge broker up`: TLS only, client certificates only, no guest.\n\
             listeners.tcp = none\n\
             listeners.ssl.default = {amqps}\n\
             ssl_options.cacertfile = {ca}\n\
             ssl_options.certfile = {cert}\n\
             ssl_options.keyfile = {key}\n\
             ssl_options.verify = verify_peer\n\
             ssl_options.fail_if_no_peer_cert = true\n\
             ssl_options.versions.1 = tlsv1.3\n\
             ssl_options.versions.2 = tlsv1.2\n\
             auth_mechanisms.1 = EXTERNAL\n\
             ssl_cert_login_from = common_name\n\
             management.tcp.ip = 127.0.0.1\n\
             management.tcp.port = {mgmt}\n\
             definitions.import_backend = local_filesystem\n\
             definitions.local.path = {defs}\n\
             log.console = true\n\
             log.console.level = warning\n",
            amqps = state.amqps_port,
            ca = pki.ca_cert().display(),
            cert = server_cert.display(),
            key = server_key.display(),
            mgmt = state.management_port,
            defs = definitions.display(),
        );
        write_file(&node.join("rabbitmq.conf"), &conf, false)?;
        write_file(
            &node.join("enabled_plugins"),
            "[rabbitmq_management,rabbitmq_auth_mechanism_ssl].\n",
            false,
        )?;
        write_file(&node.join("rabbitmq-env.conf"), "", false)?;
        write_file(
            &definitions,
            &boot_definitions(&state.admin_password).to_string(),
            true,
        )?;
        write_file(
            &self.state_path(),
            &toml::to_string(state).expect("state serializes"),
            true,
        )
    }

    fn spawn(&self, server: &Path, state: &BrokerState) -> Result<(), BrokerError> {
        use std::os::unix::process::CommandExt;
        let log_path = self.console_log();
        let log = std::fs::File::create(&log_path).map_err(|source| BrokerError::Io {
            path: log_path.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(self.pid_path());
        let err = log.try_clone().map_err(|source| BrokerError::Io {
            path: log_path.clone(),
            source,
        })?;
        Command::new(server)
            .envs(self.env(state))
            .current_dir(self.node_dir())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            // Its own process group: the broker outlives `ebadge broker up` and ignores our Ctrl-C.
            .process_group(0)
            .spawn()
            .map_err(|source| BrokerError::Io {
                path: server.into(),
                source,
            })?;
        Ok(())
    }

    async fn wait_until_up(&self, state: &BrokerState) -> Result<(), BrokerError> {
        let client = admin_client(
            &format!("http://127.0.0.1:{}", state.management_port),
            &state.admin_password,
        );
        let started = Instant::now();
        let mut saw_pid = false;
        loop {
            if client.list_vhosts().await.is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", state.amqps_port)).is_ok()
            {
                return Ok(());
            }
            saw_pid |= self.pid().is_some();
            let elapsed = started.elapsed();
            let died = saw_pid && self.pid().is_none();
            if died || elapsed > BOOT_TIMEOUT {
                let reason = if died {
                    "the node exited during boot".to_owned()
                } else {
                    format!("not up after {} s", BOOT_TIMEOUT.as_secs())
                };
                return Err(BrokerError::Boot {
                    reason,
                    log: self.console_log(),
                    tail: tail(&self.console_log(), 15),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn write_profile(&self, state: &BrokerState) -> Result<(), BrokerError> {
        let profile = Profile {
            amqps_url: format!("amqps://localhost:{}", state.amqps_port),
            ca: "pki/ca.pem".into(),
            certs: "pki/clients".into(),
            ca_key: Some("pki/ca.key".into()),
            management: Some(Management {
                url: format!("http://127.0.0.1:{}", state.management_port),
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
