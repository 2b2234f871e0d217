//! `ebadge-heh --config FILE`: the HEH agent. Connects to the bus with the HEH's certificate,
//! runs the device program and passes messages between them, keeping activations failsafe.
//! `--check` reads the configuration and the certificate files, and says what it would do.
//!
//! It starts without the bus: the device runs at once and the failsafe counts the outage from
//! the start, while the client connects in the background. Only what no retry can mend (the
//! configuration, the certificate files, the outbox's file) stops it at start.

use ebadge_heh::agent;
use ebadge_heh::command::CommandDevice;
use ebadge_heh::config::AgentConfig;
use ebadge_heh::store::Store;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: ebadge-heh --config FILE [--check]

The eBADGE HEH agent: connects the HEH's device program to the bus (configuration: see
docs/heh-guide.md, section 8). --check reads the configuration and the certificate files and
prints what it would do.";

fn main() -> ExitCode {
    let mut config = None;
    let mut check = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config = args.next().map(PathBuf::from),
            "--check" => check = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("ebadge-heh: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = config else {
        eprintln!("ebadge-heh: --config FILE is required\n{USAGE}");
        return ExitCode::from(2);
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EBADGE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match AgentConfig::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ebadge-heh: {e}");
            return ExitCode::from(2);
        }
    };
    // Checked here, not by a first connection: the agent starts without the broker, and a
    // certificate that cannot be read would otherwise only show as endless reconnects.
    if let Err(e) = usable_certificate(&config) {
        eprintln!("ebadge-heh: {e}");
        return ExitCode::from(2);
    }
    if check {
        let client = config.client();
        println!(
            "{} → {} via {}; device {:?}; failsafe after {} s: {:?}; outbox {} (at most {} messages)",
            config.name,
            config.controller,
            config.bus.amqps_url,
            config.device.command,
            config.failsafe.after_seconds,
            config.failsafe.behaviour,
            config
                .outbox_path()
                .map_or("in memory: nothing survives a restart".into(), |p| p
                    .display()
                    .to_string()),
            client.outbox_cap,
        );
        return ExitCode::SUCCESS;
    }
    // One thread: an HEH does little, and wakes up less this way.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(run(&config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ebadge-heh: {e}");
            ExitCode::from(1)
        }
    }
}

fn usable_certificate(config: &AgentConfig) -> Result<(), ebadge_bus::ConnectError> {
    config
        .bus
        .host_and_port()
        .map_err(ebadge_bus::ConnectError::Address)?;
    let (cert, key) = config.bus.certificate(config.name.as_str());
    ebadge_bus::amqp::tls_config(&config.bus.ca, &cert, &key).map(drop)
}

async fn run(config: &AgentConfig) -> Result<(), Box<dyn std::error::Error>> {
    // Without waiting for the broker: the device and the failsafe must run while the bus is
    // away, also when it is away as the agent starts (systemd restarting it, an outage at boot).
    let mut client_config = config.client();
    client_config.first_connection = ebadge_bus::FirstConnection::Background;
    let client = ebadge_bus::Client::connect(client_config).await?;
    let store = match config.outbox_path() {
        Some(path) => Some(Store::open(path)?),
        None => {
            tracing::warn!(
                "no [outbox] path: running activations are forgotten if the agent restarts"
            );
            None
        }
    };
    let mut device = CommandDevice::start(&config.device.command)?;
    let result = agent::run_with(
        &client,
        &config.controller,
        &mut device,
        config.failsafe(),
        store,
    )
    .await;
    device.stop().await;
    // The agent may have started without the bus: what the device said last gets the time a
    // first connection takes (long on a slow board) before an in-memory outbox is discarded.
    client.close(std::time::Duration::from_secs(30)).await;
    Ok(result?)
}
