//! A cluster's own steps: waiting until every node sees all the others, and haproxy in front
//! (its configuration is [`crate::haproxy`]).

use super::layout::{BrokerState, create_dir, write_file};
use super::process::{live_pid, spawn_logged, tail};
use super::{BOOT_TIMEOUT, BrokerError, LocalBroker};
use crate::haproxy;
use crate::mgmt::RawApi;
use std::process::Command;
use std::time::{Duration, Instant};

impl LocalBroker {
    pub(super) fn haproxy_pid(&self) -> Option<u32> {
        live_pid(&self.haproxy_dir().join("haproxy.pid"), "haproxy")
    }

    /// Waits until every node sees all the others running: a node that formed a cluster of its
    /// own would take clients no other node knows about.
    pub(super) async fn wait_for_cluster(&self, state: &BrokerState) -> Result<(), BrokerError> {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            let mut complete = true;
            for node in &state.nodes {
                let api = RawApi::new(&state.node_management(node));
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

    pub(super) fn start_haproxy(&self, state: &BrokerState) -> Result<(), BrokerError> {
        let front = state.front.as_ref().expect("a cluster has a front");
        if self.haproxy_pid().is_some() {
            return Ok(());
        }
        let dir = self.haproxy_dir();
        create_dir(&dir)?;
        for p in [
            front.amqps_port,
            front.management_port,
            front.prometheus_port,
        ] {
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                return Err(BrokerError::PortInUse(p));
            }
        }
        let backends: Vec<haproxy::Backend> = state
            .nodes
            .iter()
            .map(|n| haproxy::Backend {
                name: n.dir.clone(),
                host: n.host().to_owned(),
                amqps_port: n.amqps_port,
                management_port: n.management_port,
            })
            .collect();
        let frontend = haproxy::Frontend {
            bind: "127.0.0.1".into(),
            max_connections: haproxy::LOCAL_MAX_CONNECTIONS,
            amqps_port: front.amqps_port,
            management_port: Some(front.management_port),
            prometheus: Some(format!("127.0.0.1:{}", front.prometheus_port)),
            admin_socket: dir.join("admin.sock"),
            check_ca: Some(self.pki().ca_cert()),
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
}
