//! The activation figure's driver: a fleet of HEHs (here or in fleet processes), each its own TLS
//! connection, and the benchmark VPP sending each an activation at once and awaiting the answers:
//! our Rust VPP ([`burst`]), or a VPP command in any language against the same fleet
//! ([`run_vpp_command`], with our VPP as one: [`vpp_child`]). The raw amqprs ceiling of the same
//! burst is [`super::ceiling::burst`].

use super::measure::{
    CpuSplit, CpuWatch, QuietWait, Roles, cpu_seconds, percentiles, rss_kib, wait_until_quiet,
};
use super::{BENCH_VPP, BenchError, bench_heh, bench_vpp, connect_error};
use crate::fleet::{Fleet, FleetError};
use crate::heh::{HehSpec, Policy};
use ebadge_bus::{ActivationOutcome, Client, ClientConfig, EntityName, FirstConnection, Profile};
use ebadge_model::Activate;
use serde::Serialize;
use std::fmt;
use std::time::{Duration, Instant};

/// The activation burst.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ActivationReport {
    /// HEHs in the fleet (each its own TLS connection).
    pub hehs: usize,
    /// Seconds to connect the fleet.
    pub connect_seconds: f64,
    /// Activations sent.
    pub sent: u64,
    /// Answers received when the wait ended.
    pub answered: u64,
    /// First activate sent → last answer received, seconds; the whole wait when some were not
    /// answered.
    pub seconds: f64,
    /// How long the VPP waited for answers from the first activate, seconds (`--wait`).
    pub wait_seconds: f64,
    /// First activate sent → the last answer that came, seconds (none answered: none): the
    /// figure of a run that did not finish.
    pub last_answer_seconds: Option<f64>,
    /// Per-activation round trip p50, p90, p99, max (ms).
    pub round_trip_ms: [f64; 4],
    /// First activate sent → the broker confirmed the last activation, seconds (sampled every
    /// 10 ms; none when not measured). Beside `seconds` it shows which half of the burst is
    /// long: taking in the activations, or delivering them and bringing the answers back.
    #[serde(default)]
    pub confirmed_seconds: Option<f64>,
    /// Resident memory added by the fleet, per HEH connection (KiB).
    pub kib_per_heh: f64,
    /// The wait, once the fleet was connected and announced, for a quiet broker before the
    /// burst ([`super::measure::wait_until_quiet`]; none: the broker's processes are not on
    /// this machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet: Option<QuietWait>,
    /// Where the CPU went during the burst (first activate → last answer or end of the wait).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuSplit>,
    /// The VPP client's counters at the end (all zero when an external command was the VPP).
    pub vpp: ebadge_bus::CounterSnapshot,
    /// With [`VppPlayer::Command`]: the command line and the JSON object the command printed
    /// (its own figures: `seconds`, `answered`, and whatever else it measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpp_command: Option<serde_json::Value>,
}

impl ActivationReport {
    /// The figures of a burst to `hehs` HEHs that took `seconds` of a `wait`, from its answers.
    pub fn of_burst(
        hehs: usize,
        connect_seconds: f64,
        seconds: f64,
        answers: Answers,
        wait: Duration,
    ) -> Self {
        let Answers { mut trips, last } = answers;
        let p = percentiles(&mut trips, &[50.0, 90.0, 99.0, 100.0]);
        Self {
            hehs,
            connect_seconds,
            sent: hehs as u64,
            answered: trips.len() as u64,
            seconds,
            wait_seconds: wait.as_secs_f64(),
            last_answer_seconds: last.map(|d| d.as_secs_f64()),
            round_trip_ms: [p[0], p[1], p[2], p[3]].map(|ns| ns as f64 / 1e6),
            ..Self::default()
        }
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

/// The answers to a burst.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    /// Round trips (ns) of the activations answered.
    pub trips: Vec<u64>,
    /// First activate sent → the last answer, if any came.
    pub last: Option<Duration>,
}

impl Answers {
    /// With room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            trips: Vec::with_capacity(n),
            last: None,
        }
    }

    /// An answer came `at` (from the first activate) after a round trip of `trip`.
    pub fn answered(&mut self, trip: Duration, at: Duration) {
        self.trips.push(trip.as_nanos() as u64);
        self.last = self.last.max(Some(at));
    }
}

