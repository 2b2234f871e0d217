//! `ebadge bench ingest|activations|heh`: the three performance figures of D3.2.3 2.1, measured
//! on the local broker (started if needed), with `--json` for machines.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use ebadge_admin::registry::QueueType;
use ebadge_bus::Profile;
use ebadge_sim::bench;
use ebadge_sim::children::{self, Program};
use serde_json::json;

/// The `bench` subcommands.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// HEH publishers (own connections, confirms) and a VPP process consuming, decoding and
    /// acking; then the same through raw amqprs, the ceiling. Rate, latency, VPP CPU and RSS.
    Ingest {
        /// Publishers, each its own TLS connection.
        #[arg(long, default_value_t = 1000)]
        hehs: usize,
        /// Messages in all.
        #[arg(long, default_value_t = 200_000)]
        messages: u64,
        /// Messages per second in all (paced publishers, for latency at a given load); flat out
        /// when left out (for the sustained rate).
        #[arg(long)]
        rate: Option<f64>,
        #[command(flatten)]
        common: Common,
    },
    /// A fleet of HEHs; the VPP activates each at once: first activate → last answer.
    ///
    /// Example (20,000 HEHs over four processes and the nodes of a local cluster):
    /// ebadge broker up --dir .ebadge-cluster --nodes 3 && ebadge bench activations --dir
    /// .ebadge-cluster --hehs 20000 --processes 4
    Activations {
        /// HEHs, each its own TLS connection.
        #[arg(long, default_value_t = 5000)]
        hehs: usize,
        /// Simulator processes to spread the HEHs over (one process may hold at most its
        /// open-file limit of connections). On a local cluster each process connects straight to
        /// one node, round robin, as haproxy holds at most 9,000 connections under this limit.
        #[arg(long, default_value_t = 1)]
        processes: usize,
        /// The VPP publishes and consumes on one connection (by default it publishes on a
        /// second one, so flow control on the burst does not hold back the answers): for
        /// measuring that difference.
        #[arg(long)]
        one_connection: bool,
        /// Then the same burst through raw amqprs (no validation, no outbox, no matching), in
        /// this process: the ceiling ours is compared with (`ratio_to_ceiling` = its time / ours)
        #[arg(long)]
        ceiling: bool,
        #[command(flatten)]
        common: Common,
    },
    /// One HEH sending reports: CPU, memory, bytes on the wire per message.
    Heh {
        /// Seconds of sending.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Reports per second.
        #[arg(long, default_value_t = 10)]
        rate: u64,
        #[command(flatten)]
        common: Common,
    },
    /// (Used by `heh`: the HEH's side, in its own process.)
    #[command(hide = true)]
    HehChild {
        /// Seconds of sending.
        #[arg(long)]
        seconds: u64,
        /// Reports per second.
        #[arg(long)]
        rate: u64,
        /// Connection profile (pointing at the counting proxy).
        #[arg(long)]
        profile: PathBuf,
    },
    /// (Used by `activations --processes`: part of the fleet, in its own process. Prints
    /// "ready KIB_PER_HEH" once connected, and stops when its standard input closes.)
    #[command(hide = true)]
    FleetChild {
        /// Index of the first HEH.
        #[arg(long)]
        first: usize,
        /// How many.
        #[arg(long)]
        count: usize,
        /// Connection profile.
        #[arg(long)]
        profile: PathBuf,
        /// Connect here instead of the profile's address.
        #[arg(long)]
        url: Option<String>,
    },
    /// (Used by `ingest`: the VPP's side, in its own process.)
    #[command(hide = true)]
    Consume {
        /// Messages to wait for.
        #[arg(long)]
        count: u64,
        /// Raw amqprs instead of our client.
        #[arg(long)]
        raw: bool,
        /// Connection profile.
        #[arg(long)]
        profile: PathBuf,
    },
}

fn parse_queue_type(text: &str) -> Result<QueueType, String> {
    text.parse()
}

