//! `ebadge broker up/down/status`: the local TLS broker.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use ebadge_admin::broker::{BrokerStatus, LocalBroker};

/// Default broker directory (relative to the working directory).
pub const DEFAULT_DIR: &str = ".ebadge";

/// The `broker` subcommands.
#[derive(Subcommand)]
pub enum BrokerCommand {
    /// Start the local broker (RabbitMQ in DIR, TLS only, client certificates only), or report the
    /// running one. Creates the PKI in DIR/pki and writes the connection profile DIR/profile.toml.
    ///
    /// Example: ebadge broker up && ebadge pki issue heh-1
    Up {
        /// Broker directory.
        #[arg(long, default_value = DEFAULT_DIR)]
        dir: PathBuf,
        /// AMQPS port for a broker set up for the first time (a free port otherwise).
        #[arg(long)]
        port: Option<u16>,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the local broker cleanly.
    Down {
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
        BrokerCommand::Up { dir, port, json } => {
            let broker = LocalBroker::new(&dir);
            if !json {
                eprintln!("starting RabbitMQ in {} …", broker.dir().display());
            }
            let (status, already) = broker.up(port).await?;
            if !json {
                eprintln!(
                    "{}",
                    if already {
                        "the broker was already running"
                    } else {
                        "the broker is up"
                    }
                );
            }
            print_status(&status, json);
            Ok(ExitCode::SUCCESS)
        }
        BrokerCommand::Down { dir } => {
            let broker = LocalBroker::new(&dir);
            if broker.down()? {
                eprintln!("the broker in {} is stopped", broker.dir().display());
            } else {
                eprintln!("no broker was running in {}", broker.dir().display());
            }
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
        return;
    }
    let state = match status.pid {
        Some(pid) => format!("running (pid {pid})"),
        None => "stopped".into(),
    };
    println!("broker      {state}");
    println!("node        {}", status.node);
    println!("amqps       {}", status.amqps_url);
    println!("management  {}", status.management_url);
    println!("profile     {}", status.profile.display());
    println!("directory   {}", status.dir.display());
}
