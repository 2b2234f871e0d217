//! The node processes: spawning `rabbitmq-server` with its log, waiting for it to answer, and
//! telling a live process from a stale pid file.

use super::layout::{BrokerState, NodeState};
use super::{BOOT_TIMEOUT, BrokerError, LocalBroker};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node that answers its management API may still fail TLS handshakes on its AMQPS
/// port (the listener starts with the node's other listeners, within a second or two).
const TLS_GRACE: Duration = Duration::from_secs(10);

impl LocalBroker {
    pub(super) fn spawn(&self, server: &Path, node: &NodeState) -> Result<(), BrokerError> {
        let _ = std::fs::remove_file(self.pid_path(node));
        spawn_logged(
            super::in_namespace(node, server)
                .envs(self.env(node))
                .current_dir(self.node_dir(node)),
            &self.node_log(node),
        )
        .map(|_| ())
    }

    pub(super) async fn wait_until_up(
        &self,
        state: &BrokerState,
        node: &NodeState,
    ) -> Result<(), BrokerError> {
        let client = crate::mgmt::admin_client(&state.node_management(node));
        let ca = self.pki().ca_cert();
        let started = Instant::now();
        let mut saw_pid = false;
        let mut tls_failing_since: Option<Instant> = None;
        let pid_file = self.pid_path(node);
        loop {
            if client.list_vhosts().await.is_ok() {
                match super::tls::presented_certificate(node.host(), node.amqps_port, &ca).await {
                    Ok(_) => return Ok(()),
                    Err(reason) => {
                        let since = *tls_failing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > TLS_GRACE {
                            return Err(self.tls_error(node, reason));
                        }
                    }
                }
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

    pub(super) fn boot_error(&self, reason: String, node: &NodeState) -> BrokerError {
        BrokerError::Boot {
            reason,
            log: self.node_log(node),
            tail: tail(&self.node_log(node), 15),
        }
    }
}

/// The pid in `pid_file`, if that process is alive and its command line contains `program` (a
/// recycled pid belongs to some other program).
pub(super) fn live_pid(pid_file: &Path, program: &str) -> Option<u32> {
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
pub(super) fn stop_process(pid: u32, alive: impl Fn() -> bool) {
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
pub(super) fn spawn_logged(
    command: &mut Command,
    log_path: &Path,
) -> Result<std::process::Child, BrokerError> {
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
    command.stdin(Stdio::null()).stdout(log).stderr(err);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(command, 0);
    let child = command.spawn().map_err(|source| BrokerError::Io {
        path: command.get_program().into(),
        source,
    })?;
    Ok(child)
}

/// Sends SIGKILL to `pid` and waits up to 10 s until `alive` says it is gone.
pub(super) fn kill_and_wait(pid: u32, alive: impl Fn() -> bool) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(super) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
