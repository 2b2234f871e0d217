//! `ebadge conformance`: the conformance kit, which checks a partner's client against the bus.

use anyhow::Result;
use clap::{Args, Subcommand};
use ebadge_bus::EntityName;
use ebadge_sim::conformance::{self, KitOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The `conformance` subcommands: one per role a client can play.
#[derive(Subcommand)]
pub enum ConformanceCommand {
    /// Check an HEH: the kit is its controller. It starts COMMAND with the client's files in
    /// its environment (EBADGE_URL, EBADGE_CA, EBADGE_CERT, EBADGE_KEY, EBADGE_PKCS12 and
    /// EBADGE_PKCS12_PASSWORD, EBADGE_PROFILE, EBADGE_NAME, EBADGE_CONTROLLER: see
    /// docs/partners.md), asks for a status report, a report, an activation and periodic
    /// reports, cuts the client's link, restarts the broker, delivers an order twice, and checks
    /// every message the client sent. Each check prints pass or FAIL with the reason and the
    /// section of D3.2.3 or D3.1.3.
    ///
    /// Exit status: 0 every check held, 1 a check failed, 2 the kit could not run.
    ///
    /// Example: ebadge conformance heh --command 'python3 my_heh.py' --junit kit.xml
    Heh(HehArgs),
}

/// `conformance heh`.
#[derive(Args)]
pub struct HehArgs {
    /// The client's command line, run with `sh -c` from the current directory.
    #[arg(long, value_name = "COMMAND")]
    pub command: String,
    /// The local broker's directory (started and provisioned if need be; the kit restarts it).
    #[arg(long, value_name = "DIR", default_value = ".ebadge")]
    pub dir: PathBuf,
    /// The client's entity name.
    #[arg(long = "as", value_name = "NAME", default_value = conformance::CLIENT)]
    pub name: String,
    /// The kit's entity name: the client's controller.
    #[arg(long, value_name = "NAME", default_value = conformance::COUNTERPART)]
    pub controller: String,
    /// Seconds the client has to answer a request.
    #[arg(long, value_name = "SECONDS", default_value_t = conformance::ANSWER_WITHIN.as_secs_f64())]
    pub answer_within: f64,
    /// Seconds the client has to consume its inbox after it starts, and again after an outage.
    #[arg(long, value_name = "SECONDS", default_value_t = conformance::START_WITHIN.as_secs_f64())]
    pub start_within: f64,
    /// Seconds the kit cuts the client's link.
    #[arg(long, value_name = "SECONDS", default_value_t = conformance::OUTAGE.as_secs_f64())]
    pub outage: f64,
    /// Where the client's files and its output go (default: DIR/conformance/NAME).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Print the report as one JSON object on standard output.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// Runs a `conformance` subcommand.
pub async fn run(command: ConformanceCommand) -> Result<ExitCode> {
    let ConformanceCommand::Heh(args) = command;
    let seconds = |s: f64, what: &str| {
        Duration::try_from_secs_f64(s)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| anyhow::anyhow!("{what} takes a number of seconds above 0, not {s}"))
    };
    let name =
        EntityName::new(&args.name).map_err(|e| anyhow::anyhow!("--as {}: {e}", args.name))?;
    let counterpart = EntityName::new(&args.controller)
        .map_err(|e| anyhow::anyhow!("--controller {}: {e}", args.controller))?;
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| args.dir.join("conformance").join(name.as_str()));
    let options = KitOptions {
        answer_within: seconds(args.answer_within, "--answer-within")?,
        start_within: seconds(args.start_within, "--start-within")?,
        outage: seconds(args.outage, "--outage")?,
        name,
        counterpart,
        ..KitOptions::new(args.command.clone(), work_dir)
    };
    let broker = ebadge_admin::broker::LocalBroker::new(&args.dir);
    let started = std::time::Instant::now();
    let progress = |line: &str| eprintln!("kit {:>5.1} s: {line}", started.elapsed().as_secs_f64());
    let report = match conformance::run_heh(&broker, &options, &progress).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("ebadge conformance: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(file) = &args.junit {
        std::fs::write(file, report.to_junit())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
