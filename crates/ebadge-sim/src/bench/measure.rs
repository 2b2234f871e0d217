//! What the benchmarks measure with: CPU time and resident memory of processes (from /proc),
//! the latencies of a stream of stamped messages, a wait for a quiet broker, and a measured
//! client's metrics when their cost is the question ([`METRICS_ENV`]).

use ebadge_bus::Client;
use std::time::{Duration, Instant};

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux).
pub const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system) this process used so far.
pub fn cpu_seconds() -> f64 {
    cpu_seconds_in("/proc/self/stat")
}

/// CPU seconds process `pid`'s live threads ran so far (0 once it is gone): the scheduler's
/// nanosecond run times (`/proc/PID/task/*/schedstat`). A small process at 10 messages a second
/// runs a few hundred microseconds at a time, which /proc's 10-ms ticks can only sample. Where
/// the kernel keeps no schedstat, the ticks.
pub fn cpu_seconds_of(pid: u32) -> f64 {
    let run_ns = |task: std::fs::DirEntry| -> Option<u64> {
        let text = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        text.split_whitespace().next()?.parse().ok()
    };
    match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(tasks) => {
            let ns: Vec<u64> = tasks.flatten().filter_map(run_ns).collect();
            if ns.is_empty() {
                cpu_seconds_in(&format!("/proc/{pid}/stat"))
            } else {
                ns.iter().sum::<u64>() as f64 / 1e9
            }
        }
        Err(_) => 0.0,
    }
}

/// Peak resident set size of process `pid` in KiB (`VmHWM`; 0 once it is gone).
pub fn peak_rss_kib_of(pid: u32) -> u64 {
    status_kib(&format!("/proc/{pid}/status"), "VmHWM:")
}

fn cpu_seconds_in(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) / USER_HZ
}

/// Resident set size in KiB.
pub fn rss_kib() -> u64 {
    status_kib("/proc/self/status", "VmRSS:")
}

fn status_kib(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Percentiles (0-100) of a sample, in its unit; sorts it.
pub fn percentiles(sample: &mut [u64], points: &[f64]) -> Vec<u64> {
    sample.sort_unstable();
    points
        .iter()
        .map(|p| {
            if sample.is_empty() {
                0
            } else {
                let rank = ((p / 100.0) * (sample.len() - 1) as f64).round() as usize;
                sample[rank.min(sample.len() - 1)]
            }
        })
        .collect()
}

/// Nanoseconds since the Unix epoch.
pub fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The arrivals of a stream of stamped messages at a consumer: each one's latency (its stamp to
/// its arrival) and when the first and the last came.
#[derive(Debug)]
pub struct Arrivals {
    /// Latencies (ns) of the messages that carried a stamp.
    pub latencies: Vec<u64>,
    /// When the first arrived.
    pub first: Option<Instant>,
    /// When the last arrived.
    pub last: Instant,
}

impl Arrivals {
    /// None yet, room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            latencies: Vec::with_capacity(n),
            first: None,
            last: Instant::now(),
        }
    }

    /// A message arrived at `now_ns` (ns since the epoch); `sent_ns` is its stamp, if it had one.
    pub fn arrived(&mut self, now_ns: u64, sent_ns: Option<u64>) {
        self.first.get_or_insert_with(Instant::now);
        self.last = Instant::now();
        if let Some(sent) = sent_ns {
            self.latencies.push(now_ns.saturating_sub(sent));
        }
    }

    /// Stamped messages arrived so far.
    pub fn count(&self) -> u64 {
        self.latencies.len() as u64
    }

    /// From the first arrival to the last, seconds (0 before any).
    pub fn seconds(&self) -> f64 {
        self.first
            .map_or(0.0, |f| self.last.duration_since(f).as_secs_f64())
    }
}

/// Set (to anything) in the environment of `ebadge bench ingest|heh` to run the measured client
/// (the consuming VPP, the HEH) with metrics on: watched, served on a free port and scraped every
/// second (15 times as often as deploy/prometheus does), for measuring what metrics cost.
pub const METRICS_ENV: &str = "EBADGE_BENCH_METRICS";

/// A measured client's metrics and their scraper, while the benchmark runs.
pub(super) struct ScrapedMetrics {
    _server: ebadge_bus::metrics::MetricsServer,
    scraper: tokio::task::JoinHandle<()>,
}

