//! The three performance figures of D3.2.3 2.1, one call each, on a broker made ready by
//! [`super::prepare`]: what `ebadge bench ingest|activations|heh` runs. Each says what it does
//! through `note` (one line at a time) and returns its figures, which serialize to the
//! documented `--json` objects and print as one summary line each.

use super::burst::{self, ActivationReport, BurstWatch, FleetPlacement, VppPlayer};
use super::children::Program;
use super::footprint::{self, HehReport};
use super::ingest::{self, ConsumerReport};
use super::measure::Roles;
use super::{BenchError, bench_vpp};
use crate::fleet::FleetError;
use crate::local_bus::LocalBus;
use ebadge_admin::mgmt::{ApiError, admin_client};
use ebadge_admin::profile::Management;
use ebadge_bus::conventions::inbox_queue;
use serde::Serialize;
use std::fmt;
use std::time::{Duration, Instant};

/// One pass of `ingest`.
#[derive(Debug, Clone, Serialize)]
pub struct IngestRun {
    /// What the consuming VPP measured.
    pub consumer: ConsumerReport,
    /// Seconds until the last publisher was done.
    pub publish_seconds: f64,
}

/// `ingest`: our client, then raw amqprs (the ceiling), with the same publishers.
#[derive(Debug, Clone, Serialize)]
pub struct IngestFigures {
    /// Publishers.
    pub hehs: usize,
    /// Messages per pass.
    pub messages: u64,
    /// Through our client.
    pub ebadge: IngestRun,
    /// Through raw amqprs.
    pub raw_amqprs: IngestRun,
    /// Our rate / the raw rate.
    pub ratio_to_ceiling: f64,
}

/// `ingest`: `hehs` publishers (own TLS connections) send `messages` in all (at `rate` a
/// second, or flat out) to a VPP consuming in its own process, first through our client, then
/// through raw amqprs.
pub async fn ingest(
    program: &Program,
    ready: &LocalBus,
    hehs: usize,
    messages: u64,
    rate: Option<f64>,
    note: impl Fn(&str),
) -> Result<IngestFigures, BenchError> {
    let per_heh = messages.div_ceil(hehs.max(1) as u64);
    let total = per_heh * hehs as u64;
    let mut runs = Vec::new();
    for raw in [false, true] {
        purge_vpp_inbox(&ready.management).await?;
        let mode = if raw {
            "raw amqprs (ceiling)"
        } else {
            "ebadge"
        };
        note(&format!(
            "ingest through {mode}: {hehs} publishers × {per_heh} reports"
        ));
        let consumer = program.consumer(&ready.profile_path, total, raw).await?;
        let publish_seconds = ingest::publish(&ready.profile, hehs, per_heh, raw, rate).await?;
        let run = IngestRun {
            consumer: consumer.report().await?,
            publish_seconds,
        };
        note(&format!("  {run}"));
        runs.push(run);
    }
    let raw_amqprs = runs.pop().expect("two runs");
    let ebadge = runs.pop().expect("two runs");
    Ok(IngestFigures {
        hehs,
        messages: total,
        ratio_to_ceiling: ebadge.consumer.msgs_per_s / raw_amqprs.consumer.msgs_per_s.max(1.0),
        ebadge,
        raw_amqprs,
    })
}

/// `activations`: ours, and the raw ceiling when it was asked for.
#[derive(Debug, Clone, Serialize)]
pub struct ActivationFigures {
    /// Connections the VPP (and the raw ceiling) published on.
    pub publish_connections: usize,
    /// Through our client (none with [`ActivationOptions::ours`] off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ActivationReport>,
    /// Through raw amqprs, its fleet placed as ours (here or in fleet processes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_amqprs: Option<ActivationReport>,
    /// The raw time / ours (above 1: ours is faster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_ceiling: Option<f64>,
}