/// The HEHs of the activation benchmark `first..first + count`, connected (at most
/// [`crate::fleet::HANDSHAKES_PER_NODE`] handshakes at once with each node, spread over
/// `profiles` as [`Fleet::start`] does) and announced. `progress` gets the
/// number connected so far.
pub async fn activation_fleet(
    profiles: &[Profile],
    first: usize,
    count: usize,
    progress: impl Fn(usize) + Send + Sync + 'static,
) -> Result<Fleet, FleetError> {
    let specs = (first..first + count)
        .map(|i| HehSpec {
            name: bench_heh(i),
            controller: bench_vpp(),
            capacity_kw: 1000.0,
            policy: Policy::Reject,
        })
        .collect();
    Fleet::start(profiles, specs, crate::fleet::HANDSHAKES_PER_NODE, progress).await
}

/// Where the activation benchmark's HEHs run.
pub enum FleetPlacement<F> {
    /// In this process (one connection each, so at most the open-file limit).
    InProcess(Box<dyn Fn(usize) + Send + Sync>),
    /// Elsewhere (other processes): the future resolves when they are all connected, with the
    /// KiB per HEH connection they measured.
    External(F),
}

/// Who sends the activations of the burst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VppPlayer {
    /// Our Rust client, in this process.
    Ours,
    /// An external program: this command line, run by `sh -c` once the fleet is connected and
    /// its announcements are read (see [`run_vpp_command`] for what it is told and must print).
    Command(String),
}

/// Where the fleet's HEHs and the VPP find the broker.
#[derive(Debug, Clone, Copy)]
pub struct BurstProfile<'a> {
    /// The profile.
    pub profile: &'a Profile,
    /// Its file, for an external VPP.
    pub path: &'a std::path::Path,
}