impl ScrapedMetrics {
    /// With [`METRICS_ENV`] set: watches `client`, serves its metrics and scrapes them every
    /// second.
    pub(super) async fn if_asked(entity: &str, client: &Client) -> Option<ScrapedMetrics> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        std::env::var_os(METRICS_ENV)?;
        let metrics = ebadge_bus::metrics::Metrics::new();
        metrics.watch(entity, std::slice::from_ref(client));
        let server = metrics.serve(([127, 0, 0, 1], 0).into()).await.ok()?;
        let address = server.address();
        let scraper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
                    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await;
                    let _ = stream.read_to_end(&mut Vec::new()).await;
                }
            }
        });
        Some(ScrapedMetrics {
            _server: server,
            scraper,
        })
    }
}

impl Drop for ScrapedMetrics {
    fn drop(&mut self) {
        self.scraper.abort();
    }
}

/// Busy CPU seconds of the whole machine so far (every core; user, system, interrupts, steal:
/// all of /proc/stat's first line but idle and iowait).
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let ticks: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let busy: f64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    busy / USER_HZ
}

/// The processes of a benchmark by role, whose CPU over a window [`CpuWatch`] splits: where a
/// burst's CPU went (the broker's nodes, the fleet, the VPP) and how much of the machine was left.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    /// The broker's nodes (their `beam.smp` processes).
    pub broker: Vec<u32>,
    /// The fleet's processes (none when the fleet runs in the VPP's process).
    pub fleet: Vec<u32>,
    /// The VPP's process (this one, unless an external command plays it).
    pub vpp: Vec<u32>,
}

/// CPU over a window, by role, in percent of one core (on 2 cores the machine has 200).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CpuSplit {
    /// Seconds the window lasted.
    pub seconds: f64,
    /// The broker's nodes together.
    pub broker_percent: f64,
    /// The fleet's processes together (none: the fleet runs in the VPP's process, whose share
    /// counts both).
    pub fleet_percent: Option<f64>,
    /// The VPP's process.
    pub vpp_percent: f64,
    /// Everything that ran on the machine (the above and all else).
    pub machine_percent: f64,
    /// What the machine could give: 100 per core.
    pub machine_capacity_percent: f64,
}

impl std::fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CPU over {:.1} s (% of one core): broker {:.0}, ",
            self.seconds, self.broker_percent
        )?;
        match self.fleet_percent {
            Some(fleet) => write!(f, "fleet {fleet:.0}, VPP {:.0}", self.vpp_percent)?,
            None => write!(f, "VPP and fleet {:.0}", self.vpp_percent)?,
        }
        write!(
            f,
            "; machine {:.0} of {:.0}",
            self.machine_percent, self.machine_capacity_percent
        )
    }
}

/// A window of CPU accounting over [`Roles`]: started with [`CpuWatch::start`], read with
/// [`CpuWatch::split`].
#[derive(Debug, Clone)]
pub struct CpuWatch {
    roles: Roles,
    started: std::time::Instant,
    at_start: [f64; 4],
}

impl CpuWatch {
    /// Starts the window now.
    pub fn start(roles: Roles) -> Self {
        let at_start = Self::totals(&roles);
        Self {
            roles,
            started: std::time::Instant::now(),
            at_start,
        }
    }

    fn totals(roles: &Roles) -> [f64; 4] {
        let sum = |pids: &[u32]| pids.iter().map(|p| cpu_seconds_of(*p)).sum::<f64>();
        [
            sum(&roles.broker),
            sum(&roles.fleet),
            sum(&roles.vpp),
            machine_busy_seconds(),
        ]
    }

    /// The split from the start to now.
    pub fn split(&self) -> CpuSplit {
        let seconds = self.started.elapsed().as_secs_f64();
        let now = Self::totals(&self.roles);
        let percent = |i: usize| 100.0 * (now[i] - self.at_start[i]).max(0.0) / seconds.max(1e-9);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        CpuSplit {
            seconds,
            broker_percent: percent(0),
            fleet_percent: (!self.roles.fleet.is_empty()).then(|| percent(1)),
            vpp_percent: percent(2),
            machine_percent: percent(3),
            machine_capacity_percent: 100.0 * cores as f64,
        }
    }
}

/// When a broker counts as quiet before a burst: its nodes together below this share of what the
/// machine's cores can give, in two [`QUIET_WINDOW`]s in a row.
pub const QUIET_SHARE: f64 = 0.75;
/// The window over which [`wait_until_quiet`] samples the broker's CPU.
pub const QUIET_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