/// Options of every benchmark.
#[derive(Args)]
pub struct Common {
    /// Broker directory (started if not running).
    #[arg(long, default_value = super::broker::DEFAULT_DIR)]
    pub dir: PathBuf,
    /// One JSON object with the results.
    #[arg(long)]
    pub json: bool,
    /// Queue type of the benchmark's inboxes: auto (on a cluster the VPP's inbox is a quorum
    /// queue and the HEHs' are classic), classic or quorum. Quorum HEH inboxes cost each node
    /// file-handle reservations: past 20,000 a node stops answering new connections (see the
    /// operator guide, "Queue types on a cluster").
    #[arg(long, default_value = "auto", value_parser = parse_queue_type)]
    pub queue_type: QueueType,
}

/// Runs a `bench` subcommand.
pub async fn run(command: BenchCommand) -> Result<ExitCode> {
    super::raise_open_file_limit();
    match command {
        BenchCommand::HehChild { .. } => unreachable!("run on its own small runtime by main"),
        BenchCommand::Consume {
            count,
            raw,
            profile,
        } => {
            let report = children::consumer_child(&Profile::load(&profile)?, count, raw).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        BenchCommand::FleetChild {
            first,
            count,
            profile,
            url,
        } => children::fleet_child(&Profile::load(&profile)?, first, count, url).await?,
        BenchCommand::Ingest {
            hehs,
            messages,
            rate,
            common,
        } => ingest(&common, hehs, messages, rate).await?,
        BenchCommand::Activations {
            hehs,
            processes,
            one_connection,
            ceiling,
            common,
        } => activations(&common, hehs, processes, one_connection, ceiling).await?,
        BenchCommand::Heh {
            seconds,
            rate,
            common,
        } => heh(&common, seconds, rate).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn ingest(common: &Common, hehs: usize, messages: u64, rate: Option<f64>) -> Result<()> {
    let ready = prepare(common, hehs).await?;
    let per_heh = messages.div_ceil(hehs as u64);
    let total = per_heh * hehs as u64;
    let mut results = Vec::new();
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
        let consumer = Program::current()?
            .consumer(&ready.profile_path, total, raw)
            .await?;
        let publish_seconds = bench::publish(&ready.profile, hehs, per_heh, raw, rate).await?;
        let report = consumer.report().await?;
        note(&format!(
            "  {} received in {:.1} s: {:.0} msgs/s; latency p50 {:.1} ms p99 {:.1} ms; VPP CPU {:.1} µs/msg, RSS {} MiB; publishers done in {:.1} s",
            report.received,
            report.seconds,
            report.msgs_per_s,
            report.latency_ms[0],
            report.latency_ms[2],
            report.cpu_us_per_msg,
            report.rss_kib / 1024,
            publish_seconds
        ));
        results.push(json!({"consumer": report, "publish_seconds": publish_seconds}));
    }
    let ratio = results[0]["consumer"]["msgs_per_s"].as_f64().unwrap_or(0.0)
        / results[1]["consumer"]["msgs_per_s"]
            .as_f64()
            .unwrap_or(1.0)
            .max(1.0);
    note(&format!("ebadge / raw ceiling: {ratio:.2}"));
    emit(
        common,
        json!({"bench": "ingest", "hehs": hehs, "messages": total, "ebadge": results[0], "raw_amqprs": results[1], "ratio_to_ceiling": ratio}),
    );
    Ok(())
}

async fn activations(
    common: &Common,
    hehs: usize,
    processes: usize,
    one_connection: bool,
    ceiling: bool,
) -> Result<()> {
    anyhow::ensure!(
        !ceiling || processes <= 1,
        "--ceiling runs its raw fleet in this process: use --processes 1"
    );
    let ready = prepare(common, hehs).await?;
    bench::purge_vpp_inbox(&ready.management).await?;
    note(&format!(
        "connecting {hehs} HEHs, each with its own TLS connection, in {processes} process(es) …"
    ));
    let report = if processes <= 1 {
        let progress = Box::new(|n| {
            if n % 1000 == 0 {
                eprintln!("  {n} connected");
            }
        });
        bench::activations(
            &ready.profile,
            hehs,
            !one_connection,
            bench::FleetPlacement::<std::future::Ready<_>>::InProcess(progress),
        )
        .await?
    } else {
        let mut fleets =
            Program::current()?.fleets(&ready.profile_path, hehs, processes, &ready.node_urls)?;
        let report = bench::activations(
            &ready.profile,
            hehs,
            !one_connection,
            bench::FleetPlacement::External(fleets.ready()),
        )
        .await;
        fleets.stop().await;
        report?
    };
    note(&format!(
        "{} activations: {} answered, first sent → last answer {:.3} s; round trip p50 {:.1} ms p99 {:.1} ms; {:.0} KiB per HEH connection",
        report.sent,
        report.answered,
        report.seconds,
        report.round_trip_ms[0],
        report.round_trip_ms[2],
        report.kib_per_heh
    ));
    let mut result = json!({"bench": "activations", "report": report});
    if ceiling {
        bench::purge_vpp_inbox(&ready.management).await?;
        note(&format!(
            "the same through raw amqprs (ceiling): connecting {hehs} raw HEHs …"
        ));
        let raw = ebadge_sim::ceiling::raw_activations(&ready.profile, hehs).await?;
        let ratio = raw.seconds / report.seconds.max(f64::EPSILON);
        note(&format!(
            "raw amqprs: {} answered, first sent → last answer {:.3} s; round trip p50 {:.1} ms p99 {:.1} ms; ours / ceiling: {ratio:.2}",
            raw.answered, raw.seconds, raw.round_trip_ms[0], raw.round_trip_ms[2]
        ));
        result["raw_amqprs"] = serde_json::to_value(&raw)?;
        result["ratio_to_ceiling"] = json!(ratio);
    }
    emit(common, result);
    Ok(())
}

async fn heh(common: &Common, seconds: u64, rate: u64) -> Result<()> {
    let ready = prepare(common, 1).await?;
    bench::purge_vpp_inbox(&ready.management).await?;
    note(&format!(
        "one HEH (its own process), {rate} reports/s for {seconds} s, through a byte-counting proxy …"
    ));
    let (_, port) = ready.profile.host_and_port().map_err(anyhow::Error::msg)?;
    let proxy = ebadge_sim::proxy::Proxy::start(([127, 0, 0, 1], port).into()).await?;
    let dir = tempfile::tempdir()?;
    let mut via = ready.profile.clone();
    via.amqps_url = format!("amqps://localhost:{}", proxy.addr.port());
    let via_path = dir.path().join("profile.toml");
    via.save(&via_path)?;
    let mut report = Program::current()?.heh(&via_path, seconds, rate).await?;
    let n = report.messages.max(1) as f64;
    report.wire_up_bytes_per_msg = proxy.bytes_up() as f64 / n;
    report.wire_down_bytes_per_msg = proxy.bytes_down() as f64 / n;
    bench::purge_vpp_inbox(&ready.management).await?;
    note(&format!(
        "{} reports: CPU {:.3} s ({:.3} % of a core, {:.0} µs/msg), RSS {:.1} MiB, body {} B, wire up {:.0} B/msg, down {:.0} B/msg",
        report.messages,
        report.cpu_seconds,
        report.cpu_percent,
        report.cpu_us_per_msg,
        report.rss_kib as f64 / 1024.0,
        report.body_bytes,
        report.wire_up_bytes_per_msg,
        report.wire_down_bytes_per_msg
    ));
    emit(common, json!({"bench": "heh", "report": report}));
    Ok(())
}

/// Starts the broker and adds the benchmark registry, with progress on stderr.
async fn prepare(common: &Common, hehs: usize) -> Result<bench::Prepared> {
    let ready = bench::prepare(
        &common.dir,
        hehs,
        common.queue_type,
        super::provisioning_progress(),
    )
    .await?;
    if ready.provisioned > 0 {
        note(&format!(
            "provisioned the benchmark registry: {} items",
            ready.provisioned
        ));
    }
    Ok(ready)
}

/// The HEH side of `bench heh`, on a current-thread runtime as small firmware would run it.
pub fn heh_child(seconds: u64, rate: u64, profile: &std::path::Path) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let profile = Profile::load(profile)?;
    let report = runtime.block_on(bench::heh(&profile, seconds, rate))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// Progress goes to stderr always; with --json stdout carries only the result.
fn note(line: &str) {
    eprintln!("{line}");
}

fn emit(common: &Common, value: serde_json::Value) {
    if common.json {
        println!("{value}");
    }
}
