//! `ebadge sim heh|vpp|market`: simulated actors on a provisioned broker (the demo's registry
//! names them: `ebadge demo` once, then run them separately, e.g. HEH fleets in several processes).

use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use ebadge_bus::EntityName;
use ebadge_sim::demo::{self, VPP};
use ebadge_sim::fleet::Fleet;
use ebadge_sim::heh::Policy;

use super::{MetricsArg, ProfileArg};
use crate::output::{self, Status};

/// The `sim` subcommands.
#[derive(Subcommand)]
pub enum SimCommand {
    /// A fleet of simulated HEHs (the demo's names heh-020000xxxxxx), until Ctrl-C.
    ///
    /// Example: ebadge sim heh --first 0 --count 5000
    Heh {
        /// Index of the first HEH.
        #[arg(long, default_value_t = 0)]
        first: usize,
        /// How many.
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Their controlling entity.
        #[arg(long, default_value = VPP)]
        controller: String,
        /// Flexible capacity of each, kW.
        #[arg(long, default_value_t = 3.0)]
        capacity: f64,
        /// Counter-propose above capacity instead of rejecting.
        #[arg(long)]
        modify: bool,
        #[command(flatten)]
        profile: ProfileArg,
        /// The fleet's totals under entity="fleet" (not one label set per HEH).
        #[command(flatten)]
        metrics: MetricsArg,
    },
    /// A VPP: collects announcements and reports for SECONDS, then runs a campaign for KW.
    Vpp {
        /// Who we are.
        #[arg(long = "as", default_value = VPP)]
        name: String,
        /// Seconds to listen before the campaign.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Campaign target in kW (none if 0).
        #[arg(long, default_value_t = 0.0)]
        campaign: f64,
        #[command(flatten)]
        profile: ProfileArg,
        #[command(flatten)]
        metrics: MetricsArg,
    },
    /// One market day among the demo's market actors; prints its summary as JSON.
    Market {
        #[command(flatten)]
        profile: ProfileArg,
        /// One label set per market actor.
        #[command(flatten)]
        metrics: MetricsArg,
    },
}

/// Runs a `sim` subcommand.
pub async fn run(command: SimCommand) -> Result<Status> {
    super::raise_open_file_limit();
    match command {
        SimCommand::Heh {
            first,
            count,
            controller,
            capacity,
            modify,
            profile,
            metrics,
        } => {
            let profile = profile.load()?;
            let controller = EntityName::new(&controller)?;
            let policy = if modify {
                Policy::Modify
            } else {
                Policy::Reject
            };
            let specs = demo::heh_specs(first, count, &controller, capacity, policy);
            let fleet = Fleet::start(std::slice::from_ref(&profile), specs, 64, |n| {
                if n % 500 == 0 {
                    eprintln!("{n} connected");
                }
            })
            .await?;
            let metrics = metrics.serve().await?;
            if let Some((metrics, _)) = &metrics {
                metrics.watch("fleet", &fleet.clients);
            }
            eprintln!("{count} HEHs running; Ctrl-C stops them");
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let (sent, confirmed, received) = fleet.clients.iter().map(|c| c.counters()).fold((0, 0, 0), |a, c| (a.0 + c.sent, a.1 + c.confirmed, a.2 + c.received));
                        eprintln!("sent {sent}, confirmed {confirmed}, received {received}");
                    }
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
            fleet.close(Duration::from_secs(5)).await;
        }
        SimCommand::Vpp {
            name,
            seconds,
            campaign,
            profile,
            metrics,
        } => {
            let profile = profile.load()?;
            let name = EntityName::new(&name)?;
            let metrics = metrics.serve().await?;
            let watch = metrics.as_ref().map(|(m, _)| m);
            let summary =
                ebadge_sim::vpp::standalone(profile, name, seconds, campaign, watch).await?;
            // Through a JSON value, whose keys are sorted, as this object always printed.
            output::json(&serde_json::to_value(&summary)?)?;
        }
        SimCommand::Market { profile, metrics } => {
            let profile = profile.load()?;
            let market = demo::market(&profile).await?;
            let metrics = metrics.serve().await?;
            if let Some((metrics, _)) = &metrics {
                market.watch(metrics);
            }
            let summary = market.run_day().await;
            output::json(&summary)?;
        }
    }
    Ok(Status::Ok)
}
