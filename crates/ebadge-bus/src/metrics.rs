//! Prometheus metrics of clients: what they sent, confirmed, received and quarantined, their
//! outbox, their connection, and how long confirms and request round trips take; served over
//! HTTP for a Prometheus server to scrape (`GET /metrics`, OpenMetrics text).
//!
//! Nothing is counted for metrics until a client is [watched](Metrics::watch): the client's own
//! counters ([`Client::counters`]) are read at scrape time, and the per-type counts and the
//! latency histograms are switched on by the watch (before it, one atomic load per message).
//!
//! A group of clients (a simulator's fleet of 20,000 HEHs) is watched under one `entity` label:
//! its samples are the group's totals, not one label set per client.
//!
//! ```no_run
//! # async fn demo(client: ebadge_bus::Client) -> std::io::Result<()> {
//! use ebadge_bus::metrics::Metrics;
//! let metrics = Metrics::new();
//! metrics.watch("vpp-1", std::slice::from_ref(&client));
//! let server = metrics.serve("127.0.0.1:9464".parse().unwrap()).await?;
//! println!("metrics at http://{}/metrics", server.address());
//! # Ok(()) }
//! ```
//!
//! The metric names (each with the label `entity`):
//!
//! | name | type | more labels |
//! | --- | --- | --- |
//! | `ebadge_clients` | gauge: clients in the group | |
//! | `ebadge_connected` | gauge: of them connected now | |
//! | `ebadge_messages_sent_total` | counter: accepted into the outbox | `type` |
//! | `ebadge_messages_received_total` | counter: valid, handed on (not duplicates) | `type` |
//! | `ebadge_messages_confirmed_total` | counter: confirmed by the broker | |
//! | `ebadge_messages_nacked_total` | counter: negative confirms | |
//! | `ebadge_messages_returned_total` | counter: returned unroutable (kept, retried) | |
//! | `ebadge_messages_republished_total` | counter: publishes repeated | |
//! | `ebadge_messages_failed_total` | counter: given up for good | |
//! | `ebadge_messages_dropped_total` | counter: dropped by the outbox cap | |
//! | `ebadge_messages_duplicate_total` | counter: redeliveries dropped by message_id | |
//! | `ebadge_messages_unhandled_total` | counter: no handler took them | |
//! | `ebadge_messages_quarantined_total` | counter: invalid (or rejected by the application), moved to the quarantine | `reason` |
//! | `ebadge_messages_quarantine_dropped_total` | counter: invalid, dropped after the quarantine kept refusing them | |
//! | `ebadge_reconnects_total` | counter: connections re-established | |
//! | `ebadge_channels_reopened_total` | counter: publishing channels replaced | |
//! | `ebadge_outbox_messages` | gauge: waiting for a confirm | |
//! | `ebadge_outbox_oldest_age_seconds` | gauge: the oldest waiting message's age | |
//! | `ebadge_publish_confirm_seconds` | histogram: `send` → broker confirm | |
//! | `ebadge_request_round_trip_seconds` | histogram: activation / market request → answer | `type` |
//!
//! `type` is a `msg` name of D3.1.3 (or `ext` for every extension type), `reason` one of
//! [`RejectClass`]: both bounded.

use crate::client::Client;
use crate::client_state::ClientState;
use crate::counters::CounterSnapshot;
use crate::observed::{Observed, type_label};
use ebadge_model::Message;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub use crate::verdict::RejectClass;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Clients watched under one `entity` label.
struct Group {
    entity: String,
    /// Held: a closed client's counters stay (frozen), so the group's counters never go down.
    clients: Vec<Arc<ClientState>>,
    observed: Arc<Observed>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("entity", &self.entity)
            .field("clients", &self.clients.len())
            .finish()
    }
}

/// What one group's clients add up to now.
struct Totals {
    clients: u64,
    connected: u64,
    counters: CounterSnapshot,
    oldest_age: Duration,
}

impl Group {
    fn totals(&self) -> Totals {
        let mut totals = Totals {
            clients: 0,
            connected: 0,
            counters: CounterSnapshot::default(),
            oldest_age: Duration::ZERO,
        };
        for shared in &self.clients {
            totals.clients += 1;
            totals.connected += u64::from(*shared.connected.borrow());
            let (snapshot, oldest) = shared.snapshot();
            totals.counters += snapshot;
            totals.oldest_age = totals.oldest_age.max(oldest.unwrap_or_default());
        }
        totals
    }
}

/// A set of watched clients and their metrics, encoded on demand. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    groups: Arc<Mutex<Vec<Group>>>,
}

