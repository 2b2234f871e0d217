//! What a watched group of clients counts on its hot path beyond the clients' own counters
//! (messages by type, quarantined by reason, latencies). Apart from [`crate::metrics`], which
//! reads and serves them: the client's supervisor writes here without depending on the metrics
//! server (nor the server, through it, on the client's internals).

use crate::verdict::RejectClass;
use ebadge_model::{Message, MessageType};
use prometheus_client::metrics::histogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The latency buckets, in seconds: from a confirm on loopback (1 ms) to an outage's backlog
/// (5 min); 5 s, the activation deadline of D3.2.3 2.1, is a boundary.
const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The `type` label of extension messages (their names are not bounded).
const EXTENSION_TYPE: &str = "ext";

pub(crate) fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// What a watched group of clients counts on its hot path, beyond the clients' own counters.
#[derive(Debug)]
pub(crate) struct Observed {
    /// By [`type_index`].
    pub(crate) sent: Vec<AtomicU64>,
    pub(crate) received: Vec<AtomicU64>,
    /// By [`RejectClass::index`].
    pub(crate) quarantined: [AtomicU64; RejectClass::ALL.len()],
    pub(crate) publish_confirm: Histogram,
    /// By request type.
    pub(crate) round_trip: Mutex<BTreeMap<&'static str, Histogram>>,
}

/// A message's position in the per-type counts: its core type, or the last slot for extensions.
fn type_index(message: &Message) -> usize {
    // `MessageType::ALL` lists the variants in declaration order (one macro makes both).
    message
        .message_type()
        .map_or(MessageType::ALL.len(), |t| t as usize)
}

pub(crate) fn type_label(index: usize) -> &'static str {
    MessageType::ALL
        .get(index)
        .map_or(EXTENSION_TYPE, |t| t.as_str())
}

impl Observed {
    pub(crate) fn new() -> Self {
        let per_type = || {
            (0..=MessageType::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect()
        };
        Self {
            sent: per_type(),
            received: per_type(),
            quarantined: Default::default(),
            publish_confirm: latency_histogram(),
            round_trip: Mutex::default(),
        }
    }

    pub(crate) fn sent(&self, message: &Message) {
        self.sent[type_index(message)].fetch_add(1, Relaxed);
    }

    pub(crate) fn received(&self, message: &Message) {
        self.received[type_index(message)].fetch_add(1, Relaxed);
    }

    pub(crate) fn quarantined(&self, class: RejectClass) {
        self.quarantined[class.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn round_trip(&self, request: &Message, took: Duration) {
        self.round_trip
            .lock()
            .unwrap()
            .entry(type_label(type_index(request)))
            .or_insert_with(latency_histogram)
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_its_own_count_and_label() {
        for (i, t) in MessageType::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
            assert_eq!(type_label(i), t.as_str());
        }
        assert_eq!(type_label(MessageType::ALL.len()), EXTENSION_TYPE);
        let extension = Message::decode(r#"{"msg":"ext_x"}"#).unwrap();
        assert_eq!(type_index(&extension), MessageType::ALL.len());
    }
}
