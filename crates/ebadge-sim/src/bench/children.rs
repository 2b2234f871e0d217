//! The benchmarks' other processes, and the line protocol between them and the benchmark.
//!
//! A benchmark runs parts of itself in processes of their own: the VPP's consumer for `ingest`
//! (its CPU and memory measured alone), fleets for `activations --processes` (more connections
//! than one process may open), the HEH for `heh` (its footprint alone). Each is the same
//! program, started as `<program> bench <role> …` (hidden subcommands of `ebadge`, which call
//! the child functions here), and speaks one protocol on its standard output:
//! - a consumer prints [`READY`] once it consumes, then its JSON report when done;
//! - a fleet prints `ready <KiB per HEH connection>` once every HEH is connected, then stays
//!   until its standard input closes;
//! - an HEH prints its JSON report when done.

use super::BenchError;
use super::footprint::HehReport;
use super::ingest::ConsumerReport;
use super::measure::rss_kib;
use crate::fleet::FleetError;
use ebadge_bus::Profile;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The line a child prints once it is ready.
pub const READY: &str = "ready";

/// The program the children run: the `ebadge` binary.
#[derive(Debug, Clone)]
pub struct Program(pub PathBuf);

impl Program {
    /// This process's own executable (the benchmark runs in `ebadge`).
    pub fn current() -> std::io::Result<Program> {
        Ok(Program(std::env::current_exe()?))
    }

    fn bench(&self, role: &str) -> Command {
        let mut command = Command::new(&self.0);
        command.args(["bench", role]).kill_on_drop(true);
        command
    }

    /// Starts the consuming VPP of `ingest` for `count` messages (`raw`: through amqprs
    /// directly) and waits until it consumes.
    pub async fn consumer(
        &self,
        profile: &Path,
        count: u64,
        raw: bool,
    ) -> Result<Consumer, BenchError> {
        let mut command = self.bench("consume");
        command
            .args(["--count", &count.to_string(), "--profile"])
            .arg(profile)
            .args(raw.then_some("--raw"))
            .stdout(Stdio::piped());
        let (child, mut lines) = spawn(command, "the consumer process")?;
        match lines.next_line().await {
            Ok(Some(line)) if line == READY => Ok(Consumer { child, lines }),
            other => Err(stopped("the consumer process", "it consumed", other)),
        }
    }