/// Starts `hehs` simulated HEHs (here or elsewhere), then the VPP sends each an activation at
/// once and waits for all answers. The VPP publishes on `publish_connections` connections of
/// its own (see [`ClientConfig::publish_connections`]). With [`VppPlayer::Command`] our VPP
/// only reads the fleet's announcements and leaves; the command then plays the VPP and reports
/// its own time.
pub async fn burst<F>(
    at: BurstProfile<'_>,
    hehs: usize,
    publish_connections: usize,
    placement: FleetPlacement<F>,
    (player, watch): (&VppPlayer, &BurstWatch),
    note: &dyn Fn(&str),
) -> Result<ActivationReport, FleetError>
where
    F: std::future::Future<Output = Result<f64, FleetError>>,
{
    let profile = at.profile;
    let mut config = ClientConfig::new(profile.clone(), bench_vpp());
    config.publish_connections = publish_connections;
    config.first_connection = FirstConnection::WaitUpTo(crate::fleet::CONNECT_PATIENCE);
    let vpp = Client::connect(config)
        .await
        .map_err(|source| FleetError::Connect {
            name: BENCH_VPP.into(),
            source,
        })?;
    // The fleet's announcements arrive in the inbox: read them, or they would fill the prefetch
    // window ahead of the answers.
    let mut inbox = vpp.inbox().expect("a new client has its inbox");
    tokio::spawn(async move {
        while let Some(incoming) = inbox.next().await {
            incoming.ack();
        }
    });
    let rss0 = rss_kib();
    let started = Instant::now();
    let (fleet, kib_per_heh) = match placement {
        FleetPlacement::InProcess(progress) => {
            let fleet = activation_fleet(std::slice::from_ref(profile), 0, hehs, progress).await?;
            let kib = rss_kib().saturating_sub(rss0) as f64 / hehs.max(1) as f64;
            (Some(fleet), kib)
        }
        FleetPlacement::External(ready) => (None, ready.await?),
    };
    let connect_seconds = started.elapsed().as_secs_f64();
    // Each HEH announces itself with four messages; let the VPP read them all first, so the
    // burst measures activations, not a backlog of announcements ahead of the answers.
    let announced = 4 * hehs as u64;
    let wait = Instant::now();
    while vpp.counters().received < announced && wait.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    note(&format!(
        "the VPP read {} announcements in {:.1} s",
        vpp.counters().received,
        wait.elapsed().as_secs_f64()
    ));
    let quiet = wait_until_quiet(&watch.roles.broker, watch.quiet_wait, note).await;
    note("the burst starts");
    if let VppPlayer::Command(command) = player {
        // Our VPP leaves its inbox empty (every announcement acknowledged) to the command.
        vpp.close(Duration::from_secs(5)).await;
        let cpu = CpuWatch::start(watch.roles.clone());
        let ran = run_vpp_command(
            command,
            at.path,
            hehs,
            publish_connections,
            watch.wait,
            note,
        )
        .await;
        let cpu = cpu.split();
        if let Some(fleet) = fleet {
            fleet.close(Duration::from_secs(5)).await;
        }
        let printed = ran?;
        let number = |key: &str| printed.get(key).and_then(serde_json::Value::as_f64);
        let mut report = ActivationReport::of_burst(
            hehs,
            connect_seconds,
            number("seconds").unwrap_or(0.0),
            Answers::default(),
            watch.wait,
        );
        report.answered = number("answered").unwrap_or(0.0) as u64;
        report.last_answer_seconds = number("last_answer_seconds");
        // The command's start and connection are inside this window.
        report.cpu = Some(cpu);
        if let Some(trips) = printed
            .get("round_trip_ms")
            .and_then(|v| serde_json::from_value::<[f64; 4]>(v.clone()).ok())
        {
            report.round_trip_ms = trips;
        }
        report.kib_per_heh = kib_per_heh;
        report.quiet = quiet;
        report.vpp_command = Some(serde_json::json!({ "command": command, "printed": printed }));
        return Ok(report);
    }
    let burst = Instant::now();
    let all_confirmed = vpp.counters().confirmed + hehs as u64;
    let mut confirmed_at = {
        let vpp = vpp.clone();
        tokio::spawn(async move {
            while vpp.counters().confirmed < all_confirmed {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            burst.elapsed().as_secs_f64()
        })
    };
    let cpu = CpuWatch::start(watch.roles.clone());
    let answers = activate_each(&vpp, (0..hehs).map(bench_heh), watch.wait).await;
    let seconds = burst.elapsed().as_secs_f64();
    let cpu = cpu.split();
    // The last confirms may come after the last answer: a queue delivers before its disk sync.
    let confirmed_seconds =
        match tokio::time::timeout(Duration::from_secs(10), &mut confirmed_at).await {
            Ok(seconds) => seconds.ok(),
            Err(_) => {
                confirmed_at.abort();
                None
            }
        };
    if let Some(fleet) = fleet {
        fleet.close(Duration::from_secs(5)).await;
    }
    let vpp_counters = vpp.counters();
    vpp.close(Duration::from_secs(5)).await;
    Ok(ActivationReport {
        vpp: vpp_counters,
        kib_per_heh,
        confirmed_seconds,
        quiet,
        cpu: Some(cpu),
        ..ActivationReport::of_burst(hehs, connect_seconds, seconds, answers, watch.wait)
    })
}

/// Sends one activation to each of `hehs` at once through `vpp` and waits for the answers (each at
/// most `timeout`).
async fn activate_each(
    vpp: &Client,
    hehs: impl Iterator<Item = EntityName>,
    timeout: Duration,
) -> Answers {
    let (from, to) = crate::vpp::activation_window();
    let burst = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for heh in hehs {
        let vpp = vpp.clone();
        tasks.spawn(async move {
            let t = Instant::now();
            let outcome = vpp
                .activate(&heh, &Activate::new(from, to, 1.0), timeout)
                .await;
            (outcome, t.elapsed(), burst.elapsed())
        });
    }
    let mut answers = Answers::with_capacity(tasks.len());
    while let Some(Ok((outcome, trip, at))) = tasks.join_next().await {
        if matches!(
            outcome,
            Ok(ActivationOutcome::Accepted(_)
                | ActivationOutcome::Rejected(_)
                | ActivationOutcome::Modified(_))
        ) {
            answers.answered(trip, at);
        }
    }
    answers
}

/// What a burst is given besides its fleet: how long the VPP waits for answers, and whose CPU
/// to account for (see [`CpuWatch`]).
#[derive(Debug, Clone)]
pub struct BurstWatch {
    /// How long the VPP waits for answers, from the first activate.
    pub wait: Duration,
    /// The longest wait for a quiet broker before the burst (zero: none).
    pub quiet_wait: Duration,
    /// The processes whose CPU the burst's report splits.
    pub roles: Roles,
}

/// The longest a burst waits for the broker to be quiet once the fleet is connected, unless
/// told otherwise ([`BurstWatch::quiet_wait`]).
pub const QUIET_AT_MOST: Duration = Duration::from_secs(120);

/// The VPP's default wait for answers: a minute.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// Our Rust VPP as a command of [`run_vpp_command`] (`ebadge bench vpp-child`, hidden): the
/// burst of [`burst`] in a process of its own, told what to do by the environment, so that
/// it is measured as a VPP in another language is (its own CPU included). Returns the JSON
/// object to print.
pub async fn vpp_child() -> Result<serde_json::Value, BenchError> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| FleetError::Process(format!("${name} is not set")))
    };
    let profile = Profile::load(std::path::Path::new(&var("EBADGE_PROFILE")?))
        .map_err(|e| FleetError::Process(format!("the profile: {e}")))?;
    let name = EntityName::new(&var("EBADGE_BENCH_VPP")?)
        .map_err(|e| FleetError::Process(e.to_string()))?;
    let names = std::fs::read_to_string(var("EBADGE_BENCH_HEHS")?)
        .map_err(|e| FleetError::Process(format!("the HEHs' names: {e}")))?;
    let hehs: Vec<EntityName> = names
        .split_whitespace()
        .map(EntityName::new)
        .collect::<Result<_, _>>()
        .map_err(|e| FleetError::Process(e.to_string()))?;
    let timeout = var("EBADGE_BENCH_TIMEOUT")
        .ok()
        .and_then(|t| t.parse().ok())
        .map_or(DEFAULT_WAIT, Duration::from_secs_f64);
    let mut config = ClientConfig::new(profile, name.clone());
    config.publish_connections = var("EBADGE_BENCH_PUBLISH_CONNECTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let vpp = Client::connect(config)
        .await
        .map_err(connect_error(name.as_str()))?;
    let mut inbox = vpp.inbox().expect("a new client has its inbox");
    tokio::spawn(async move {
        while let Some(incoming) = inbox.next().await {
            incoming.ack();
        }
    });
    let sent = hehs.len();
    let (cpu0, burst) = (cpu_seconds(), Instant::now());
    let Answers { mut trips, last } = activate_each(&vpp, hehs.into_iter(), timeout).await;
    let (seconds, cpu) = (burst.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let answered = trips.len();
    let p = percentiles(&mut trips, &[50.0, 90.0, 99.0, 100.0]);
    let round_trip_ms = [p[0], p[1], p[2], p[3]].map(|ns| ns as f64 / 1e6);
    vpp.close(Duration::from_secs(5)).await;
    Ok(serde_json::json!({
        "vpp": "ebadge-bus (Rust)",
        "sent": sent,
        "answered": answered,
        "seconds": seconds,
        "last_answer_seconds": last.map(|d| d.as_secs_f64()),
        "round_trip_ms": round_trip_ms,
        "burst_cpu_seconds": cpu,
        "cpu_seconds": cpu_seconds(),
    }))
}

/// Runs `command` (by `sh -c`) as the benchmark VPP against a connected fleet of `hehs` HEHs,
/// and returns the JSON object it printed last on its standard output.
///
/// It is told, in its environment: `EBADGE_PROFILE` (the profile's file: the broker's address,
/// the CA and the certificates' directory), `EBADGE_BENCH_VPP` (the VPP's name, whose
/// certificate it connects with), `EBADGE_BENCH_HEHS` (a file naming the HEHs, one a line),
/// `EBADGE_BENCH_TIMEOUT` (seconds to wait for each answer) and
/// `EBADGE_BENCH_PUBLISH_CONNECTIONS` (what our VPP would publish on). It sends one `activate`
/// to each HEH at once and awaits the answers (the fleet accepts every order), then prints one
/// JSON object with at least `seconds` (first activate sent → last answer received) and
/// `answered`; `last_answer_seconds`, `round_trip_ms` (p50, p90, p99, max) and `cpu_seconds` if it measured them. Its
/// standard error passes through.
pub async fn run_vpp_command(
    command: &str,
    profile_path: &std::path::Path,
    hehs: usize,
    publish_connections: usize,
    wait: Duration,
    note: &dyn Fn(&str),
) -> Result<serde_json::Value, FleetError> {
    let failed = |what: String| FleetError::Process(what);
    let names = tempfile::NamedTempFile::new()
        .map_err(|e| failed(format!("a file for the HEHs' names: {e}")))?;
    let list: String = (0..hehs).map(|i| format!("{}\n", bench_heh(i))).collect();
    std::fs::write(names.path(), list)
        .map_err(|e| failed(format!("writing the HEHs' names: {e}")))?;
    let profile_path = std::path::absolute(profile_path)
        .map_err(|e| failed(format!("the profile's path: {e}")))?;
    note(&format!("the VPP is `{command}`"));
    let started = Instant::now();
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("EBADGE_PROFILE", &profile_path)
        .env("EBADGE_BENCH_VPP", BENCH_VPP)
        .env("EBADGE_BENCH_HEHS", names.path())
        .env("EBADGE_BENCH_TIMEOUT", wait.as_secs_f64().to_string())
        .env(
            "EBADGE_BENCH_PUBLISH_CONNECTIONS",
            publish_connections.to_string(),
        )
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| failed(format!("starting `{command}`: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(failed(format!(
            "the VPP command `{command}` failed ({}); its output: {stdout}",
            output.status
        )));
    }
    let printed = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| {
            failed(format!(
                "the VPP command `{command}` printed no JSON object: {stdout:?}"
            ))
        })?;
    note(&format!(
        "the VPP command ended after {:.1} s (its start and connection included)",
        started.elapsed().as_secs_f64()
    ));
    Ok(printed)
}