/// How `activations` runs.
#[derive(Debug, Clone)]
pub struct ActivationOptions {
    /// HEHs, each its own TLS connection.
    pub hehs: usize,
    /// Processes the fleet is spread over (1: this one).
    pub processes: usize,
    /// Connections the VPP publishes on ([`ebadge_bus::ClientConfig::publish_connections`]);
    /// the raw ceiling publishes on as many. `None`: 4 on a cluster, 1 on one node.
    pub publish_connections: Option<usize>,
    /// The burst through our client. Off, only the ceiling runs: a local cluster whose file
    /// handles are spent after one burst to 20,000 HEHs cannot take a second fleet, so the
    /// ceiling is measured on a fresh one of its own.
    pub ours: bool,
    /// Then the same burst through raw amqprs, its fleet placed as ours.
    pub ceiling: bool,
    /// Who sends the activations of "ours": our Rust VPP, or an external command (a VPP in
    /// another language or library) against the same fleet.
    pub vpp: VppPlayer,
    /// How long the VPP waits for answers, from the first activate.
    pub wait: Duration,
    /// The longest wait for a quiet broker before the burst
    /// ([`super::measure::wait_until_quiet`]; zero: none).
    pub quiet_wait: Duration,
}

/// `activations`: a fleet of HEHs, and the VPP activates each at once: first activate → last
/// answer; then, with `ceiling`, the same through raw amqprs.
pub async fn activations(
    program: &Program,
    ready: &LocalBus,
    options: ActivationOptions,
    note: impl Fn(&str),
) -> Result<ActivationFigures, BenchError> {
    let ActivationOptions {
        hehs,
        publish_connections,
        ours,
        ceiling,
        ..
    } = options.clone();
    // A local cluster lists its nodes; one node lists none.
    let publish_connections = publish_connections.unwrap_or_else(|| {
        ebadge_bus::ClientConfig::burst_publish_connections(ready.node_urls().len())
    });
    let mut figures = ActivationFigures {
        publish_connections,
        report: None,
        raw_amqprs: None,
        ratio_to_ceiling: None,
    };
    if ours {
        let report = fleet_burst(
            program,
            ready,
            &options,
            publish_connections,
            Subject::Ours,
            &note,
        )
        .await?;
        note(&report.to_string());
        figures.report = Some(report);
    }
    if ceiling {
        if ours {
            note("waiting for the broker to close our fleet's connections …");
            let left =
                wait_until_no_connections(&ready.management, Duration::from_secs(120)).await?;
            if left > 0 {
                note(&format!(
                    "{left} connections still open after 120 s; going on"
                ));
            }
            check_room_for_ceiling(ready, hehs).await?;
        }
        let raw = fleet_burst(
            program,
            ready,
            &options,
            publish_connections,
            Subject::Raw,
            &note,
        )
        .await?;
        note(&format!("raw amqprs: {raw}"));
        if let Some(report) = &figures.report {
            let ratio = raw.seconds / report.seconds.max(f64::EPSILON);
            note(&format!("ours / ceiling: {ratio:.2}"));
            figures.ratio_to_ceiling = Some(ratio);
        }
        figures.raw_amqprs = Some(raw);
    }
    Ok(figures)
}

/// Refuses the ceiling when a node has no room left for its share of the raw fleet: after our
/// burst every classic inbox keeps two file handles reserved, and a node past its limit never
/// answers a new connection (the fleet would wait out its patience, then fail).
async fn check_room_for_ceiling(ready: &LocalBus, hehs: usize) -> Result<(), BenchError> {
    let per_node = hehs.div_ceil(ready.node_urls().len().max(1)) as u64;
    let api = ebadge_admin::mgmt::RawApi::new(&ready.management);
    let short: Vec<String> = ebadge_admin::audit::handles::read_node_handles(&api)
        .await?
        .into_iter()
        .filter(|n| n.free() < per_node)
        .map(|n| {
            format!(
                "node {} has {} of its {} file handles left ({} reserved by classic queues, {} by quorum queues)",
                n.node,
                n.free(),
                n.limit,
                n.classic,
                n.quorum
            )
        })
        .collect();
    if short.is_empty() {
        return Ok(());
    }
    Err(FleetError::Process(format!(
        "no room for the ceiling's {per_node} connections per node after our burst: {}. \
         Measure the ceiling alone on a fresh broker: `ebadge broker up --dir NEW --nodes N` \
         and `ebadge bench activations --dir NEW … --ceiling-only`",
        short.join("; ")
    ))
    .into())
}

