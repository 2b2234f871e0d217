//! Process measurements for the benchmarks: CPU time and resident memory from /proc.

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux).
pub const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system) this process used so far.
pub fn cpu_seconds() -> f64 {
    cpu_seconds_in("/proc/self/stat")
}

/// CPU seconds (user + system) process `pid` used so far (0 once it is gone).
pub fn cpu_seconds_of(pid: u32) -> f64 {
    cpu_seconds_in(&format!("/proc/{pid}/stat"))
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
