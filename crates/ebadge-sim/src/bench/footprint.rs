//! The footprint of one HEH: its CPU, memory and bytes on the wire per report, for
//! `ebadge bench heh`. The HEH is our client library in a process of this program
//! (`bench heh-child`, [`library`]), or measured from outside in its own process: the agent
//! (`ebadge-heh`, [`agent`]) with this program's hidden `bench device` as its device ([`device`],
//! which prints stamped reports at the rate), pika through `scripts/heh-pika.py` ([`pika`]), or
//! any other HEH as a command ([`command`]: the Python package's, `python/bench/heh_ebadge.py`).
//! From outside: CPU is the scheduler's run time of its threads, memory the peak resident set;
//! the bytes on the wire are counted by the caller's proxy.

use super::measure::{
    ScrapedMetrics, cpu_seconds, cpu_seconds_of, peak_rss_kib_of, rss_kib, unix_nanos,
};
use super::{BENCH_VPP, BenchError, bench_heh, bench_vpp, connect_error, stamped_report};
use crate::fleet::FleetError;
use ebadge_bus::{Client, ClientConfig, Profile};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::Command;

/// The cost of one HEH.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HehReport {
    /// Reports sent (and confirmed).
    pub messages: u64,
    /// Seconds of sending.
    pub seconds: f64,
    /// CPU seconds of the process while sending (for `--agent` and `--pika`: from the end of the
    /// warm-up, see [`WARM_UP_SECONDS`]).
    pub cpu_seconds: f64,
    /// CPU as a share of one core, percent.
    pub cpu_percent: f64,
    /// CPU per message, µs.
    pub cpu_us_per_msg: f64,
    /// Resident memory of the process at the end, KiB.
    pub rss_kib: u64,
    /// JSON body size of one report, bytes.
    pub body_bytes: u64,
    /// Bytes the HEH sent on the wire (TLS included) per message, heartbeats and login included.
    pub wire_up_bytes_per_msg: f64,
    /// Bytes the broker sent back (confirms, heartbeats) per message.
    pub wire_down_bytes_per_msg: f64,
    /// Whether its client ran with metrics on ([`super::measure::METRICS_ENV`]).
    #[serde(default)]
    pub metrics: bool,
}

/// Our client library as the benchmark HEH, sending `rate` reports a second for `seconds` (run in
/// its own process, `bench heh-child`, so CPU and memory are the HEH's alone). The wire figures
/// are filled in by the caller's proxy.
pub async fn library(profile: &Profile, seconds: u64, rate: u64) -> Result<HehReport, BenchError> {
    let name = bench_heh(0);
    let mut config = ClientConfig::new(profile.clone(), name.clone());
    config.outbox_cap = 10_000;
    config.prefetch = 10;
    config.inbox_capacity = 10;
    config.dedupe_window = 1_000;
    let client = Client::connect(config)
        .await
        .map_err(connect_error(name.as_str()))?;
    let observed = ScrapedMetrics::if_asked(name.as_str(), &client).await;
    let vpp = bench_vpp();
    let body_bytes = stamped_report(unix_nanos()).to_json().len() as u64;
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let n = seconds * rate;
    for _ in 0..n {
        tick.tick().await;
        client.send(&vpp, &stamped_report(unix_nanos()))?;
    }
    if let Err(e) = client.flush().await {
        tracing::error!(error = %e, "the bench HEH lost messages");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let rss = rss_kib();
    client.close(Duration::from_secs(2)).await;
    Ok(HehReport {
        messages: n,
        seconds: elapsed,
        cpu_seconds: cpu,
        cpu_percent: cpu / elapsed * 100.0,
        cpu_us_per_msg: cpu * 1e6 / n.max(1) as f64,
        rss_kib: rss,
        body_bytes,
        metrics: observed.is_some(),
        ..HehReport::default()
    })
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

/// The device of the benchmark: prints `count` stamped reports, `rate` a second, on standard
/// output, then waits to be stopped. It ends when its standard input closes: the agent that
/// wrote to it is gone, killed or not.
pub async fn device(rate: u64, count: u64) -> ! {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(0)
    });
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let stdout = std::io::stdout();
    for _ in 0..count {
        tick.tick().await;
        let mut out = stdout.lock();
        let _ = writeln!(out, "{}", stamped_report(unix_nanos()).to_json());
        let _ = out.flush();
    }
    std::future::pending().await
}

fn process(what: &str) -> impl Fn(std::io::Error) -> BenchError + '_ {
    move |e| FleetError::Process(format!("{what}: {e}")).into()
}

/// How long the start of a run is left out of its CPU figures, at most.
pub const WARM_UP_SECONDS: f64 = 5.0;

