//! The demo: a local broker, an operator's registry, a VPP with a fleet of HEHs and the market
//! actors, a minute of traffic with a live progress line, and a summary. [`prepare`] makes the
//! broker ready, [`run`] plays the demo on it; `ebadge demo` prints what they report.

use crate::fleet::Fleet;
use crate::heh::{HehSpec, Policy};
use crate::local_bus::LocalBus;
use crate::market::{Market, MarketSummary};
use crate::vpp::{Campaign, SimVpp};
use ebadge_admin::registry::Builder;
use ebadge_bus::{Client, ClientConfig, EntityName, Profile};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The market actors of the demo.
pub const MARKET: [&str; 6] = [
    "north-tso",
    "south-tso",
    "super-tso",
    "bsp-a",
    "bsp-b",
    "bsp-c",
];

/// Name of the demo's VPP.
pub const VPP: &str = "vpp";

/// What the demo reports at the end.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// HEHs started.
    pub hehs: usize,
    /// HEHs the VPP saw announce themselves.
    pub hehs_online: usize,
    /// Seconds of traffic.
    pub seconds: f64,
    /// Reports the VPP received.
    pub reports_received: u64,
    /// The activation campaign.
    pub campaign: Campaign,
    /// The market day.
    pub market: MarketSummary,
    /// Messages the HEHs sent and the broker confirmed (all HEHs).
    pub heh_messages_confirmed: u64,
    /// Invalid messages quarantined anywhere.
    pub quarantined: u64,
}

impl Summary {
    /// Whether everything the demo shows worked.
    pub fn ok(&self) -> bool {
        self.hehs_online == self.hehs
            && self.reports_received > 0
            && self.campaign.achieved_kw + 1e-9 >= self.campaign.target_kw
            && self.market.unanswered == 0
    }
}

/// The demo's registry: the VPP controls `hehs` HEHs directly; the market actors are linked as
/// D3.1.3 section 6 has them talk.
pub fn registry(hehs: usize) -> Builder {
    let mut registry = Builder::new()
        .comment("Written by `ebadge demo`.")
        .entity("vpp", Some("vpp"));
    for name in MARKET {
        registry = registry.entity(name, None);
    }
    for i in 0..hehs {
        registry = registry.heh(heh_name(i), "vpp");
    }
    for (a, b) in [
        ("north-tso", "bsp-a"),
        ("north-tso", "bsp-b"),
        ("north-tso", "bsp-c"),
        ("north-tso", "super-tso"),
        ("south-tso", "super-tso"),
    ] {
        registry = registry.link(a, b);
    }
    registry.group("bsps", "north-tso", ["bsp-a", "bsp-b", "bsp-c"])
}

/// The demo's bus, made ready by [`prepare`].
#[derive(Debug)]
pub struct DemoBus {
    /// The local broker with the demo's registry provisioned.
    pub bus: LocalBus,
    /// Where the registry was written (`demo-registry.toml` in the broker's directory), for
    /// `ebadge provision` and for the curious.
    pub registry_file: PathBuf,
}