/// Which client a burst runs through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// Ours: the VPP and the HEHs on `ebadge_bus`.
    Ours,
    /// Raw amqprs: the ceiling ([`super::ceiling`]).
    Raw,
}

/// One burst through `subject`, its fleet here or in `options.processes` fleet processes.
async fn fleet_burst(
    program: &Program,
    ready: &LocalBus,
    options: &ActivationOptions,
    publish_connections: usize,
    subject: Subject,
    note: &impl Fn(&str),
) -> Result<ActivationReport, BenchError> {
    let &ActivationOptions {
        hehs, processes, ..
    } = options;
    purge_vpp_inbox(&ready.management).await?;
    note(&match subject {
        Subject::Ours => format!(
            "connecting {hehs} HEHs, each with its own TLS connection, in {processes} process(es) …"
        ),
        Subject::Raw => {
            format!("the same through raw amqprs (ceiling): connecting {hehs} raw HEHs …")
        }
    });
    let mut watch = BurstWatch {
        wait: options.wait,
        quiet_wait: options.quiet_wait,
        roles: Roles {
            broker: ready.node_pids(),
            fleet: Vec::new(),
            vpp: vec![std::process::id()],
        },
    };
    if processes <= 1 {
        let placement = FleetPlacement::<std::future::Ready<_>>::InProcess(progress());
        return Ok(run_burst(
            ready,
            hehs,
            publish_connections,
            placement,
            (subject, &options.vpp, &watch),
            note,
        )
        .await?);
    }
    let raw = subject == Subject::Raw;
    let mut fleets = program.fleets(
        &ready.profile_path,
        hehs,
        processes,
        &ready.node_urls(),
        raw,
    )?;
    watch.roles.fleet = fleets.pids();
    let placement = FleetPlacement::External(fleets.ready());
    let report = run_burst(
        ready,
        hehs,
        publish_connections,
        placement,
        (subject, &options.vpp, &watch),
        note,
    )
    .await;
    fleets.stop().await;
    Ok(report?)
}

/// The burst itself, once the fleet is placed.
async fn run_burst<F>(
    ready: &LocalBus,
    hehs: usize,
    publish_connections: usize,
    placement: FleetPlacement<F>,
    (subject, vpp, watch): (Subject, &VppPlayer, &BurstWatch),
    note: &impl Fn(&str),
) -> Result<ActivationReport, FleetError>
where
    F: std::future::Future<Output = Result<f64, FleetError>>,
{
    match subject {
        Subject::Ours => {
            let at = burst::BurstProfile {
                profile: &ready.profile,
                path: &ready.profile_path,
            };
            burst::burst(at, hehs, publish_connections, placement, (vpp, watch), note).await
        }
        Subject::Raw => {
            super::ceiling::burst(
                &ready.profile,
                hehs,
                publish_connections,
                placement,
                watch,
                note,
            )
            .await
        }
    }
}

/// Progress of a fleet connecting in this process, every thousand HEHs.
fn progress() -> Box<dyn Fn(usize) + Send + Sync> {
    Box::new(|n| {
        if n % 1000 == 0 {
            eprintln!("  {n} connected");
        }
    })
}