/// Windows in a row in which the broker took less than [`QUIET_SHARE`] of the machine.
#[derive(Debug, Default)]
struct Quiet(u32);

impl Quiet {
    /// One more window, in which the broker took `share` of the machine (0 to 1).
    fn observe(&mut self, share: f64) {
        self.0 = if share < QUIET_SHARE { self.0 + 1 } else { 0 };
    }

    /// Two quiet windows in a row: a single one may be a pause between busy ones.
    fn settled(&self) -> bool {
        self.0 >= 2
    }
}

/// How a wait for a quiet broker ended ([`wait_until_quiet`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuietWait {
    /// Seconds waited.
    pub seconds: f64,
    /// Whether the broker became quiet (false: the wait gave up).
    pub settled: bool,
}

impl std::fmt::Display for QuietWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.settled {
            write!(
                f,
                "begun once the broker was quiet, after {:.0} s",
                self.seconds
            )
        } else {
            write!(
                f,
                "begun with the broker still busy after {:.0} s",
                self.seconds
            )
        }
    }
}

/// Waits until the processes `pids` (a broker's nodes) together spend less than [`QUIET_SHARE`]
/// of the machine in two [`QUIET_WINDOW`]s in a row, or `at_most` has passed, and tells `note`
/// each window's figure. None when there is nothing to watch (a broker not on this machine) or
/// `at_most` is zero.
///
/// Why: a fleet that has just connected leaves the broker saturated for a while (the last
/// handshakes, the queue work of its announcements, statistics of new objects). A burst started
/// then measures that work too, and more of it for clients that did more while connecting,
/// which a fleet connected long before an activation never costs. The threshold is a share of
/// the machine, not an absolute figure: 20,000 idle TLS connections alone keep a slow machine's
/// nodes at more than a core (heartbeats, statistics).
pub async fn wait_until_quiet(
    pids: &[u32],
    at_most: std::time::Duration,
    note: &dyn Fn(&str),
) -> Option<QuietWait> {
    if pids.is_empty() || at_most.is_zero() {
        return None;
    }
    let began = std::time::Instant::now();
    let roles = Roles {
        broker: pids.to_vec(),
        ..Roles::default()
    };
    let mut quiet = Quiet::default();
    while !quiet.settled() && began.elapsed() < at_most {
        let watch = CpuWatch::start(roles.clone());
        tokio::time::sleep(QUIET_WINDOW).await;
        let split = watch.split();
        quiet.observe(split.broker_percent / split.machine_capacity_percent);
        note(&format!(
            "  broker at {:.0} % of one core ({:.0} s into the wait for a quiet broker)",
            split.broker_percent,
            began.elapsed().as_secs_f64()
        ));
    }
    Some(QuietWait {
        seconds: began.elapsed().as_secs_f64(),
        settled: quiet.settled(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_is_quiet_after_two_quiet_windows_in_a_row_not_two_in_all() {
        let mut quiet = Quiet::default();
        for share in [0.9, 0.5, 0.85] {
            quiet.observe(share);
            assert!(!quiet.settled(), "after {share}");
        }
        quiet.observe(0.6);
        assert!(!quiet.settled());
        quiet.observe(QUIET_SHARE);
        assert!(!quiet.settled(), "the share itself is not below it");
        quiet.observe(0.3);
        quiet.observe(0.2);
        assert!(quiet.settled());
    }

    #[test]
    fn a_watch_credits_the_cpu_a_role_spent_to_that_role() {
        let me = std::process::id();
        let watch = CpuWatch::start(Roles {
            vpp: vec![me],
            ..Roles::default()
        });
        // Spin until this process has spent 0.2 s of CPU (bounded, on a loaded machine).
        let (start, began) = (cpu_seconds_of(me), std::time::Instant::now());
        let mut x = 0u64;
        while cpu_seconds_of(me) - start < 0.2 && began.elapsed().as_secs() < 20 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let split = watch.split();
        let vpp_seconds = split.vpp_percent * split.seconds / 100.0;
        assert!(vpp_seconds >= 0.2, "{split}");
        assert_eq!((split.broker_percent, split.fleet_percent), (0.0, None));
        // The machine's figure counts in 10-ms ticks: allow a few.
        let machine_seconds = split.machine_percent * split.seconds / 100.0;
        assert!(machine_seconds + 0.05 >= vpp_seconds, "{split}");
        assert!(split.to_string().contains("VPP and fleet"), "{split}");
    }
}
