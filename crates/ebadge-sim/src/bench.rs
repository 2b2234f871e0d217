//! The three performance figures of D3.2.3 2.1 as benchmark drivers: ingest at a VPP, a burst of
//! activations answered by an HEH fleet, and the cost of one HEH. Each returns a report that the
//! `ebadge bench` command prints (or emits as JSON).

use crate::fleet::Fleet;
use crate::heh::{HehSpec, Policy};
use crate::measure::{CpuWatch, cpu_seconds, percentiles, rss_kib, unix_nanos, wait_until_quiet};
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments,
};
use ebadge_admin::broker::LocalBroker;
use ebadge_admin::local;
use ebadge_admin::mgmt::admin_client;
use ebadge_admin::profile::Management;
use ebadge_admin::registry::{Builder, QueueType};
use ebadge_bus::conventions::{inbox_queue, pair_exchange};
use ebadge_bus::{ActivationOutcome, Client, ClientConfig, EntityName, Profile};
use ebadge_model::{Activate, Message};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The benchmark VPP.
pub const BENCH_VPP: &str = "bench-vpp";

/// Why a benchmark could not run, saying what failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The fleet, or one of the benchmark's processes, failed.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    /// A participant could not connect.
    #[error("{who} could not connect: {source}")]
    Connect {
        /// The entity.
        who: String,
        /// Why.
        source: ebadge_bus::ConnectError,
    },
    /// The broker refused a step of a raw (amqprs) participant.
    #[error("{what}: {source}")]
    Broker {
        /// What was being done.
        what: &'static str,
        /// The broker's answer.
        source: amqprs::error::Error,
    },
    /// Our client refused a message.
    #[error("sending: {0}")]
    Send(#[from] ebadge_bus::SendError),
    /// The local broker or the benchmark registry could not be made ready.
    #[error(transparent)]
    Local(#[from] ebadge_admin::local::LocalError),
    /// The registry of the benchmark is invalid (a bug).
    #[error(transparent)]
    Registry(#[from] ebadge_admin::registry::RegistryError),
    /// The management API failed.
    #[error(transparent)]
    Api(#[from] ebadge_admin::mgmt::ApiError),
    /// The local broker's directory or processes failed.
    #[error(transparent)]
    LocalBroker(#[from] ebadge_admin::broker::BrokerError),
}

fn broker(what: &'static str) -> impl FnOnce(amqprs::error::Error) -> BenchError {
    move |source| BenchError::Broker { what, source }
}

fn connect_error(who: &str) -> impl FnOnce(ebadge_bus::ConnectError) -> BenchError + '_ {
    move |source| BenchError::Connect {
        who: who.to_owned(),
        source,
    }
}

/// The benchmark VPP's name.
pub fn bench_vpp() -> EntityName {
    EntityName::new(BENCH_VPP).expect("BENCH_VPP is a valid name")
}

/// Benchmark HEH `i` (`heh-0b0000xxxxxx`).
pub fn bench_heh(i: usize) -> EntityName {
    EntityName::new(&format!("heh-0b0000{i:06x}")).expect("bench HEH names follow the rule")
}

/// The registry of the benchmarks: one VPP controlling `hehs` HEHs.
pub fn registry(hehs: usize, queue_type: QueueType) -> Builder {
    (0..hehs).fold(
        Builder::new()
            .comment("Written by `ebadge bench`.")
            .queue_type(queue_type)
            .entity(BENCH_VPP, None),
        |registry, i| registry.heh(bench_heh(i).as_str(), BENCH_VPP),
    )
}

/// A local broker made ready for a benchmark.
#[derive(Debug)]
pub struct Prepared {
    /// The profile the benchmark's entities connect with.
    pub profile: Profile,
    /// Its file, for the benchmark's other processes.
    pub profile_path: std::path::PathBuf,
    /// The administrator's account.
    pub management: Management,
    /// Broker items provisioning added or changed (0 when the broker already had the registry).
    pub provisioned: usize,
    /// Each node's own address, on a local cluster (empty on one node): fleet processes
    /// connect straight to them, as haproxy holds fewer connections than a big fleet.
    pub node_urls: Vec<String>,
    /// The nodes' process ids (for the CPU split of a burst).
    pub node_pids: Vec<u32>,
}

/// Brings the local broker in `dir` up and adds the benchmark registry (`hehs` HEHs and
/// their VPP, inboxes of `queue_type`) with certificates; `progress` gets (done, total) broker
/// items while provisioning runs.
pub async fn prepare(
    dir: &std::path::Path,
    hehs: usize,
    queue_type: QueueType,
    progress: impl FnMut(usize, usize),
) -> Result<Prepared, BenchError> {
    let broker = LocalBroker::new(dir);
    let registry = registry(hehs, queue_type).build()?;
    let ready = local::provision(
        &broker,
        &Default::default(),
        &registry,
        local::Others::Keep,
        progress,
    )
    .await?;
    let nodes = broker.status()?.nodes;
    let node_pids = nodes.iter().filter_map(|n| n.pid).collect();
    Ok(Prepared {
        profile: ready.profile,
        profile_path: broker.profile_path(),
        management: ready.management,
        provisioned: ready.plan.add.len() + ready.plan.change.len(),
        node_urls: if nodes.len() > 1 {
            nodes.into_iter().map(|n| n.amqps_url).collect()
        } else {
            Vec::new()
        },
        node_pids,
    })
}

/// Empties the benchmark VPP's inbox (left over from an earlier run or the previous figure).
pub async fn purge_vpp_inbox(management: &Management) -> Result<(), BenchError> {
    admin_client(management)
        .purge_queue("/", &inbox_queue(&bench_vpp()))
        .await
        .map_err(|e| ebadge_admin::mgmt::ApiError::new("purging the benchmark inbox", e))?;
    Ok(())
}

/// Waits, up to `patience`, until the broker (every node of it) holds no client connection,
/// and returns how many it still held. The ceiling runs after ours and must not connect while
/// the nodes still tear our fleet down (whose sockets also count against their file limits).
pub async fn wait_until_no_connections(
    management: &Management,
    patience: Duration,
) -> Result<u64, BenchError> {
    let client = admin_client(management);
    let deadline = Instant::now() + patience;
    loop {
        let overview = client
            .overview()
            .await
            .map_err(|e| ebadge_admin::mgmt::ApiError::new("reading the broker's overview", e))?;
        let left = overview.object_totals.connections;
        if left == 0 || Instant::now() >= deadline {
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A report body carrying its send time (ns since the epoch) in an extension field.
pub fn stamped_report(sent_ns: u64) -> Message {
    Message::decode(&format!(
        r#"{{"msg":"report","from":"2013-07-21T10:00:00Z","to":"2013-07-21T10:01:00Z","resolution":60,"values":{{"total.p":[1.73]}},"heh_id":null,"ext_bench_sent_ns":{sent_ns}}}"#
    ))
    .expect("the benchmark report is valid")
}

/// What the consuming VPP process measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConsumerReport {
    /// `ebadge` (decode, validate, dedupe, ack through our client) or `raw-amqprs` (ack only).
    pub mode: String,
    /// Messages received.
    pub received: u64,
    /// From the first to the last message, seconds.
    pub seconds: f64,
    /// Sustained rate.
    pub msgs_per_s: f64,
    /// Publish→consume latency percentiles p50, p90, p99, max (ms).
    pub latency_ms: [f64; 4],
    /// CPU seconds of the consumer process during the run.
    pub cpu_seconds: f64,
    /// CPU per message (µs).
    pub cpu_us_per_msg: f64,
    /// Peak resident memory of the consumer process (KiB).
    pub rss_kib: u64,
    /// Whether its client ran with metrics on ([`METRICS_ENV`]).
    #[serde(default)]
    pub metrics: bool,
}

/// Set (to anything) in the environment of `ebadge bench ingest|heh` to run the measured client
/// (the consuming VPP, the HEH) with metrics on: watched, served on a free port and scraped every
/// second (15 times as often as deploy/prometheus does), for measuring what metrics cost.
pub const METRICS_ENV: &str = "EBADGE_BENCH_METRICS";

/// A measured client's metrics and their scraper, while the benchmark runs.
struct ScrapedMetrics {
    _server: ebadge_bus::metrics::MetricsServer,
    scraper: tokio::task::JoinHandle<()>,
}

impl ScrapedMetrics {
    /// With [`METRICS_ENV`] set: watches `client`, serves its metrics and scrapes them every
    /// second.
    async fn if_asked(entity: &str, client: &Client) -> Option<ScrapedMetrics> {
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

/// Consumes `count` messages as the benchmark VPP and measures (run in its own process).
/// `raw` consumes with amqprs directly: no decoding, no dedupe, the ceiling.
pub async fn consume(
    profile: &Profile,
    count: u64,
    raw: bool,
    ready: impl FnOnce(),
) -> Result<ConsumerReport, BenchError> {
    let cpu0 = cpu_seconds();
    let mut observed = None;
    let mut latencies = Vec::with_capacity(count as usize);
    let (mut first, mut last) = (None, Instant::now());
    if raw {
        let conn = ebadge_bus::connect(profile, BENCH_VPP)
            .await
            .map_err(connect_error(BENCH_VPP))?;
        let channel = conn
            .open_channel(None)
            .await
            .map_err(broker("opening a channel"))?;
        channel
            .basic_qos(BasicQosArguments::new(0, 1000, false))
            .await
            .map_err(broker("setting the prefetch"))?;
        let (_, mut rx) = channel
            .basic_consume_rx(BasicConsumeArguments::new(
                &inbox_queue(&bench_vpp()),
                "raw",
            ))
            .await
            .map_err(broker("consuming the inbox"))?;
        ready();
        while (latencies.len() as u64) < count {
            let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await else {
                break;
            };
            let now = unix_nanos();
            first.get_or_insert_with(Instant::now);
            last = Instant::now();
            if let (Some(deliver), Some(props)) = (d.deliver, d.basic_properties) {
                if let Some(sent) = props.message_id().and_then(|m| m.parse::<u64>().ok()) {
                    latencies.push(now.saturating_sub(sent));
                }
                let _ = channel
                    .basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false))
                    .await;
            }
        }
    } else {
        let mut config = ClientConfig::new(profile.clone(), bench_vpp());
        config.inbox_capacity = 2000;
        let client = Client::connect(config)
            .await
            .map_err(connect_error(BENCH_VPP))?;
        let mut inbox = client.inbox().expect("a new client has its inbox");
        observed = ScrapedMetrics::if_asked(BENCH_VPP, &client).await;
        ready();
        while (latencies.len() as u64) < count {
            let Ok(Some(incoming)) =
                tokio::time::timeout(Duration::from_secs(20), inbox.next()).await
            else {
                break;
            };
            let now = unix_nanos();
            first.get_or_insert_with(Instant::now);
            last = Instant::now();
            if let Some(sent) = incoming
                .message
                .extensions()
                .and_then(|e| e.get("ext_bench_sent_ns"))
                .and_then(|v| v.as_u64())
            {
                latencies.push(now.saturating_sub(sent));
            }
            incoming.ack();
        }
        client.close(Duration::from_secs(2)).await;
    }
    let received = latencies.len() as u64;
    let seconds = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let p = percentiles(&mut latencies, &[50.0, 90.0, 99.0, 100.0]);
    let cpu = cpu_seconds() - cpu0;
    Ok(ConsumerReport {
        mode: if raw { "raw-amqprs" } else { "ebadge" }.into(),
        received,
        seconds,
        msgs_per_s: if seconds > 0.0 {
            received as f64 / seconds
        } else {
            0.0
        },
        latency_ms: [p[0], p[1], p[2], p[3]].map(|ns| ns as f64 / 1e6),
        cpu_seconds: cpu,
        cpu_us_per_msg: if received > 0 {
            cpu * 1e6 / received as f64
        } else {
            0.0
        },
        rss_kib: rss_kib(),
        metrics: observed.is_some(),
    })
}

/// Publishes `per_heh` stamped reports from each of `hehs` publishers (own connections), at
/// `rate` messages a second in all, or flat out. With `raw`, through plain amqprs channels with
/// confirms but no outbox, validation or properties beyond user_id and message_id (the
/// ceiling); otherwise through our client, waiting for every confirm. Returns the seconds from
/// the moment all publishers were connected until the last one was done.
pub async fn publish(
    profile: &Profile,
    hehs: usize,
    per_heh: u64,
    raw: bool,
    rate: Option<f64>,
) -> Result<f64, BenchError> {
    let mut tasks = tokio::task::JoinSet::new();
    // Every publisher passes the gate, connected or not, so that a failed one cannot leave the
    // others waiting; the failure is reported when they are all done.
    let gate = Arc::new(tokio::sync::Barrier::new(hehs + 1));
    for i in 0..hehs {
        let (profile, gate) = (profile.clone(), gate.clone());
        tasks.spawn(async move {
            let name = bench_heh(i);
            if raw {
                let setup = raw_publisher(&profile, &name).await;
                gate.wait().await;
                let (conn, channel, mut acked) = setup?;
                let exchange = pair_exchange(&name, &bench_vpp());
                let mut pace = pacer(rate, hehs);
                for _ in 0..per_heh {
                    pace.tick().await;
                    let sent = unix_nanos();
                    let body = stamped_report(sent).to_json().into_bytes();
                    let mut props = amqprs::BasicProperties::default();
                    props
                        .with_persistence(true)
                        .with_message_id(&sent.to_string())
                        .with_user_id(name.as_str());
                    channel
                        .basic_publish(props, body, BasicPublishArguments::new(&exchange, "report"))
                        .await
                        .map_err(broker("publishing"))?;
                }
                let _ = tokio::time::timeout(
                    Duration::from_secs(120),
                    acked.wait_for(|n| *n >= per_heh),
                )
                .await;
                let _ = conn.close().await;
            } else {
                let config = ClientConfig::new(profile, name.clone());
                let client = Client::connect(config).await;
                gate.wait().await;
                let client = client.map_err(connect_error(name.as_str()))?;
                let mut pace = pacer(rate, hehs);
                for _ in 0..per_heh {
                    pace.tick().await;
                    client.send(&bench_vpp(), &stamped_report(unix_nanos()))?;
                }
                client.close(Duration::from_secs(120)).await;
            }
            Ok::<(), BenchError>(())
        });
    }
    gate.wait().await;
    let started = Instant::now();
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(started.elapsed().as_secs_f64()),
    }
}

/// A raw amqprs publisher in confirm mode, and the highest delivery tag confirmed so far.
async fn raw_publisher(
    profile: &Profile,
    name: &EntityName,
) -> Result<
    (
        amqprs::connection::Connection,
        amqprs::channel::Channel,
        tokio::sync::watch::Receiver<u64>,
    ),
    BenchError,
> {
    let conn = ebadge_bus::connect(profile, name.as_str())
        .await
        .map_err(connect_error(name.as_str()))?;
    let channel = conn
        .open_channel(None)
        .await
        .map_err(broker("opening a channel"))?;
    // Same guarantee as our layer: publisher confirms, waited for before closing.
    let (acked_tx, acked) = tokio::sync::watch::channel(0u64);
    channel
        .register_callback(ConfirmCounter(acked_tx))
        .await
        .map_err(broker("registering the confirm callback"))?;
    channel
        .confirm_select(amqprs::channel::ConfirmSelectArguments::default())
        .await
        .map_err(broker("selecting confirm mode"))?;
    Ok((conn, channel, acked))
}

/// Paces one of `hehs` publishers so that together they send `rate` messages a second (each
/// starting at a random phase, as independent HEHs would); flat out without a rate.
fn pacer(rate: Option<f64>, hehs: usize) -> tokio::time::Interval {
    let period = rate.map_or(Duration::from_nanos(1), |r| {
        Duration::from_secs_f64(hehs as f64 / r)
    });
    let start = tokio::time::Instant::now() + period.mul_f64(fastrand::f64());
    let mut interval = tokio::time::interval_at(start, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// Counts the highest confirmed delivery tag of a raw publisher.
struct ConfirmCounter(tokio::sync::watch::Sender<u64>);

#[async_trait::async_trait]
impl amqprs::callbacks::ChannelCallback for ConfirmCounter {
    async fn close(
        &mut self,
        _: &amqprs::channel::Channel,
        _: amqprs::CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn cancel(
        &mut self,
        _: &amqprs::channel::Channel,
        _: amqprs::Cancel,
    ) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(
        &mut self,
        _: &amqprs::channel::Channel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &amqprs::channel::Channel, ack: amqprs::Ack) {
        self.0.send_modify(|n| *n = (*n).max(ack.delivery_tag()));
    }
    async fn publish_nack(&mut self, _: &amqprs::channel::Channel, _: amqprs::Nack) {}
    async fn publish_return(
        &mut self,
        _: &amqprs::channel::Channel,
        _: amqprs::Return,
        _: amqprs::BasicProperties,
        _: Vec<u8>,
    ) {
    }
}

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
    /// burst ([`crate::measure::wait_until_quiet`]; none: the broker's processes are not on
    /// this machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet: Option<crate::measure::QuietWait>,
    /// Where the CPU went during the burst (first activate → last answer or end of the wait).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<crate::measure::CpuSplit>,
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
) -> Result<Fleet, crate::fleet::FleetError> {
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
pub async fn activations<F>(
    at: BurstProfile<'_>,
    hehs: usize,
    publish_connections: usize,
    placement: FleetPlacement<F>,
    (player, watch): (&VppPlayer, &BurstWatch),
    note: &dyn Fn(&str),
) -> Result<ActivationReport, crate::fleet::FleetError>
where
    F: std::future::Future<Output = Result<f64, crate::fleet::FleetError>>,
{
    let profile = at.profile;
    let mut config = ClientConfig::new(profile.clone(), bench_vpp());
    config.publish_connections = publish_connections;
    let vpp = Client::connect_patiently(config, crate::fleet::CONNECT_PATIENCE)
        .await
        .map_err(|source| crate::fleet::FleetError::Connect {
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
/// to account for (see [`crate::measure::CpuWatch`]).
#[derive(Debug, Clone)]
pub struct BurstWatch {
    /// How long the VPP waits for answers, from the first activate.
    pub wait: Duration,
    /// The longest wait for a quiet broker before the burst (zero: none).
    pub quiet_wait: Duration,
    /// The processes whose CPU the burst's report splits.
    pub roles: crate::measure::Roles,
}

/// The longest a burst waits for the broker to be quiet once the fleet is connected, unless
/// told otherwise ([`BurstWatch::quiet_wait`]).
pub const QUIET_AT_MOST: Duration = Duration::from_secs(120);

/// The VPP's default wait for answers: a minute.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// Our Rust VPP as a command of [`run_vpp_command`] (`ebadge bench vpp-child`, hidden): the
/// burst of [`activations`] in a process of its own, told what to do by the environment, so that
/// it is measured as a VPP in another language is (its own CPU included). Returns the JSON
/// object to print.
pub async fn vpp_child() -> Result<serde_json::Value, BenchError> {
    let var = |name: &str| {
        std::env::var(name)
            .map_err(|_| crate::fleet::FleetError::Process(format!("${name} is not set")))
    };
    let profile = Profile::load(std::path::Path::new(&var("EBADGE_PROFILE")?))
        .map_err(|e| crate::fleet::FleetError::Process(format!("the profile: {e}")))?;
    let name = EntityName::new(&var("EBADGE_BENCH_VPP")?)
        .map_err(|e| crate::fleet::FleetError::Process(e.to_string()))?;
    let names = std::fs::read_to_string(var("EBADGE_BENCH_HEHS")?)
        .map_err(|e| crate::fleet::FleetError::Process(format!("the HEHs' names: {e}")))?;
    let hehs: Vec<EntityName> = names
        .split_whitespace()
        .map(EntityName::new)
        .collect::<Result<_, _>>()
        .map_err(|e| crate::fleet::FleetError::Process(e.to_string()))?;
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
) -> Result<serde_json::Value, crate::fleet::FleetError> {
    let failed = |what: String| crate::fleet::FleetError::Process(what);
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

/// The cost of one HEH.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HehReport {
    /// Reports sent (and confirmed).
    pub messages: u64,
    /// Seconds of sending.
    pub seconds: f64,
    /// CPU seconds of the process while sending (for `--agent` and `--pika`: from the end of the
    /// warm-up, see [`crate::footprint::WARM_UP_SECONDS`]).
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
    /// Whether its client ran with metrics on ([`METRICS_ENV`]).
    #[serde(default)]
    pub metrics: bool,
}

/// One HEH sending `rate` reports a second for `seconds` (run in its own process, so CPU and
/// memory are the HEH's alone). The wire figures are filled in by the caller's proxy.
pub async fn heh(profile: &Profile, seconds: u64, rate: u64) -> Result<HehReport, BenchError> {
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