    /// Starts `processes` fleet processes for HEHs `0..hehs` (`raw`: the ceiling's raw HEHs
    /// instead of our client's); with `node_urls` (a local cluster's nodes) each process connects
    /// its HEHs straight to the nodes, round robin, so that every node holds as many.
    pub fn fleets(
        &self,
        profile: &Path,
        hehs: usize,
        processes: usize,
        node_urls: &[String],
        raw: bool,
    ) -> Result<Fleets, BenchError> {
        let per = hehs.div_ceil(processes.max(1));
        let mut children = Vec::new();
        for i in 0..processes {
            let first = i * per;
            let count = per.min(hehs.saturating_sub(first));
            if count == 0 {
                break;
            }
            let mut command = self.bench("fleet-child");
            command
                .args(["--first", &first.to_string()])
                .args(["--count", &count.to_string(), "--profile"])
                .arg(profile)
                .args(raw.then_some("--raw"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            for url in node_urls {
                command.args(["--url", url]);
            }
            children.push(spawn(command, "a fleet process")?);
        }
        Ok(Fleets { children })
    }

    /// Runs one HEH sending `rate` reports a second for `seconds` in its own process, and
    /// returns its report.
    pub async fn heh(
        &self,
        profile: &Path,
        seconds: u64,
        rate: u64,
    ) -> Result<HehReport, BenchError> {
        let output = self
            .bench("heh-child")
            .args(["--seconds", &seconds.to_string()])
            .args(["--rate", &rate.to_string(), "--profile"])
            .arg(profile)
            .output()
            .await
            .map_err(|e| FleetError::Process(format!("starting the HEH process: {e}")))?;
        if !output.status.success() {
            return Err(FleetError::Process(format!(
                "the HEH process failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
            .into());
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|e| FleetError::Process(format!("the HEH process's report: {e}")).into())
    }
}

/// A running consumer process.
pub struct Consumer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Consumer {
    /// Waits for its report.
    pub async fn report(mut self) -> Result<ConsumerReport, BenchError> {
        let line = match self.lines.next_line().await {
            Ok(Some(line)) => line,
            other => return Err(stopped("the consumer process", "its report", other)),
        };
        let _ = self.child.wait().await;
        serde_json::from_str(&line)
            .map_err(|e| FleetError::Process(format!("the consumer's report {line:?}: {e}")).into())
    }
}

/// Running fleet processes.
pub struct Fleets {
    children: Vec<(Child, Lines<BufReader<ChildStdout>>)>,
}

impl Fleets {
    /// Resolves when every fleet process is ready, with their mean KiB per HEH connection.
    pub async fn ready(&mut self) -> Result<f64, FleetError> {
        let mut kib = Vec::new();
        for (i, (_, lines)) in self.children.iter_mut().enumerate() {
            match lines.next_line().await {
                Ok(Some(line)) if line.starts_with(READY) => {
                    kib.push(line[READY.len()..].trim().parse::<f64>().unwrap_or(0.0));
                }
                other => {
                    return Err(FleetError::Process(format!(
                        "fleet process {i} stopped before its HEHs were connected ({other:?}); its error is above"
                    )));
                }
            }
        }
        Ok(kib.iter().sum::<f64>() / kib.len().max(1) as f64)
    }

    /// Their process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(|(c, _)| c.id()).collect()
    }

    /// Closes their standard input (they disconnect and exit) and waits for them.
    pub async fn stop(self) {
        for (mut child, _) in self.children {
            drop(child.stdin.take());
            let _ = child.wait().await;
        }
    }
}

fn spawn(
    mut command: Command,
    what: &str,
) -> Result<(Child, Lines<BufReader<ChildStdout>>), BenchError> {
    let mut child = command
        .spawn()
        .map_err(|e| FleetError::Process(format!("starting {what}: {e}")))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    Ok((child, BufReader::new(stdout).lines()))
}

fn stopped(what: &str, waiting_for: &str, got: std::io::Result<Option<String>>) -> BenchError {
    FleetError::Process(format!(
        "{what} stopped before {waiting_for} ({got:?}); its error is above"
    ))
    .into()
}

/// The child side of a fleet process: connects HEHs `first..first + count` (`raw`: the raw
/// ceiling's, see [`super::ceiling`]; to `urls` round robin instead of the profile's address,
/// when given), says ready with the KiB each connection costs, and stays until its standard
/// input closes.
pub async fn fleet_child(
    profile: &Profile,
    first: usize,
    count: usize,
    urls: &[String],
    raw: bool,
) -> Result<(), BenchError> {
    let profiles: Vec<Profile> = if urls.is_empty() {
        vec![profile.clone()]
    } else {
        urls.iter()
            .map(|url| Profile {
                amqps_url: url.clone(),
                ..profile.clone()
            })
            .collect()
    };
    let rss0 = rss_kib();
    let progress = move |n: usize| {
        if n.is_multiple_of(1000) {
            eprintln!("  HEHs {first}..: {n} connected");
        }
    };
    let (fleet, raw_fleet) = if raw {
        let connections = super::ceiling::fleet(&profiles, first, count, progress).await?;
        (None, connections)
    } else {
        let fleet = super::burst::activation_fleet(&profiles, first, count, progress).await?;
        (Some(fleet), Vec::new())
    };
    let kib = rss_kib().saturating_sub(rss0) as f64 / count.max(1) as f64;
    println!("{READY} {kib}");
    let _ = tokio::task::spawn_blocking(|| {
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())
    })
    .await;
    if let Some(fleet) = fleet {
        fleet.close(std::time::Duration::from_secs(5)).await;
    }
    for connection in raw_fleet {
        let _ = connection.close().await;
    }
    Ok(())
}

/// The child side of the consuming VPP: says it is ready once it consumes, and returns its
/// report (the caller prints it as one JSON line).
pub async fn consumer_child(
    profile: &Profile,
    count: u64,
    raw: bool,
) -> Result<ConsumerReport, BenchError> {
    super::ingest::consume(profile, count, raw, || println!("{READY}")).await
}
