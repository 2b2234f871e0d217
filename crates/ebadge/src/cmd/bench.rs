//! `ebadge bench ingest|activations|heh`: the three performance figures of D3.2.3 2.1, measured
//! on the local broker (started if needed), with `--json` for machines.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use ebadge_admin::registry::QueueType;
use ebadge_sim::bench::burst::{self, VppPlayer};
use ebadge_sim::bench::children::Program;
use ebadge_sim::bench::figures::{self, HehSubject};
use ebadge_sim::local_bus::LocalBus;

use crate::output::{self, Status};

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
        /// open-file limit of connections). On a local cluster each process connects its HEHs
        /// straight to the nodes, round robin, so that every node holds as many (haproxy holds at
        /// most 9,000 connections under this limit).
        #[arg(long, default_value_t = 1)]
        processes: usize,
        /// Connections the VPP publishes on, besides the one it consumes on (0: it publishes on
        /// that one too). Each takes a share of the activations by HEH; behind haproxy they
        /// land on different nodes, which take the burst in side by side. Default: 4 on a
        /// cluster, 1 on one node (where more only hold the answers back: docs/benchmarks.md)
        #[arg(long)]
        publish_connections: Option<usize>,
        /// Then the same burst through raw amqprs (no validation, no outbox, no matching), its
        /// fleet spread over as many processes as ours: the ceiling ours is compared with
        /// (`ratio_to_ceiling` = its time / ours). Refused when a node has no file handles left
        /// for its share after our burst (20,000 HEHs on a local cluster): use --ceiling-only on
        /// a fresh cluster then
        #[arg(long)]
        ceiling: bool,
        /// Only the raw ceiling, not ours. A local cluster of 20,000 HEHs has spent its nodes'
        /// file handles after one burst (each classic inbox that took a message keeps two
        /// reserved, also once its consumer is gone) and cannot take a second fleet: measure the
        /// ceiling on a fresh cluster of its own
        #[arg(long, conflicts_with = "ceiling")]
        ceiling_only: bool,
        /// Instead of our Rust VPP, this command (run by `sh -c` once the fleet is connected)
        /// sends the activations and awaits the answers: a VPP in another language or library,
        /// against the same fleet. It is told the profile (`EBADGE_PROFILE`), the VPP's name
        /// (`EBADGE_BENCH_VPP`), a file naming the HEHs (`EBADGE_BENCH_HEHS`),
        /// `EBADGE_BENCH_TIMEOUT` and `EBADGE_BENCH_PUBLISH_CONNECTIONS`, and prints one JSON
        /// object with `seconds` (first activate → last answer) and `answered` (kept in the
        /// result as `report.vpp_command`). Example: --vpp-command ".venv/bin/python
        /// python/bench/vpp_ebadge.py"
        #[arg(long, value_name = "COMMAND", conflicts_with_all = ["ceiling", "ceiling_only"])]
        vpp_command: Option<String>,
        /// Seconds the VPP waits for the answers, from its first activate. A burst that does
        /// not finish in time still reports how many were answered and when the last came
        /// (`answered`, `last_answer_seconds`)
        #[arg(long, value_name = "SECONDS", default_value_t = burst::DEFAULT_WAIT.as_secs_f64(), value_parser = positive_seconds)]
        wait: f64,
        /// The longest the burst waits, once the fleet is connected and announced, for a quiet
        /// broker: its nodes below 75 % of the machine in two 2-s windows in a row (0: start at
        /// once). Both the burst through our client and the raw ceiling wait; the report says
        /// how long, and whether the broker settled (`quiet`)
        #[arg(long, value_name = "SECONDS", default_value_t = burst::QUIET_AT_MOST.as_secs_f64(), value_parser = seconds_or_zero)]
        quiet_wait: f64,
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
        /// The HEH is this agent binary (`ebadge-heh`), its device this program, instead of the
        /// client library in a process of this program.
        #[arg(long, value_name = "PATH")]
        agent: Option<PathBuf>,
        /// Then the same with pika as the HEH (`scripts/heh-pika.py` by default), the peer.
        #[arg(long, value_name = "SCRIPT", num_args = 0..=1, default_missing_value = "scripts/heh-pika.py")]
        pika: Option<PathBuf>,
        /// The HEH is this command (run by `sh -c 'exec COMMAND'`, so that the process measured
        /// is the command's), instead of the client library in a process of this program: an
        /// HEH in another language or library, measured from outside as the agent and pika are. It is told the profile (`EBADGE_PROFILE`, through the
        /// counting proxy), its name (`EBADGE_BENCH_HEH`), the VPP's (`EBADGE_BENCH_VPP`),
        /// `EBADGE_BENCH_RATE` and `EBADGE_BENCH_COUNT`; it sends that many reports at that
        /// rate, each confirmed, then idles until it is stopped. Example: --heh-command
        /// ".venv/bin/python python/bench/heh_ebadge.py"
        #[arg(long, value_name = "COMMAND", conflicts_with = "agent")]
        heh_command: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// The benchmarks' other processes (hidden).
    #[command(flatten)]
    Child(super::bench_child::ChildRole),
}

