//! `ebadge bench ingest|activations|heh`: the three performance figures of D3.2.3 2.1, measured
//! on the local broker (started if needed), with `--json` for machines.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ebadge_admin::broker::LocalBroker;
use ebadge_admin::mgmt::admin_client;
use ebadge_admin::registry::QueueType;
use ebadge_bus::Profile;
use ebadge_sim::bench::{self, BENCH_VPP, ConsumerReport};
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
            let profile = Profile::load(&profile)?;
            let report = bench::consume(&profile, count, raw, || println!("ready")).await;
            println!("{}", serde_json::to_string(&report)?);
        }
        BenchCommand::Ingest {
            hehs,
            messages,
            rate,
            common,
        } => {
            let (profile, path) = prepare(&common, hehs).await?;
            let per_heh = messages.div_ceil(hehs as u64);
            let total = per_heh * hehs as u64;
            let mut results = Vec::new();
            for raw in [false, true] {
                purge_inbox(&common.dir).await?;
                let mode = if raw {
                    "raw amqprs (ceiling)"
                } else {
                    "ebadge"
                };
                note(&format!(
                    "ingest through {mode}: {hehs} publishers × {per_heh} reports"
                ));
                let mut child = Command::new(std::env::current_exe()?)
                    .args([
                        "bench",
                        "consume",
                        "--count",
                        &total.to_string(),
                        "--profile",
                    ])
                    .arg(&path)
                    .args(raw.then_some("--raw"))
                    .stdout(Stdio::piped())
                    .spawn()
                    .context("starting the consumer process")?;
                let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
                if lines.next().transpose()?.as_deref() != Some("ready") {
                    bail!("the consumer process did not start");
                }
                let publish_seconds = bench::publish(&profile, hehs, per_heh, raw, rate).await;
                let report: ConsumerReport = serde_json::from_str(
                    &lines.next().transpose()?.context("the consumer's report")?,
                )?;
                child.wait()?;
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
                &common,
                json!({"bench": "ingest", "hehs": hehs, "messages": total, "ebadge": results[0], "raw_amqprs": results[1], "ratio_to_ceiling": ratio}),
            );
        }
        BenchCommand::FleetChild {
            first,
            count,
            profile,
            url,
        } => {
            let mut profile = Profile::load(&profile)?;
            if let Some(url) = url {
                profile.amqps_url = url;
            }
            let rss0 = ebadge_sim::measure::rss_kib();
            let fleet = bench::activation_fleet(&profile, first, count, move |n| {
                if n % 1000 == 0 {
                    eprintln!("  HEHs {first}..: {n} connected");
                }
            })
            .await?;
            let kib = ebadge_sim::measure::rss_kib().saturating_sub(rss0) as f64 / count as f64;
            println!("ready {kib}");
            // Stay connected until the parent closes our standard input.
            let _ = tokio::task::spawn_blocking(|| {
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())
            })
            .await;
            fleet.close(std::time::Duration::from_secs(5)).await;
        }
        BenchCommand::Activations {
            hehs,
            processes,
            one_connection,
            ceiling,
            common,
        } => {
            anyhow::ensure!(
                !ceiling || processes <= 1,
                "--ceiling runs its raw fleet in this process: use --processes 1"
            );
            let (profile, path) = prepare(&common, hehs).await?;
            purge_inbox(&common.dir).await?;
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
                    &profile,
                    hehs,
                    !one_connection,
                    bench::FleetPlacement::<std::future::Ready<_>>::InProcess(progress),
                )
                .await?
            } else {
                let mut children = spawn_fleet(&common, &path, hehs, processes)?;
                let ready = wait_until_ready(&mut children);
                let report = bench::activations(
                    &profile,
                    hehs,
                    !one_connection,
                    bench::FleetPlacement::External(ready),
                )
                .await;
                for (mut child, _) in children {
                    drop(child.stdin.take());
                    let _ = child.wait().await;
                }
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
                purge_inbox(&common.dir).await?;
                note(&format!(
                    "the same through raw amqprs (ceiling): connecting {hehs} raw HEHs …"
                ));
                let raw = ebadge_sim::ceiling::raw_activations(&profile, hehs).await?;
                let ratio = raw.seconds / report.seconds.max(f64::EPSILON);
                note(&format!(
                    "raw amqprs: {} answered, first sent → last answer {:.3} s; round trip p50 {:.1} ms p99 {:.1} ms; ours / ceiling: {ratio:.2}",
                    raw.answered, raw.seconds, raw.round_trip_ms[0], raw.round_trip_ms[2]
                ));
                result["raw_amqprs"] = serde_json::to_value(&raw)?;
                result["ratio_to_ceiling"] = json!(ratio);
            }
            emit(&common, result);
        }
        BenchCommand::Heh {
            seconds,
            rate,
            common,
        } => {
            let (profile, _) = prepare(&common, 1).await?;
            purge_inbox(&common.dir).await?;
            note(&format!(
                "one HEH (its own process), {rate} reports/s for {seconds} s, through a byte-counting proxy …"
            ));
            let (_, port) = profile.host_and_port().map_err(anyhow::Error::msg)?;
            let proxy = ebadge_sim::proxy::Proxy::start(([127, 0, 0, 1], port).into()).await?;
            let dir = std::env::temp_dir().join(format!("ebadge-bench-heh-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let mut via = profile.clone();
            via.amqps_url = format!("amqps://localhost:{}", proxy.addr.port());
            let via_path = dir.join("profile.toml");
            via.save(&via_path)?;
            let output = tokio::process::Command::new(std::env::current_exe()?)
                .args([
                    "bench",
                    "heh-child",
                    "--seconds",
                    &seconds.to_string(),
                    "--rate",
                    &rate.to_string(),
                    "--profile",
                ])
                .arg(&via_path)
                .output()
                .await?;
            let _ = std::fs::remove_dir_all(&dir);
            if !output.status.success() {
                bail!(
                    "the HEH process failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            let mut report: bench::HehReport = serde_json::from_slice(&output.stdout)?;
            let n = report.messages.max(1) as f64;
            report.wire_up_bytes_per_msg = proxy.bytes_up() as f64 / n;
            report.wire_down_bytes_per_msg = proxy.bytes_down() as f64 / n;
            purge_inbox(&common.dir).await?;
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
            emit(&common, json!({"bench": "heh", "report": report}));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A fleet process and the lines it prints.
type FleetChild = (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
);

/// Starts `processes` fleet processes for HEHs `0..hehs`; on a local cluster each connects
/// straight to one node (round robin).
fn spawn_fleet(
    common: &Common,
    profile_path: &std::path::Path,
    hehs: usize,
    processes: usize,
) -> Result<Vec<FleetChild>> {
    use tokio::io::AsyncBufReadExt;
    let nodes: Vec<String> = LocalBroker::new(&common.dir)
        .status()
        .map(|s| s.nodes.into_iter().map(|n| n.amqps_url).collect())
        .unwrap_or_default();
    let per = hehs.div_ceil(processes);
    let mut children = Vec::new();
    for i in 0..processes {
        let first = i * per;
        let count = per.min(hehs.saturating_sub(first));
        if count == 0 {
            break;
        }
        let mut command = tokio::process::Command::new(std::env::current_exe()?);
        command
            .args(["bench", "fleet-child", "--first", &first.to_string()])
            .args(["--count", &count.to_string(), "--profile"])
            .arg(profile_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if nodes.len() > 1 {
            command.args(["--url", &nodes[i % nodes.len()]]);
        }
        let mut child = command.spawn().context("starting a fleet process")?;
        let lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
        children.push((child, lines));
    }
    Ok(children)
}

/// Resolves when every fleet process says "ready", with their mean KiB per HEH connection.
async fn wait_until_ready(
    children: &mut [FleetChild],
) -> Result<f64, ebadge_sim::fleet::FleetError> {
    let mut kib = Vec::new();
    for (i, (_, lines)) in children.iter_mut().enumerate() {
        match lines.next_line().await {
            Ok(Some(line)) if line.starts_with("ready ") => {
                kib.push(line[6..].trim().parse::<f64>().unwrap_or(0.0));
            }
            other => {
                return Err(ebadge_sim::fleet::FleetError::Process(format!(
                    "fleet process {i} stopped before its HEHs were connected ({other:?}); its error is above"
                )));
            }
        }
    }
    Ok(kib.iter().sum::<f64>() / kib.len().max(1) as f64)
}

/// Starts the broker, provisions the benchmark registry (additively) and issues certificates.
async fn prepare(common: &Common, hehs: usize) -> Result<(Profile, PathBuf)> {
    let registry = bench::registry(hehs, common.queue_type).build()?;
    let ebadge_admin::local::Provisioned { profile, plan, .. } =
        super::provision_local(&common.dir, &registry).await?;
    if !plan.is_empty() {
        note(&format!(
            "provisioned the benchmark registry: {} items",
            plan.add.len() + plan.change.len()
        ));
    }
    let path = LocalBroker::new(&common.dir).profile_path();
    Ok((profile, path))
}

/// Empties the benchmark VPP's inbox of the broker in `dir` (left over from an earlier run).
async fn purge_inbox(dir: &std::path::Path) -> Result<()> {
    let m = LocalBroker::new(dir).management()?;
    let vpp = ebadge_bus::conventions::EntityName::new(BENCH_VPP)?;
    admin_client(&m)
        .purge_queue("/", &ebadge_bus::conventions::inbox_queue(&vpp))
        .await
        .context("purging the benchmark inbox")?;
    Ok(())
}

/// The HEH side of `bench heh`, on a current-thread runtime as small firmware would run it.
pub fn heh_child(seconds: u64, rate: u64, profile: &std::path::Path) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let profile = Profile::load(profile)?;
    let report = runtime.block_on(bench::heh(&profile, seconds, rate));
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