/// Why the demo's bus could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The demo's registry is invalid (a bug).
    #[error(transparent)]
    Registry(#[from] ebadge_admin::registry::RegistryError),
    /// The local broker could not be brought up or provisioned.
    #[error(transparent)]
    Local(#[from] ebadge_admin::local::LocalError),
    /// The registry file could not be written.
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Brings the local broker in `dir` up and provisions the demo's registry for `hehs` HEHs
/// ([`crate::local_bus::prepare`], as the benchmarks do), then writes the registry beside the
/// broker; `progress` gets (done, total) broker items while provisioning runs.
pub async fn prepare(
    dir: &Path,
    hehs: usize,
    progress: impl FnMut(usize, usize),
) -> Result<DemoBus, PrepareError> {
    let builder = registry(hehs);
    let bus = crate::local_bus::prepare(dir, &builder.build()?, progress).await?;
    // Once provisioned: the broker's directory exists then, and the file says what it holds.
    let registry_file = bus.status.dir.join("demo-registry.toml");
    std::fs::write(&registry_file, builder.to_toml()).map_err(|source| PrepareError::Write {
        path: registry_file.clone(),
        source,
    })?;
    Ok(DemoBus { bus, registry_file })
}

/// The specifications of the demo's HEHs `first..first + count` (its names, see [`heh_name`])
/// under `controller`, each of `capacity_kw`, all with `policy`: what `ebadge sim heh` runs.
pub fn heh_specs(
    first: usize,
    count: usize,
    controller: &EntityName,
    capacity_kw: f64,
    policy: Policy,
) -> Vec<HehSpec> {
    (first..first + count)
        .map(|i| HehSpec {
            name: EntityName::new(&heh_name(i)).expect("demo names follow the rule"),
            controller: controller.clone(),
            capacity_kw,
            policy,
        })
        .collect()
}

/// The name of demo HEH `i`: a MAC in the locally administered range 02:00:00:xx:xx:xx.
pub fn heh_name(i: usize) -> String {
    format!("heh-020000{:06x}", i)
}

/// What the demo reports while it runs.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A step finished.
    Step(&'a str),
    /// The traffic status, once a second.
    Tick {
        /// Seconds of traffic so far.
        second: u64,
        /// The status line.
        line: &'a str,
    },
}

/// Connects the demo's market actors and starts their handlers; each is told its groups (the
/// BSPs hear the TSO's `market_cleared` through the group `bsps`).
pub async fn market(profile: &Profile) -> Result<Market, ebadge_bus::ConnectError> {
    let name = |s: &str| EntityName::new(s).expect("demo names follow the rule");
    let registry = registry(0).build().expect("the demo's registry is valid");
    let connect = |who: &str| {
        let mut config = ClientConfig::new(profile.clone(), name(who));
        config.groups = registry.groups_of(&config.name);
        Client::connect(config)
    };
    Ok(Market::serve(
        connect("north-tso").await?,
        vec![
            connect("bsp-a").await?,
            connect("bsp-b").await?,
            connect("bsp-c").await?,
        ],
        name("bsps"),
        connect("super-tso").await?,
        connect("south-tso").await?,
    ))
}

/// Runs the demo against a provisioned broker, telling `progress` what happens; with `metrics`,
/// the VPP and each market actor are watched under their names, the HEHs as one `fleet`.
pub async fn run(
    profile: &Profile,
    hehs: usize,
    seconds: u64,
    metrics: Option<&ebadge_bus::metrics::Metrics>,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<Summary, Box<dyn std::error::Error + Send + Sync>> {
    let name = |s: &str| EntityName::new(s).expect("demo names follow the rule");
    let connect = |who: &str| {
        let mut config = ClientConfig::new(profile.clone(), name(who));
        // The VPP sends bursts of activations: it publishes on connections of its own (the
        // demo's broker is one node).
        if who == VPP {
            config.publish_connections = ClientConfig::burst_publish_connections(1);
        }
        Client::connect(config)
    };
    let vpp = connect(VPP).await?;
    if let Some(metrics) = metrics {
        metrics.watch(VPP, std::slice::from_ref(&vpp));
    }
    let vpp = SimVpp::start(vpp);
    // Capacities of 1 to 4 kW; one HEH in five refuses what exceeds it, the others counter-propose.
    let specs: Vec<HehSpec> = (0..hehs)
        .map(|i| HehSpec {
            name: name(&heh_name(i)),
            controller: name(VPP),
            capacity_kw: 1.0 + (i % 4) as f64,
            policy: if i % 5 == 0 {
                Policy::Reject
            } else {
                Policy::Modify
            },
        })
        .collect();
    let started = Instant::now();
    let fleet = Fleet::start(std::slice::from_ref(profile), specs, 64, |_| {}).await?;
    if let Some(metrics) = metrics {
        metrics.watch("fleet", &fleet.clients);
    }
    progress(Progress::Step(&format!(
        "{hehs} HEHs connected in {:.1} s, each with its own TLS connection",
        started.elapsed().as_secs_f64()
    )));
    let deadline = Instant::now() + Duration::from_secs(30);
    while vpp.online().len() < hehs && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress(Progress::Step(&format!(
        "the VPP sees {}/{hehs} HEHs online; asking each for a report of total.p every 5 s",
        vpp.online().len()
    )));
    vpp.request_periodic_reports(5.0, 1.0)?;

    let traffic = Instant::now();
    let mut last = 0;
    while traffic.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let reports = vpp.reports();
        let second = traffic.elapsed().as_secs();
        let line = format!(
            "t={second:>3}s  online {}/{hehs}  reports {reports} (+{} in the last second, {:.1}/s on average)",
            vpp.online().len(),
            reports - last,
            reports as f64 / traffic.elapsed().as_secs_f64()
        );
        progress(Progress::Tick {
            second,
            line: &line,
        });
        last = reports;
    }

    // A campaign for half the fleet's capacity, dispatched before capacities are known (3 kW
    // assumed each), so rejections and counter-proposals force re-dispatch.
    let total: f64 = (0..hehs).map(|i| 1.0 + (i % 4) as f64).sum();
    let campaign = vpp
        .campaign((total / 2.0).floor(), Duration::from_secs(5), 3.0)
        .await;
    progress(Progress::Step(&format!(
        "campaign: {:.0} of {:.0} kW in {:.3} s ({} orders, {} rejected, {} counter-proposals, {} rounds)",
        campaign.achieved_kw,
        campaign.target_kw,
        campaign.seconds,
        campaign.orders,
        campaign.rejected,
        campaign.modified,
        campaign.rounds
    )));

    let market = market(profile).await?;
    if let Some(metrics) = metrics {
        market.watch(metrics);
    }
    let market_day = market.run_day().await;
    progress(Progress::Step(&format!(
        "market: {} bids acknowledged, {} accepted, market_cleared seen by {} BSPs, {} activated; balancing: {} activated, {} unachievable; {} unanswered",
        market_day.bids_acknowledged,
        market_day.bids_accepted,
        market_day.cleared_seen,
        market_day.bids_activated,
        market_day.balancing_activated,
        market_day.balancing_unachievable,
        market_day.unanswered
    )));

    let heh_counters: Vec<_> = fleet.clients.iter().map(|c| c.counters()).collect();
    let everyone = heh_counters.iter().copied().chain([
        vpp.client.counters(),
        market.tso.counters(),
        market.super_tso.counters(),
    ]);
    let summary = Summary {
        hehs,
        hehs_online: vpp.online().len(),
        seconds: traffic.elapsed().as_secs_f64(),
        reports_received: vpp.reports(),
        campaign,
        market: market_day,
        heh_messages_confirmed: heh_counters.iter().map(|c| c.confirmed).sum(),
        quarantined: everyone.map(|c| c.quarantined).sum(),
    };
    // Stop the periodic reports, then close everything cleanly.
    let _ = vpp.stop_periodic_reports();
    vpp.client.close(Duration::from_secs(5)).await;
    fleet.close(Duration::from_secs(5)).await;
    for c in market
        .bsps
        .iter()
        .chain([&market.tso, &market.super_tso, &market.other_tso])
    {
        c.close(Duration::from_secs(2)).await;
    }
    Ok(summary)
}