fn parse_queue_type(text: &str) -> Result<QueueType, String> {
    text.parse()
}

/// A number of seconds above zero (fractions allowed).
fn seconds_or_zero(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(format!(
            "`{text}` is not a number of seconds, 0 or more (e.g. 0, 120 or 30.5)"
        )),
    }
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => Err(format!(
            "`{text}` is not a number of seconds above zero (e.g. 60 or 90.5)"
        )),
    }
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
pub async fn run(command: BenchCommand) -> Result<Status> {
    super::raise_open_file_limit();
    match command {
        BenchCommand::Child(role) => super::bench_child::run(role).await?,
        BenchCommand::Ingest {
            hehs,
            messages,
            rate,
            common,
        } => {
            let ready = prepare(&common, hehs).await?;
            let figures =
                figures::ingest(&Program::current()?, &ready, hehs, messages, rate, note).await?;
            note(&format!(
                "ebadge / raw ceiling: {:.2}",
                figures.ratio_to_ceiling
            ));
            emit(&common, "ingest", &figures)?;
        }
        BenchCommand::Activations {
            hehs,
            processes,
            publish_connections,
            ceiling,
            ceiling_only,
            vpp_command,
            wait,
            quiet_wait,
            common,
        } => {
            let ready = prepare(&common, hehs).await?;
            let options = figures::ActivationOptions {
                hehs,
                processes,
                publish_connections,
                ours: !ceiling_only,
                ceiling: ceiling || ceiling_only,
                vpp: vpp_command.map_or(VppPlayer::Ours, VppPlayer::Command),
                wait: Duration::from_secs_f64(wait),
                quiet_wait: Duration::from_secs_f64(quiet_wait),
            };
            let figures = figures::activations(&Program::current()?, &ready, options, note).await?;
            emit(&common, "activations", &figures)?;
        }
        BenchCommand::Heh {
            seconds,
            rate,
            agent,
            pika,
            heh_command,
            common,
        } => {
            let ready = prepare(&common, 1).await?;
            let program = Program::current()?;
            let subject = match (agent, heh_command) {
                (Some(agent), _) => HehSubject::Agent(agent),
                (None, Some(command)) => HehSubject::Command(command),
                (None, None) => HehSubject::Library,
            };
            let report = figures::heh(&program, &ready, seconds, rate, &subject, note).await?;
            let peer = match pika {
                Some(script) => {
                    let pika = HehSubject::Pika(script);
                    Some(figures::heh(&program, &ready, seconds, rate, &pika, note).await?)
                }
                None => None,
            };
            emit(
                &common,
                "heh",
                &serde_json::json!({ "subject": subject.to_string(), "report": report, "pika": peer }),
            )?;
        }
    }
    Ok(Status::Ok)
}

/// Starts the broker and adds the benchmark registry, with progress on stderr.
async fn prepare(common: &Common, hehs: usize) -> Result<LocalBus> {
    let ready = ebadge_sim::bench::prepare(
        &common.dir,
        hehs,
        common.queue_type,
        super::provisioning_progress(),
    )
    .await?;
    if ready.provisioned() > 0 {
        note(&format!(
            "provisioned the benchmark registry: {} items",
            ready.provisioned()
        ));
    }
    Ok(ready)
}

/// Progress goes to stderr always; with --json stdout carries only the result.
fn note(line: &str) {
    eprintln!("{line}");
}

/// With --json, the figures as one object on stdout, with `"bench": NAME`.
fn emit(common: &Common, name: &str, figures: &impl serde::Serialize) -> Result<()> {
    if common.json {
        let mut object = serde_json::Map::new();
        object.insert("bench".into(), name.into());
        if let serde_json::Value::Object(fields) = serde_json::to_value(figures)? {
            object.extend(fields);
        }
        output::json(&object)?;
    }
    Ok(())
}
