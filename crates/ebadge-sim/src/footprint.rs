//! One HEH's footprint with the agent (`ebadge-heh`) or a pika client as the HEH, for
//! `ebadge bench heh --agent PATH|--heh-command CMD [--pika]`: the agent runs its device program
//! (this program's hidden `bench device`, which prints stamped reports at the rate), pika runs
//! `scripts/heh-pika.py`, a command is any other HEH (the Python package's,
//! `python/bench/heh_ebadge.py`). Each is measured from outside, in its own process: CPU (the
//! scheduler's run time of its threads), peak resident memory, and bytes on the wire through the
//! caller's counting proxy.

use crate::bench::{BENCH_VPP, BenchError, HehReport, bench_heh, stamped_report};
use crate::fleet::FleetError;
use crate::measure::{cpu_seconds_of, peak_rss_kib_of, unix_nanos};
use ebadge_bus::Profile;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

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
            &ebadge_bus::conventions::pair_exchange(&bench_heh(0), &crate::bench::bench_vpp()),
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
