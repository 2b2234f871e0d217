//! The ingest figure's driver: HEH publishers, each its own connection, sending stamped
//! reports, and the benchmark VPP consuming them in a process of its own; through our client,
//! or through raw amqprs ([`super::ceiling`]) for the ceiling.

use super::measure::{Arrivals, ScrapedMetrics, cpu_seconds, percentiles, rss_kib, unix_nanos};
use super::{BENCH_VPP, BenchError, bench_heh, bench_vpp, connect_error, stamped_report};
use ebadge_bus::{Client, ClientConfig, Profile};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Whether its client ran with metrics on ([`super::measure::METRICS_ENV`]).
    #[serde(default)]
    pub metrics: bool,
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
    let (mut arrivals, metrics) = if raw {
        (super::ceiling::consume(profile, count, ready).await?, false)
    } else {
        consume_ours(profile, count, ready).await?
    };
    let received = arrivals.count();
    let seconds = arrivals.seconds();
    let p = percentiles(&mut arrivals.latencies, &[50.0, 90.0, 99.0, 100.0]);
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
        metrics,
    })
}

/// Our client's side of [`consume`]: decodes, validates, dedupes and acknowledges each; says
/// whether its metrics were on.
async fn consume_ours(
    profile: &Profile,
    count: u64,
    ready: impl FnOnce(),
) -> Result<(Arrivals, bool), BenchError> {
    let mut arrivals = Arrivals::with_capacity(count as usize);
    let mut config = ClientConfig::new(profile.clone(), bench_vpp());
    config.inbox_capacity = 2000;
    let client = Client::connect(config)
        .await
        .map_err(connect_error(BENCH_VPP))?;
    let mut inbox = client.inbox().expect("a new client has its inbox");
    let observed = ScrapedMetrics::if_asked(BENCH_VPP, &client).await;
    ready();
    while arrivals.count() < count {
        let Ok(Some(incoming)) = tokio::time::timeout(Duration::from_secs(20), inbox.next()).await
        else {
            break;
        };
        let sent = incoming
            .message
            .extensions()
            .and_then(|e| e.get("ext_bench_sent_ns"))
            .and_then(|v| v.as_u64());
        arrivals.arrived(unix_nanos(), sent);
        incoming.ack();
    }
    client.close(Duration::from_secs(2)).await;
    Ok((arrivals, observed.is_some()))
}

/// Publishes `per_heh` stamped reports from each of `hehs` publishers (own connections), at
/// `rate` messages a second in all, or flat out. With `raw`, through plain amqprs channels with
/// confirms but no outbox, validation or properties beyond user_id and message_id (the
/// ceiling, [`super::ceiling::publish`]); otherwise through our client, waiting for every
/// confirm. Returns the seconds from the moment all publishers were connected until the last one
/// was done.
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
        // Made once the gate is passed: a random phase from then, not from the connection.
        let pace = move || pacer(rate, hehs);
        tasks.spawn(async move {
            let name = bench_heh(i);
            if raw {
                return super::ceiling::publish(&profile, &name, per_heh, &gate, pace).await;
            }
            let config = ClientConfig::new(profile, name.clone());
            let client = Client::connect(config).await;
            gate.wait().await;
            let client = client.map_err(connect_error(name.as_str()))?;
            let mut pace = pace();
            for _ in 0..per_heh {
                pace.tick().await;
                client.send(&bench_vpp(), &stamped_report(unix_nanos()))?;
            }
            client.close(Duration::from_secs(120)).await;
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
