//! `ebadge broker up/down/status`: the local TLS broker.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use ebadge_admin::broker::{BrokerError, BrokerStatus, End, LocalBroker, UpOptions};

use crate::output::{self, Format, Status};

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
        /// With --nodes 3: each node in a network namespace of its own (as root), so that
        /// `ebadge broker net` can cut and heal the links between nodes and to the host, to
        /// rehearse a partition (docs/operator-guide.md, "Network partitions"). Fixed when DIR is
        /// first set up.
        #[arg(long, requires = "nodes")]
        namespaces: bool,
        /// Seconds of silence after which a node counts a peer as gone (Erlang's
        /// `net_ticktime`; RabbitMQ's default 60 when not given): a partition goes unnoticed
        /// for up to 1.25 times this. Fixed when DIR is first set up.
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..=600))]
        net_ticktime: Option<u32>,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cut and heal the links of a cluster set up with --namespaces: a partition on one machine.
    /// A cut drops packets both ways (nothing is refused: each side finds out by its own
    /// timeouts). Ends are node numbers (1-based) or `host` (haproxy and the clients).
    ///
    /// Examples: ebadge broker net --dir D isolate 1     (node 1 alone: a minority)
    ///           ebadge broker net --dir D cut 1 3       (a bridge: 1 and 3 apart, both see 2)
    ///           ebadge broker net --dir D heal          (every link back)
    Net {
        /// Broker directory.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
        #[command(subcommand)]
        action: NetAction,
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

/// What `ebadge broker net` does.
#[derive(Subcommand)]
pub enum NetAction {
    /// Cut the link between two ends.
    Cut {
        /// A node number or `host`.
        #[arg(value_parser = parse_end)]
        a: End,
        /// A node number or `host`.
        #[arg(value_parser = parse_end)]
        b: End,
    },
    /// Cut a node off from every other node and from the host.
    Isolate {
        /// The node (1-based).
        #[arg(value_parser = parse_node)]
        node: End,
    },
    /// Restore the link between two ends, or every link when none are named.
    Heal {
        /// A node number or `host`.
        #[arg(value_parser = parse_end, requires = "b")]
        a: Option<End>,
        /// A node number or `host`.
        #[arg(value_parser = parse_end)]
        b: Option<End>,
    },
    /// List the links cut now (exit 0 either way).
    Show {
        /// As a JSON array of pairs.
        #[arg(long)]
        json: bool,
    },
}

fn parse_end(text: &str) -> Result<End, String> {
    if text == "host" {
        return Ok(End::Host);
    }
    parse_node(text)
}

fn parse_node(text: &str) -> Result<End, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(End::Node(n - 1)),
        _ => Err(format!("{text:?}: a node number (1, 2, …) or `host`")),
    }
}

/// Runs a `broker` subcommand.
pub async fn run(command: BrokerCommand) -> Result<Status> {
    match command {
        BrokerCommand::Up {
            dir,
            port,
            nodes,
            hosts,
            statistics_interval,
            namespaces,
            net_ticktime,
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
                namespaces,
                net_ticktime,
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
            print_status(&status, json)?;
            Ok(Status::Ok)
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
                return Ok(Status::Ok);
            }
            if broker.down_with_progress(|line| eprintln!("{line}"))? {
                eprintln!("the broker in {} is stopped", broker.dir().display());
            } else {
                eprintln!("no broker was running in {}", broker.dir().display());
            }
            Ok(Status::Ok)
        }
        BrokerCommand::Net { dir, action } => {
            let broker = LocalBroker::new(&dir);
            match action {
                NetAction::Cut { a, b } => {
                    broker.cut(a, b)?;
                    eprintln!("cut: {a} – {b}");
                }
                NetAction::Isolate { node } => {
                    let End::Node(index) = node else {
                        unreachable!("parse_node gives a node")
                    };
                    broker.isolate(index)?;
                    eprintln!("{node} is cut off from every other node and from the host");
                }
                NetAction::Heal { a: Some(a), b } => {
                    let b = b.expect("clap requires b with a");
                    broker.heal(a, b)?;
                    eprintln!("healed: {a} – {b}");
                }
                NetAction::Heal { a: None, .. } => {
                    broker.heal_all()?;
                    eprintln!("every link is back");
                }
                NetAction::Show { json } => {
                    let cuts = broker.cuts()?;
                    if json {
                        let pairs: Vec<[String; 2]> = cuts
                            .iter()
                            .map(|(a, b)| [a.to_string(), b.to_string()])
                            .collect();
                        output::json(&pairs)?;
                    } else if cuts.is_empty() {
                        output::line("no link is cut");
                    } else {
                        for (a, b) in cuts {
                            output::line(format_args!("cut  {a} – {b}"));
                        }
                    }
                }
            }
            Ok(Status::Ok)
        }
        BrokerCommand::ReloadTls { dir } => match LocalBroker::new(&dir).reload_tls().await {
            Ok(nodes) => {
                eprintln!("{nodes} node(s) present the current certificate to new connections");
                Ok(Status::Ok)
            }
            // A node that does not take the new certificate is what this command checks for:
            // a finding (1), as its help says, not a failure to run (2).
            Err(error @ BrokerError::Tls { .. }) => {
                output::error(&error.into());
                Ok(Status::Failed)
            }
            Err(error) => Err(error.into()),
        },
        BrokerCommand::Status { dir, json } => {
            let status = LocalBroker::new(&dir).status()?;
            print_status(&status, json)?;
            Ok(Status::held(status.running))
        }
    }
}

fn print_status(status: &BrokerStatus, json: bool) -> Result<()> {
    match Format::json_if(json) {
        Format::Json => output::json(status),
        Format::Text => {
            output::text(status);
            Ok(())
        }
    }
}
