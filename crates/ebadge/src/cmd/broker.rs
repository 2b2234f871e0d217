//! `ebadge broker up/down/status`: the local TLS broker.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use ebadge_admin::broker::{BrokerStatus, LocalBroker, UpOptions};

/// Default broker directory (relative to the working directory).
pub const DEFAULT_DIR: &str = ".ebadge";

/// The `broker` subcommands.
#[derive(Subcommand)]
pub enum BrokerCommand {
    /// Start the local broker (RabbitMQ in DIR, TLS only, client certificates only), or the parts
    /// of it that stopped, or report the running one. Creates the PKI in DIR/pki and writes the
    /// connection profile DIR/profile.toml. With --nodes 3: a cluster of three nodes with haproxy
    /// in front (the profile points at haproxy); provisioning then makes every inbox but the
    /// HEHs' a quorum queue.
    ///
    /// Examples: ebadge broker up && ebadge pki issue heh-1
    ///           ebadge broker up --dir .ebadge-cluster --nodes 3
    Up {
        /// Broker directory.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
        /// AMQPS port clients use, for a broker set up for the first time (a free port
        /// otherwise); haproxy's port for a cluster.
        #[arg(long)]
        port: Option<u16>,
        /// Number of RabbitMQ nodes: 1, or 3 (or more) for a cluster behind haproxy. Fixed when
        /// the directory is first set up [default: 1, or what DIR holds].
        #[arg(long)]
        nodes: Option<usize>,
        /// Another name or IP address clients reach the broker by, put in the server certificate
        /// when the PKI is made (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Seconds between the management statistics of every connection, channel and queue
        /// (RabbitMQ's `collect_statistics_interval`, default 5). Fleets of 20,000 HEHs and
        /// more: 60 (docs/operator-guide.md, "Monitoring"); queue depths in the management API
        /// then lag by as much. Kept in DIR; stop a running broker to change it.
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..=3600))]
        statistics_interval: Option<u32>,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the local broker cleanly (haproxy and every node), or one node of a cluster.
    Down {
        /// Broker directory.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
        /// Stop only this node (1-based; `broker up` starts it again).
        #[arg(long)]
        node: Option<usize>,
        /// With --node: kill it with SIGKILL, as a crash would, instead of a clean stop.
        #[arg(long, requires = "node")]
        kill: bool,
    },
    /// Make every node read its certificate files again, after `ebadge pki server` (rotation):
    /// new connections get the new certificate, open ones carry on. Each node is then checked by
    /// a TLS handshake; a node that does not present the new certificate is named (exit 1).
    ReloadTls {
        /// Broker directory.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Say whether the local broker runs, and where. Exits 0 if it runs, 1 if not.
    Status {
        /// Broker directory.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `broker` subcommand.
pub async fn run(command: BrokerCommand) -> Result<ExitCode> {
    match command {
        BrokerCommand::Up {
            dir,
            port,
            nodes,
            hosts,
            statistics_interval,
            json,
        } => {
            if nodes == Some(2) {
                anyhow::bail!(
                    "--nodes 2 cannot survive the loss of a node (a quorum needs 2 of 2): use 1 or 3"
                );
            }
            let broker = LocalBroker::new(&dir);
            if !json {
                eprintln!("starting RabbitMQ in {} …", broker.dir().display());
            }
            let options = UpOptions {
                port,
                nodes,
                hosts,
                statistics_interval,
            };
            let started = std::time::Instant::now();
            let outcome = broker
                .up_with_progress(&options, |line| {
                    if !json {
                        eprintln!("  {line}");
                    }
                })
                .await;
            let (status, already) = outcome?;
            if !json {
                if already {
                    eprintln!("the broker was already running");
                } else {
                    eprintln!(
                        "the broker is up ({:.1} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            print_status(&status, json);
            Ok(ExitCode::SUCCESS)
        }
        BrokerCommand::Down { dir, node, kill } => {
            let broker = LocalBroker::new(&dir);
            if let Some(node) = node {
                let count = broker.status()?.nodes.len();
                anyhow::ensure!(
                    (1..=count).contains(&node),
                    "--node {node}: the broker in {} has nodes 1 to {count}",
                    broker.dir().display()
                );
                let done = if kill {
                    broker.kill_node(node - 1)?.is_some()
                } else {
                    broker.stop_node(node - 1)?
                };
                eprintln!(
                    "node {node} {}",
                    match (done, kill) {
                        (false, _) => "was not running",
                        (true, true) => "killed",
                        (true, false) => "stopped",
                    }
                );
                return Ok(ExitCode::SUCCESS);
            }
            if broker.down_with_progress(|line| eprintln!("{line}"))? {
                eprintln!("the broker in {} is stopped", broker.dir().display());
            } else {
                eprintln!("no broker was running in {}", broker.dir().display());
            }
            Ok(ExitCode::SUCCESS)
        }
        BrokerCommand::ReloadTls { dir } => {
            let nodes = LocalBroker::new(&dir).reload_tls().await?;
            eprintln!("{nodes} node(s) present the current certificate to new connections");
            Ok(ExitCode::SUCCESS)
        }
        BrokerCommand::Status { dir, json } => {
            let status = LocalBroker::new(&dir).status()?;
            print_status(&status, json);
            Ok(if status.running {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn print_status(status: &BrokerStatus, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(status).expect("status serializes")
        );
    } else {
        print!("{status}");
    }
}
