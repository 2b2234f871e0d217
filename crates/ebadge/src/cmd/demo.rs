//! `ebadge demo`: the main job on the embedded default — broker up, provision, an HEH fleet and a
//! VPP, the market actors, a minute of traffic, a summary.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ebadge_admin::broker::LocalBroker;
use ebadge_sim::demo::{self, Progress};

use super::MetricsArg;
use crate::output::{Format, Status};

/// Arguments of `demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Broker directory (started if not running).
    #[arg(long, default_value = super::broker::DEFAULT_DIR)]
    pub dir: PathBuf,
    /// How many simulated HEHs, each with its own TLS connection and certificate.
    #[arg(long, default_value_t = 100)]
    pub hehs: usize,
    /// Seconds of report traffic before the campaign and the market day.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Print the summary as one JSON object (progress goes to standard error either way).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub metrics: MetricsArg,
    /// With --metrics: keep serving the final figures this many seconds after the summary, for a
    /// last scrape.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub hold: u64,
}

/// Runs the demo; exits 1 if any of its checks failed (HEHs missing, no reports, campaign short
/// of its target, a market request unanswered).
pub async fn run(args: DemoArgs) -> Result<Status> {
    super::raise_open_file_limit();
    eprintln!(
        "== broker: RabbitMQ in {} (TLS only, client certificates only)",
        LocalBroker::new(&args.dir).dir().display()
    );
    let demo::DemoBus { bus, registry_file } =
        demo::prepare(&args.dir, args.hehs, super::provisioning_progress()).await?;
    eprintln!(
        "   {} at {}",
        if bus.was_running {
            "already running"
        } else {
            "started"
        },
        bus.status.amqps_url
    );
    eprintln!(
        "== provisioned {}: {} added, {} changed",
        registry_file.display(),
        bus.plan.add.len(),
        bus.plan.change.len()
    );
    eprintln!("   {} client certificates issued", bus.issued);

    eprintln!(
        "== {} HEHs, a VPP and {} market actors",
        args.hehs,
        demo::MARKET.len()
    );
    let metrics = args.metrics.serve().await?;
    if metrics.is_some() {
        for node in &bus.status.nodes {
            if let Some(url) = &node.prometheus_url {
                eprintln!("metrics: {url} (RabbitMQ {})", node.name);
            }
        }
    }
    let live = std::io::stderr().is_terminal();
    let watch = metrics.as_ref().map(|(m, _)| m);
    let summary = demo::run(
        &bus.profile,
        args.hehs,
        args.seconds,
        watch,
        |event| match event {
            Progress::Tick { line, .. } if live => eprint!("\r   {line}   "),
            // Not a terminal: a line every 10 s keeps logs short.
            Progress::Tick { second, line } if second % 10 == 0 => eprintln!("   {line}"),
            Progress::Tick { .. } => {}
            Progress::Step(line) => {
                if live {
                    eprintln!();
                }
                eprintln!("   {line}");
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    let ok = summary.ok();
    Format::json_if(args.json).print(&summary, || summary_text(&summary))?;
    if metrics.is_some() && args.hold > 0 {
        eprintln!("metrics: served {} s more for a last scrape", args.hold);
        tokio::time::sleep(std::time::Duration::from_secs(args.hold)).await;
    }
    Ok(Status::held(ok))
}

/// The summary as the demo prints it for people: one figure a line, then the verdict.
fn summary_text(summary: &demo::Summary) -> String {
    let demo::Summary {
        campaign, market, ..
    } = summary;
    [
        "== summary".to_owned(),
        format!(
            "HEHs online          {}/{}",
            summary.hehs_online, summary.hehs
        ),
        format!(
            "reports received     {} in {:.0} s",
            summary.reports_received, summary.seconds
        ),
        format!(
            "campaign             {:.0} of {:.0} kW in {:.3} s ({} orders, {} rounds)",
            campaign.achieved_kw,
            campaign.target_kw,
            campaign.seconds,
            campaign.orders,
            campaign.rounds
        ),
        format!(
            "market               {} bids, {} accepted, {} activated, {} unanswered",
            market.bids, market.bids_accepted, market.bids_activated, market.unanswered
        ),
        format!(
            "HEH messages         {} confirmed by the broker",
            summary.heh_messages_confirmed
        ),
        format!("quarantined          {}", summary.quarantined),
        if summary.ok() {
            "demo OK"
        } else {
            "demo FAILED: see above"
        }
        .to_owned(),
    ]
    .join("\n")
}
