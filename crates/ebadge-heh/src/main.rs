//! `ebadge-heh --config FILE`: the HEH agent. Connects to the bus with the HEH's certificate,
//! runs the device program and passes messages between them, keeping activations failsafe.
//! `--check` reads the configuration and says what it would do.

use ebadge_heh::agent;
use ebadge_heh::command::CommandDevice;
use ebadge_heh::config::AgentConfig;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: ebadge-heh --config FILE [--check]

The eBADGE HEH agent: connects the HEH's device program to the bus (configuration: see
docs/heh-guide.md, section 8). --check reads the configuration and prints what it would do.";

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
    if check {
        println!(
            "{} → {} via {}; device {:?}; failsafe after {} s: {:?}",
            config.name,
            config.controller,
            config.bus.amqps_url,
            config.device.command,
            config.failsafe.after_seconds,
            config.failsafe.behaviour
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

async fn run(config: &AgentConfig) -> Result<(), Box<dyn std::error::Error>> {
    let client = ebadge_bus::Client::connect(config.client()).await?;
    let mut device = CommandDevice::start(&config.device.command)?;
    let result = agent::run(&client, &config.controller, &mut device, config.failsafe()).await;
    device.stop().await;
    client.close(std::time::Duration::from_secs(5)).await;
    Ok(result?)
}