impl Metrics {
    /// No client watched yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Watches `clients` under the label `entity="<entity>"`: their samples are summed (the
    /// oldest outbox age is their maximum), and from now on they count messages by type,
    /// quarantines by reason and latencies. A client watched twice counts in its first group.
    /// The metrics hold the clients' state: a closed client keeps counting in its group's
    /// totals (frozen, not connected), so counters never go down.
    pub fn watch(&self, entity: &str, clients: &[Client]) {
        let observed = Arc::new(Observed::new());
        let mut members = Vec::with_capacity(clients.len());
        for client in clients {
            let shared = client.shared();
            if shared.observed.set(observed.clone()).is_ok() {
                shared
                    .outbox
                    .lock()
                    .unwrap()
                    .observe_confirms(observed.publish_confirm.clone());
            }
            members.push(shared.clone());
        }
        self.groups.lock().unwrap().push(Group {
            entity: entity.to_owned(),
            clients: members,
            observed,
        });
    }

    /// A group without clients, for a program that receives messages by other means (`ebadge
    /// tap`): it counts what it is [told](Tally::received) as `ebadge_messages_received_total`.
    pub fn tally(&self, entity: &str) -> Tally {
        let observed = Arc::new(Observed::new());
        self.groups.lock().unwrap().push(Group {
            entity: entity.to_owned(),
            clients: Vec::new(),
            observed: observed.clone(),
        });
        Tally(observed)
    }

    /// The metrics now, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// Serves `GET /metrics` on `address` (port 0: a free port) until the returned server is
    /// dropped.
    pub async fn serve(&self, address: SocketAddr) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let metrics = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, &metrics).await {
                        tracing::debug!(error = %e, "a metrics request failed");
                    }
                });
            }
        });
        Ok(MetricsServer { address, task })
    }
}

