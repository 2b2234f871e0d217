//! Process measurements for the benchmarks: CPU time and resident memory from /proc.

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