/// Runs `command` (an HEH sending `count` reports at `rate`) for as long as that takes plus
/// three seconds for the last confirms, then measures it and stops it. CPU counts from
/// [`WARM_UP_SECONDS`] (or a quarter of the run, if shorter) after the start to the end; memory
/// is the peak of the whole run.
async fn measure(
    mut command: Command,
    what: &str,
    rate: u64,
    count: u64,
) -> Result<HehReport, BenchError> {
    let mut child = command
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(process(what))?;
    let pid = child
        .id()
        .ok_or_else(|| FleetError::Process(format!("{what} ended at once")))?;
    let seconds = count as f64 / rate.max(1) as f64;
    // The steady cost of a message, not the start: an interpreter's start-up (pika's) or a TLS
    // handshake spread over a minute's reports would say more about the run's length.
    let warm_up = (seconds / 4.0).min(WARM_UP_SECONDS);
    tokio::time::sleep(Duration::from_secs_f64(warm_up)).await;
    let cpu_at_start = cpu_seconds_of(pid);
    tokio::time::sleep(Duration::from_secs_f64(seconds - warm_up + 3.0)).await;
    let (cpu, rss) = (cpu_seconds_of(pid) - cpu_at_start, peak_rss_kib_of(pid));
    if let Ok(Some(status)) = child.try_wait() {
        return Err(FleetError::Process(format!("{what} ended early: {status}")).into());
    }
    let _ = child.kill().await;
    let steady = seconds - warm_up;
    Ok(HehReport {
        messages: count,
        seconds,
        cpu_seconds: cpu,
        cpu_percent: cpu / steady * 100.0,
        cpu_us_per_msg: cpu * 1e6 / (steady * rate as f64).max(1.0),
        rss_kib: rss,
        body_bytes: stamped_report(unix_nanos()).to_json().len() as u64,
        ..HehReport::default()
    })
}

/// The agent at `agent` as the benchmark HEH, connecting with `profile` (the proxy's address),
/// its device `program bench device`.
pub async fn agent(
    agent: &Path,
    program: &Path,
    profile: &Profile,
    seconds: u64,
    rate: u64,
) -> Result<HehReport, BenchError> {
    let dir = tempfile::tempdir().map_err(process("a temporary directory"))?;
    let count = seconds * rate;
    let config = dir.path().join("heh.toml");
    let text = format!(
        "name = \"{heh}\"\ncontroller = \"{BENCH_VPP}\"\n[bus]\namqps_url = \"{url}\"\nca = {ca:?}\ncerts = {certs:?}\n[device]\ncommand = [{program:?}, \"bench\", \"device\", \"--rate\", \"{rate}\", \"--count\", \"{count}\"]\n[failsafe]\nafter_seconds = 60\nbehaviour = \"end\"\n",
        heh = bench_heh(0),
        url = profile.amqps_url,
        ca = profile.ca,
        certs = profile.certs,
    );
    std::fs::write(&config, text).map_err(process("writing the agent's configuration"))?;
    let mut command = Command::new(agent);
    command
        .arg("--config")
        .arg(&config)
        .env("EBADGE_LOG", "warn");
    measure(command, "the agent", rate, count).await
}

/// pika (Debian's python3-pika, the seed's stack) as the benchmark HEH: `scripts/heh-pika.py`,
/// publishing with confirms as the seed's library does.
pub async fn pika(
    script: &Path,
    profile: &Profile,
    seconds: u64,
    rate: u64,
) -> Result<HehReport, BenchError> {
    let count = seconds * rate;
    let (host, port) = profile.host_and_port().map_err(FleetError::Process)?;
    let (cert, key) = profile.certificate(bench_heh(0).as_str());
    let mut command = Command::new("/usr/bin/python3");
    command
        .arg(script)
        .args(["--host", &host, "--port", &port.to_string()])
        .arg("--ca")
        .arg(&profile.ca)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .args([
            "--exchange",
            &ebadge_bus::conventions::pair_exchange(&bench_heh(0), &bench_vpp()),
        ])
        .args(["--rate", &rate.to_string(), "--count", &count.to_string()]);
    measure(command, "the pika HEH", rate, count).await
}

/// The command line `command` (run by `sh -c 'exec …'`, so that the process measured is the
/// command's, not a shell's) as the benchmark HEH. It is told, in its environment: the
/// profile's file (`EBADGE_PROFILE`, whose address is the counting proxy's), the HEH's name
/// (`EBADGE_BENCH_HEH`) and the VPP's (`EBADGE_BENCH_VPP`), `EBADGE_BENCH_RATE` and
/// `EBADGE_BENCH_COUNT`. It sends COUNT reports, RATE a second, each confirmed, then idles until
/// it is stopped.
pub async fn command(
    command: &str,
    profile_path: &Path,
    seconds: u64,
    rate: u64,
) -> Result<HehReport, BenchError> {
    let count = seconds * rate;
    let mut child = Command::new("sh");
    child
        .arg("-c")
        .arg(format!("exec {command}"))
        .env("EBADGE_PROFILE", profile_path)
        .env("EBADGE_BENCH_HEH", bench_heh(0).as_str())
        .env("EBADGE_BENCH_VPP", BENCH_VPP)
        .env("EBADGE_BENCH_RATE", rate.to_string())
        .env("EBADGE_BENCH_COUNT", count.to_string());
    measure(child, "the HEH command", rate, count).await
}