/// Answers one HTTP request: the metrics for `GET /metrics`, 404 otherwise.
async fn answer(mut stream: tokio::net::TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    // The request line and headers; a scraper sends no body.
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..n]);
    }
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next(), parts.next().unwrap_or_default());
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        (Some(b"GET"), b"/metrics") => ("200 OK", CONTENT_TYPE, metrics.encode()),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "eBADGE metrics are at GET /metrics\n".to_owned(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// The received-message count of a group without clients ([`Metrics::tally`]).
#[derive(Debug, Clone)]
pub struct Tally(Arc<Observed>);

impl Tally {
    /// Counts one message received, by its type.
    pub fn received(&self, message: &Message) {
        self.0.received(message);
    }
}

/// A running metrics endpoint; dropping it stops it.
#[derive(Debug)]
pub struct MetricsServer {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn load(counts: &[AtomicU64]) -> Vec<u64> {
    counts.iter().map(|n| n.load(Relaxed)).collect()
}

/// A metric family read from `T`: its name, its help and how to read a group's value.
struct Described<T: ?Sized, V> {
    name: &'static str,
    help: &'static str,
    read: fn(&T) -> V,
}

/// Shorthand for the tables of [`Described`] families.
const fn described<T: ?Sized, V>(
    name: &'static str,
    help: &'static str,
    read: fn(&T) -> V,
) -> Described<T, V> {
    Described { name, help, read }
}

/// Writes one family: its descriptor, then one sample per label set.
fn family<'a, M: EncodeMetric + 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let groups = self.groups.lock().unwrap();
        fn entity(group: &Group) -> Vec<(&str, &str)> {
            vec![("entity", group.entity.as_str())]
        }
        let totals: Vec<(&Group, Totals)> = groups.iter().map(|g| (g, g.totals())).collect();

        let gauges: [Described<Totals, f64>; 4] = [
            described("ebadge_clients", "Clients in the group.", |t| {
                t.clients as f64
            }),
            described(
                "ebadge_connected",
                "Clients of the group connected to the broker now.",
                |t| t.connected as f64,
            ),
            described(
                "ebadge_outbox_messages",
                "Messages waiting in the outboxes for a broker confirm.",
                |t| t.counters.buffered as f64,
            ),
            described(
                "ebadge_outbox_oldest_age_seconds",
                "Age of the oldest message waiting in an outbox (0: none waits).",
                |t| t.oldest_age.as_secs_f64(),
            ),
        ];
        for Described {
            name,
            help,
            read: value,
        } in gauges
        {
            let samples = totals
                .iter()
                .map(|(g, t)| (entity(g), ConstGauge::new(value(t))));
            family(&mut encoder, name, help, MetricType::Gauge, samples)?;
        }

        let counters: [Described<CounterSnapshot, u64>; 12] = [
            described(
                "ebadge_messages_confirmed",
                "Messages the broker confirmed.",
                |c| c.confirmed,
            ),
            described(
                "ebadge_messages_nacked",
                "Negative confirms from the broker (a full queue refusing publishes, for one).",
                |c| c.nacked,
            ),
            described(
                "ebadge_messages_returned",
                "Publishes the broker returned as unroutable (kept and retried).",
                |c| c.returned,
            ),
            described(
                "ebadge_messages_republished",
                "Publishes repeated after a reconnect, a nack or a return.",
                |c| c.republished,
            ),
            described(
                "ebadge_messages_failed",
                "Messages given up for good (refused, or unconfirmed for longer than the message TTL).",
                |c| c.failed,
            ),
            described(
                "ebadge_messages_dropped",
                "Messages the outbox cap dropped, oldest first.",
                |c| c.dropped,
            ),
            described(
                "ebadge_messages_duplicate",
                "Redeliveries and republished copies dropped by message_id.",
                |c| c.duplicates,
            ),
            described(
                "ebadge_messages_unhandled",
                "Valid messages no handler took.",
                |c| c.unhandled,
            ),
            described(
                "ebadge_messages_without_message_id",
                "Valid messages without an AMQP message_id (no duplicate check possible).",
                |c| c.without_message_id,
            ),
            described(
                "ebadge_reconnects",
                "Connections re-established after a loss.",
                |c| c.reconnects,
            ),
            described(
                "ebadge_channels_reopened",
                "Publishing channels replaced on the same connection.",
                |c| c.channels_reopened,
            ),
            described(
                "ebadge_messages_quarantine_dropped",
                "Invalid messages the quarantine kept refusing (full or deleted): dropped, each logged.",
                |c| c.quarantine_dropped,
            ),
        ];
        for Described {
            name,
            help,
            read: value,
        } in counters
        {
            let samples = totals
                .iter()
                .map(|(g, t)| (entity(g), ConstCounter::new(value(&t.counters))));
            family(&mut encoder, name, help, MetricType::Counter, samples)?;
        }

        let by_type: [Described<Observed, Vec<u64>>; 2] = [
            described(
                "ebadge_messages_sent",
                "Messages the application sent (accepted into the outbox), by type.",
                |o| load(&o.sent),
            ),
            described(
                "ebadge_messages_received",
                "Valid messages received (duplicates not counted), by type.",
                |o| load(&o.received),
            ),
        ];
        for Described {
            name,
            help,
            read: pick,
        } in by_type
        {
            let samples = groups.iter().flat_map(|g| {
                pick(&g.observed).into_iter().enumerate().map(|(i, n)| {
                    let labels = vec![("entity", g.entity.as_str()), ("type", type_label(i))];
                    (labels, ConstCounter::new(n))
                })
            });
            family(&mut encoder, name, help, MetricType::Counter, samples)?;
        }

        let samples = groups.iter().flat_map(|g| {
            RejectClass::ALL.iter().map(|class| {
                let labels = vec![("entity", g.entity.as_str()), ("reason", class.as_str())];
                let n = g.observed.quarantined[class.index()].load(Relaxed);
                (labels, ConstCounter::new(n))
            })
        });
        family(
            &mut encoder,
            "ebadge_messages_quarantined",
            "Invalid messages moved to the quarantine queue, by reason class.",
            MetricType::Counter,
            samples,
        )?;

        let samples = groups
            .iter()
            .map(|g| (entity(g), g.observed.publish_confirm.clone()));
        family(
            &mut encoder,
            "ebadge_publish_confirm_seconds",
            "From send (accepted into the outbox) to the broker's confirm, outages included.",
            MetricType::Histogram,
            samples,
        )?;

        let round_trips: Vec<(&str, Vec<(&str, Histogram)>)> = groups
            .iter()
            .map(|g| {
                let by_type = g.observed.round_trip.lock().unwrap();
                let by_type = by_type.iter().map(|(t, h)| (*t, h.clone())).collect();
                (g.entity.as_str(), by_type)
            })
            .collect();
        let samples = round_trips.iter().flat_map(|(entity, by_type)| {
            by_type
                .iter()
                .map(|(t, h)| (vec![("entity", *entity), ("type", *t)], h.clone()))
        });
        family(
            &mut encoder,
            "ebadge_request_round_trip_seconds",
            "From sending an activation or a market request to its answer, by request type.",
            MetricType::Histogram,
            samples,
        )
    }
}
