//! `ebadge conformance`: the conformance kit, which checks a partner's client against the bus.

use anyhow::Result;
use clap::{Args, Subcommand};
use ebadge_bus::EntityName;
use ebadge_sim::conformance::{self, KitOptions, Target};
use std::path::PathBuf;
use std::time::Duration;

use crate::output::{self, Format, Status};

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
    /// Check a VPP: the kit is a fleet of HEHs (EBADGE_HEHS, comma-separated, beside the
    /// variables of `heh`; no EBADGE_CONTROLLER). The VPP must send each an activate; each
    /// accepts at once; the VPP must consume and acknowledge the answers. Then every message it
    /// sent is checked.
    ///
    /// Exit status: 0 every check held, 1 a check failed, 2 the kit could not run.
    ///
    /// Example: ebadge conformance vpp --command 'python3 my_vpp.py' --hehs 20
    Vpp(VppArgs),
}

/// What both roles take.
#[derive(Args)]
pub struct KitArgs {
    /// The client's command line, run with `sh -c` from the current directory.
    #[arg(long, value_name = "COMMAND")]
    pub command: String,
    /// The local broker's directory (started and provisioned if need be; the kit restarts it).
    #[arg(long, value_name = "DIR", default_value = ".ebadge")]
    pub dir: PathBuf,
    /// Another broker instead, given by an operator profile (with [management]): the kit adds
    /// its entities there and cuts the client's link, but neither restarts the broker nor reads
    /// its log (those checks are skipped). Never the production bus.
    #[arg(long, value_name = "FILE", conflicts_with = "dir")]
    pub profile: Option<PathBuf>,
    /// Seconds the client has to answer a request.
    #[arg(long, value_name = "SECONDS", default_value_t = conformance::ANSWER_WITHIN.as_secs_f64())]
    pub answer_within: f64,
    /// Seconds the client has to consume its inbox after it starts (and, for an HEH, again
    /// after an outage; for a VPP, to send its activations).
    #[arg(long, value_name = "SECONDS", default_value_t = conformance::START_WITHIN.as_secs_f64())]
    pub start_within: f64,
    /// Where the client's files and its output go (default: DIR/conformance/NAME, with
    /// --profile ebadge-conformance/NAME).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Print the report as one JSON object on standard output.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// `conformance heh`.
#[derive(Args)]
pub struct HehArgs {
    #[command(flatten)]
    kit: KitArgs,
    /// The client's entity name.
    #[arg(long = "as", value_name = "NAME", default_value = conformance::CLIENT)]
    pub name: String,
    /// The kit's entity name: the client's controller.
    #[arg(long, value_name = "NAME", default_value = conformance::COUNTERPART)]
    pub controller: String,
    /// Seconds the kit cuts the client's link.
    #[arg(long, value_name = "SECONDS", default_value_t = conformance::OUTAGE.as_secs_f64())]
    pub outage: f64,
}

/// `conformance vpp`.
#[derive(Args)]
pub struct VppArgs {
    #[command(flatten)]
    kit: KitArgs,
    /// The VPP's entity name.
    #[arg(long = "as", value_name = "NAME", default_value = conformance::VPP_CLIENT)]
    pub name: String,
    /// How many HEHs the kit plays.
    #[arg(long, value_name = "N", default_value_t = conformance::HEHS)]
    pub hehs: usize,
}

fn seconds(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| anyhow::anyhow!("{what} takes a number of seconds above 0, not {s}"))
}

fn entity(name: &str, what: &str) -> Result<EntityName> {
    EntityName::new(name).map_err(|e| anyhow::anyhow!("{what} {name}: {e}"))
}

/// Runs a `conformance` subcommand.
pub async fn run(command: ConformanceCommand) -> Result<Status> {
    let (kit, options, vpp) = match command {
        ConformanceCommand::Heh(args) => {
            let options = KitOptions {
                name: entity(&args.name, "--as")?,
                counterpart: entity(&args.controller, "--controller")?,
                outage: seconds(args.outage, "--outage")?,
                ..KitOptions::new("", "")
            };
            (args.kit, options, false)
        }
        ConformanceCommand::Vpp(args) => {
            if args.hehs == 0 || args.hehs > 0xffff {
                anyhow::bail!("--hehs takes 1 to 65535, not {}", args.hehs);
            }
            let options = KitOptions {
                name: entity(&args.name, "--as")?,
                hehs: args.hehs,
                ..KitOptions::new("", "")
            };
            (args.kit, options, true)
        }
    };
    let options = KitOptions {
        command: kit.command.clone(),
        answer_within: seconds(kit.answer_within, "--answer-within")?,
        start_within: seconds(kit.start_within, "--start-within")?,
        work_dir: kit.work_dir.clone().unwrap_or_else(|| match &kit.profile {
            None => kit.dir.join("conformance").join(options.name.as_str()),
            Some(_) => PathBuf::from("ebadge-conformance").join(options.name.as_str()),
        }),
        ..options
    };
    let broker = match &kit.profile {
        None => Target::Local(ebadge_admin::broker::LocalBroker::new(&kit.dir)),
        Some(file) => Target::Given(ebadge_admin::profile::OperatorProfile::load(file)?),
    };
    let started = std::time::Instant::now();
    let progress = |line: &str| eprintln!("kit {:>5.1} s: {line}", started.elapsed().as_secs_f64());
    let run = async {
        if vpp {
            conformance::run_vpp(&broker, &options, &progress).await
        } else {
            conformance::run_heh(&broker, &options, &progress).await
        }
    };
    // Ctrl-C drops the run, and with it the client's process group (killed on drop).
    let report = tokio::select! {
        report = run => report,
        _ = tokio::signal::ctrl_c() => {
            output::stopped("conformance", "interrupted; the client's processes are stopped");
            return Ok(Status::Interrupted);
        }
    };
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            output::stopped("conformance", e);
            return Ok(Status::Error);
        }
    };
    if let Some(file) = &kit.junit {
        std::fs::write(file, report.to_junit())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))?;
    }
    match Format::json_if(kit.json) {
        Format::Json => output::json(&report)?,
        Format::Text => output::text(report.to_text()),
    }
    Ok(Status::held(report.passed()))
}