/// `heh`: one HEH sending `rate` reports a second for `seconds`, in its own process, through
/// a proxy that counts the bytes on the wire.
pub async fn heh(
    program: &Program,
    ready: &LocalBus,
    seconds: u64,
    rate: u64,
    subject: &HehSubject,
    note: impl Fn(&str),
) -> Result<HehReport, BenchError> {
    purge_vpp_inbox(&ready.management).await?;
    note(&format!(
        "one HEH ({subject}, its own process), {rate} reports/s for {seconds} s, through a byte-counting proxy …"
    ));
    let io = |e: std::io::Error| FleetError::Process(format!("the proxy: {e}"));
    let (_, port) = ready.profile.host_and_port().map_err(FleetError::Process)?;
    let proxy = crate::proxy::Proxy::start(([127, 0, 0, 1], port).into())
        .await
        .map_err(io)?;
    let dir = tempfile::tempdir().map_err(io)?;
    let mut via = ready.profile.clone();
    via.amqps_url = format!("amqps://localhost:{}", proxy.addr.port());
    let via_path = dir.path().join("profile.toml");
    via.save(&via_path).map_err(io)?;
    let mut report = match subject {
        HehSubject::Library => program.heh(&via_path, seconds, rate).await?,
        HehSubject::Agent(agent) => {
            footprint::agent(agent, &program.0, &via, seconds, rate).await?
        }
        HehSubject::Pika(script) => footprint::pika(script, &via, seconds, rate).await?,
        HehSubject::Command(command) => {
            footprint::command(command, &via_path, seconds, rate).await?
        }
    };
    let n = report.messages.max(1) as f64;
    report.wire_up_bytes_per_msg = proxy.bytes_up() as f64 / n;
    report.wire_down_bytes_per_msg = proxy.bytes_down() as f64 / n;
    purge_vpp_inbox(&ready.management).await?;
    note(&report.to_string());
    Ok(report)
}

impl fmt::Display for IngestRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.consumer;
        write!(
            f,
            "{} received in {:.1} s: {:.0} msgs/s; latency p50 {:.1} ms p99 {:.1} ms; VPP CPU {:.1} µs/msg, RSS {} MiB; publishers done in {:.1} s",
            c.received,
            c.seconds,
            c.msgs_per_s,
            c.latency_ms[0],
            c.latency_ms[2],
            c.cpu_us_per_msg,
            c.rss_kib / 1024,
            self.publish_seconds
        )
    }
}

/// What plays the HEH in [`heh`].
#[derive(Debug, Clone)]
pub enum HehSubject {
    /// The client library in a process of this program (`bench heh-child`).
    Library,
    /// The agent binary at this path, with this program as its device.
    Agent(std::path::PathBuf),
    /// pika, through this script (`scripts/heh-pika.py`).
    Pika(std::path::PathBuf),
    /// This command line, run by `sh -c` ([`footprint::command`]).
    Command(String),
}

impl fmt::Display for HehSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HehSubject::Library => write!(f, "the client library"),
            HehSubject::Agent(path) => write!(f, "the agent {}", path.display()),
            HehSubject::Pika(_) => write!(f, "pika"),
            HehSubject::Command(command) => write!(f, "`{command}`"),
        }
    }
}

/// Empties the benchmark VPP's inbox (left over from an earlier run or the previous figure).
async fn purge_vpp_inbox(management: &Management) -> Result<(), BenchError> {
    admin_client(management)
        .purge_queue("/", &inbox_queue(&bench_vpp()))
        .await
        .map_err(|e| ApiError::new("purging the benchmark inbox", e))?;
    Ok(())
}

/// Waits, up to `patience`, until the broker (every node of it) holds no client connection,
/// and returns how many it still held. The ceiling runs after ours and must not connect while
/// the nodes still tear our fleet down (whose sockets also count against their file limits).
async fn wait_until_no_connections(
    management: &Management,
    patience: Duration,
) -> Result<u64, BenchError> {
    let client = admin_client(management);
    let deadline = Instant::now() + patience;
    loop {
        let overview = client
            .overview()
            .await
            .map_err(|e| ApiError::new("reading the broker's overview", e))?;
        let left = overview.object_totals.connections;
        if left == 0 || Instant::now() >= deadline {
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
