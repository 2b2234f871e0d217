//! haproxy in front of a RabbitMQ cluster (D3.2.3 6.2.2): TCP mode, TLS passed through to the
//! nodes (the client certificate must reach RabbitMQ, which logs the user in by it), health checks
//! that take a dead node out within two seconds and cut the sessions it held, so clients reconnect
//! at once through a live node.
//!
//! The AMQPS checks are TLS handshakes that verify the node's certificate against the bus CA. A
//! TCP check would keep a node that accepts connections but cannot complete TLS (a wrong
//! certificate copied in a rotation, a broken TLS stack): with `balance leastconn` every new client
//! would go to that node, the one with fewest connections, and fail. The check needs no client
//! certificate: in TLS 1.3 the node presents and proves its certificate before it asks for the
//! client's.
//!
//! The same rendering serves the local cluster (`ebadge broker up --nodes 3`) and the VRRP test;
//! `deploy/haproxy/haproxy.cfg` is its production form.

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Where Debian's package installs haproxy.
pub const HAPROXY: &str = "/usr/sbin/haproxy";

/// How many client connections a local haproxy accepts. Each takes two file descriptors (client
/// and server side); 9,000 stays under a hard limit of 20,000 open files per process.
pub const LOCAL_MAX_CONNECTIONS: u32 = 9_000;

/// One RabbitMQ node behind haproxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Server name in the configuration (`node-1`).
    pub name: String,
    /// Host or IP address haproxy reaches it at.
    pub host: String,
    /// Its AMQPS port.
    pub amqps_port: u16,
    /// Its management API port.
    pub management_port: u16,
}

/// What one haproxy listens on and forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    /// Address to bind (`127.0.0.1`; `0.0.0.0` on a VRRP pair, where the backup does not hold
    /// the virtual IP yet).
    pub bind: String,
    /// Most client connections at once (see [`LOCAL_MAX_CONNECTIONS`]).
    pub max_connections: u32,
    /// AMQPS port clients connect to.
    pub amqps_port: u16,
    /// Management API port operators' tools connect to (none: not forwarded).
    pub management_port: Option<u16>,
    /// `ADDRESS:PORT` of haproxy's own Prometheus exporter (`GET /metrics`: servers up,
    /// sessions): loopback or the management network, never the clients' side (none: no
    /// exporter).
    pub prometheus: Option<String>,
    /// The admin socket (`show servers state`, `disable server`).
    pub admin_socket: PathBuf,
    /// The bus CA (`ca.pem`) the AMQPS health checks verify each node's certificate against
    /// (none: a TCP check, which cannot see a node whose TLS is broken).
    pub check_ca: Option<PathBuf>,
}

/// The configuration text.
///
/// ```
/// use ebadge_admin::haproxy::{Backend, Frontend, config};
/// let front = Frontend { bind: "127.0.0.1".into(), max_connections: 9_000, amqps_port: 5671,
///     management_port: Some(15672), prometheus: Some("127.0.0.1:8405".into()),
///     admin_socket: "/run/haproxy-ebadge.sock".into(),
///     check_ca: Some("/etc/haproxy/ebadge-ca.pem".into()) };
/// let nodes = [Backend { name: "node-1".into(), host: "10.0.0.1".into(), amqps_port: 5671,
///     management_port: 15672 }];
/// let text = config(&front, &nodes);
/// assert!(text.contains("server node-1 10.0.0.1:5671 check check-ssl verify required \
///     ca-file /etc/haproxy/ebadge-ca.pem"));
/// assert!(text.contains("server node-1 10.0.0.1:15672 check\n"));
/// assert!(text.contains("on-marked-down shutdown-sessions"));
/// assert!(text.contains("use-service prometheus-exporter"));
/// ```
pub fn config(front: &Frontend, backends: &[Backend]) -> String {
    let mut text = format!(
        "# Written by ebadge (crate ebadge-admin, module haproxy).\n\
         global\n\
         \x20   maxconn {max}\n\
         \x20   log stderr format raw local0 notice\n\
         \x20   stats socket {socket} mode 600 level admin\n\
         \n\
         defaults\n\
         \x20   mode tcp\n\
         \x20   log global\n\
         \x20   option tcplog\n\
         \x20   option dontlognull\n\
         \x20   timeout connect 5s\n\
         \x20   # AMQP heartbeats (10 s in our client) keep live connections busier than this.\n\
         \x20   timeout client 1h\n\
         \x20   timeout server 1h\n\
         \x20   timeout check 2s\n\
         \x20   # A connection refused by a dead node not yet marked down goes to another node.\n\
         \x20   retries 3\n\
         \x20   option redispatch\n\
         \x20   # A node marked down takes its sessions with it: clients reconnect at once\n\
         \x20   # instead of waiting for heartbeats to notice a silent peer. A check is a TLS\n\
         \x20   # handshake given `inter` (5 s) to finish: a node busy with a storm of client\n\
         \x20   # handshakes answers the check in its turn, seen at 3-5 s, and is not dead. A\n\
         \x20   # node is out after three failures in a row, the second and third `fastinter`\n\
         \x20   # apart: a dead node (connection refused) within 9 s, a silent one within 24 s.\n\
         \x20   default-server inter 5s fastinter 2s fall 3 rise 2 on-marked-down shutdown-sessions\n",
        socket = front.admin_socket.display(),
        max = front.max_connections,
    );
    let tls_check = front
        .check_ca
        .as_ref()
        .map(|ca| format!(" check-ssl verify required ca-file {}", ca.display()))
        .unwrap_or_default();
    let sections = [
        (
            "amqps",
            Some(front.amqps_port),
            Backend::amqps as fn(&Backend) -> u16,
            tls_check.as_str(),
        ),
        ("management", front.management_port, Backend::management, ""),
    ];
    for (section, port, pick, check) in sections
        .into_iter()
        .filter_map(|(s, port, pick, check)| Some((s, port?, pick, check)))
    {
        let _ = write!(
            text,
            "\nfrontend {section}\n\
             \x20   bind {bind}:{port}\n\
             \x20   default_backend {section}-nodes\n\
             \n\
             backend {section}-nodes\n\
             \x20   balance leastconn\n",
            bind = front.bind,
        );
        for b in backends {
            let _ = writeln!(
                text,
                "    server {} {}:{} check{check}",
                b.name,
                b.host,
                pick(b)
            );
        }
    }
    if let Some(address) = &front.prometheus {
        let _ = write!(
            text,
            "\nfrontend prometheus\n\
             \x20   mode http\n\
             \x20   bind {address}\n\
             \x20   option httplog\n\
             \x20   # Scrapes are not worth a log line each; errors still are.\n\
             \x20   option dontlog-normal\n\
             \x20   timeout client 30s\n\
             \x20   http-request use-service prometheus-exporter if {{ path /metrics }}\n",
        );
    }
    text
}

impl Backend {
    fn amqps(&self) -> u16 {
        self.amqps_port
    }
    fn management(&self) -> u16 {
        self.management_port
    }
}

/// Checks a configuration file with `haproxy -c`; the error is haproxy's own alerts.
pub fn check(config_file: &Path) -> Result<(), String> {
    let output = std::process::Command::new(HAPROXY)
        .args(["-c", "-f"])
        .arg(config_file)
        .output()
        .map_err(|e| format!("{HAPROXY}: {e} (apt-get install -y haproxy)"))?;
    if output.status.success() {
        Ok(())
    } else {
        // haproxy's ALERT lines name the file, the line and the fault.
        let text = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        Err(text
            .lines()
            .filter(|l| l.contains("ALERT"))
            .collect::<Vec<_>>()
            .join("\n"))
    }
}
