//! The three performance figures of D3.2.3 2.1, one call each, on a broker made ready by
//! [`bench::prepare`]: what `ebadge bench ingest|activations|heh` runs. Each says what it does
//! through `note` (one line at a time) and returns its figures, which serialize to the
//! documented `--json` objects and print as one summary line each.

use crate::bench::{self, ActivationReport, BenchError, ConsumerReport, HehReport, Prepared};
use crate::children::Program;
use crate::measure::Roles;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

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
    ready: &Prepared,
    hehs: usize,
    messages: u64,
    rate: Option<f64>,
    note: impl Fn(&str),
) -> Result<IngestFigures, BenchError> {
    let per_heh = messages.div_ceil(hehs.max(1) as u64);
    let total = per_heh * hehs as u64;
    let mut runs = Vec::new();
    for raw in [false, true] {
        bench::purge_vpp_inbox(&ready.management).await?;
        let mode = if raw {
            "raw amqprs (ceiling)"
        } else {
            "ebadge"
        };
        note(&format!(
            "ingest through {mode}: {hehs} publishers × {per_heh} reports"
        ));
        let consumer = program.consumer(&ready.profile_path, total, raw).await?;
        let publish_seconds = bench::publish(&ready.profile, hehs, per_heh, raw, rate).await?;
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
    pub vpp: bench::VppPlayer,
    /// How long the VPP waits for answers, from the first activate.
    pub wait: Duration,
    /// The longest wait for a quiet broker before the burst
    /// ([`crate::measure::wait_until_quiet`]; zero: none).
    pub quiet_wait: Duration,
}

/// `activations`: a fleet of HEHs, and the VPP activates each at once: first activate → last
/// answer; then, with `ceiling`, the same through raw amqprs.
pub async fn activations(
    program: &Program,
    ready: &Prepared,
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
        ebadge_bus::ClientConfig::burst_publish_connections(ready.node_urls.len())
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
                bench::wait_until_no_connections(&ready.management, Duration::from_secs(120))
                    .await?;
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
async fn check_room_for_ceiling(ready: &Prepared, hehs: usize) -> Result<(), BenchError> {
    let per_node = hehs.div_ceil(ready.node_urls.len().max(1)) as u64;
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
    Err(crate::fleet::FleetError::Process(format!(
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
    /// Raw amqprs: the ceiling ([`crate::ceiling`]).
    Raw,
}

/// One burst through `subject`, its fleet here or in `options.processes` fleet processes.
async fn fleet_burst(
    program: &Program,
    ready: &Prepared,
    options: &ActivationOptions,
    publish_connections: usize,
    subject: Subject,
    note: &impl Fn(&str),
) -> Result<ActivationReport, BenchError> {
    let &ActivationOptions {
        hehs, processes, ..
    } = options;
    bench::purge_vpp_inbox(&ready.management).await?;
    note(&match subject {
        Subject::Ours => format!(
            "connecting {hehs} HEHs, each with its own TLS connection, in {processes} process(es) …"
        ),
        Subject::Raw => {
            format!("the same through raw amqprs (ceiling): connecting {hehs} raw HEHs …")
        }
    });
    let mut watch = bench::BurstWatch {
        wait: options.wait,
        quiet_wait: options.quiet_wait,
        roles: Roles {
            broker: ready.node_pids.clone(),
            fleet: Vec::new(),
            vpp: vec![std::process::id()],
        },
    };
    if processes <= 1 {
        let placement = bench::FleetPlacement::<std::future::Ready<_>>::InProcess(progress());
        return Ok(burst(
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
    let mut fleets = program.fleets(&ready.profile_path, hehs, processes, &ready.node_urls, raw)?;
    watch.roles.fleet = fleets.pids();
    let placement = bench::FleetPlacement::External(fleets.ready());
    let report = burst(
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
async fn burst<F>(
    ready: &Prepared,
    hehs: usize,
    publish_connections: usize,
    placement: bench::FleetPlacement<F>,
    (subject, vpp, watch): (Subject, &bench::VppPlayer, &bench::BurstWatch),
    note: &impl Fn(&str),
) -> Result<ActivationReport, crate::fleet::FleetError>
where
    F: std::future::Future<Output = Result<f64, crate::fleet::FleetError>>,
{
    match subject {
        Subject::Ours => {
            let at = bench::BurstProfile {
                profile: &ready.profile,
                path: &ready.profile_path,
            };
            bench::activations(at, hehs, publish_connections, placement, (vpp, watch), note).await
        }
        Subject::Raw => {
            crate::ceiling::raw_activations(
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
    ready: &Prepared,
    seconds: u64,
    rate: u64,
    subject: &HehSubject,
    note: impl Fn(&str),
) -> Result<HehReport, BenchError> {
    bench::purge_vpp_inbox(&ready.management).await?;
    note(&format!(
        "one HEH ({subject}, its own process), {rate} reports/s for {seconds} s, through a byte-counting proxy …"
    ));
    let io = |e: std::io::Error| crate::fleet::FleetError::Process(format!("the proxy: {e}"));
    let (_, port) = ready
        .profile
        .host_and_port()
        .map_err(crate::fleet::FleetError::Process)?;
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
            crate::footprint::agent(agent, &program.0, &via, seconds, rate).await?
        }
        HehSubject::Pika(script) => crate::footprint::pika(script, &via, seconds, rate).await?,
        HehSubject::Command(command) => {
            crate::footprint::command(command, &via_path, seconds, rate).await?
        }
    };
    let n = report.messages.max(1) as f64;
    report.wire_up_bytes_per_msg = proxy.bytes_up() as f64 / n;
    report.wire_down_bytes_per_msg = proxy.bytes_down() as f64 / n;
    bench::purge_vpp_inbox(&ready.management).await?;
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

impl fmt::Display for ActivationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} activations: {} answered within {:.0} s",
            self.sent, self.answered, self.wait_seconds,
        )?;
        match self.last_answer_seconds {
            Some(last) => write!(f, ", first sent → last answer {last:.3} s")?,
            None => write!(f, ", none answered")?,
        }
        if let Some(confirmed) = self.confirmed_seconds {
            write!(f, " (all taken in by the broker at {confirmed:.3} s)")?;
        }
        write!(
            f,
            "; round trip p50 {:.1} ms p99 {:.1} ms; {:.0} KiB per HEH connection",
            self.round_trip_ms[0], self.round_trip_ms[2], self.kib_per_heh
        )?;
        if let Some(cpu) = &self.cpu {
            write!(f, "; {cpu}")?;
        }
        if let Some(quiet) = &self.quiet {
            write!(f, "; {quiet}")?;
        }
        Ok(())
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
    /// This command line, run by `sh -c` ([`crate::footprint::command`]).
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

impl fmt::Display for HehReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} reports: CPU {:.3} s ({:.3} % of a core, {:.0} µs/msg), RSS {:.1} MiB, body {} B, wire up {:.0} B/msg, down {:.0} B/msg",
            self.messages,
            self.cpu_seconds,
            self.cpu_percent,
            self.cpu_us_per_msg,
            self.rss_kib as f64 / 1024.0,
            self.body_bytes,
            self.wire_up_bytes_per_msg,
            self.wire_down_bytes_per_msg
        )
    }
}
