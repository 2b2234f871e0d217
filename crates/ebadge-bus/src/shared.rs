//! What a client's handles and its supervisor task share: the configuration, the outbox, the
//! counters, the requests waiting for an answer, and the signals between them.

use crate::config::ClientConfig;
use crate::counters::CounterSnapshot;
use crate::counters::Counters;
use crate::incoming::Incoming;
use crate::metrics::Observed;
use crate::outbox::Outbox;
use ebadge_model::Message;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// What an awaited answer is matched by: an activation (its id and count) or a market request
/// (its `msg_id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PendingKey {
    Activation(String, u32),
    Market(String),
}

/// The state behind a [`crate::Client`] and its clones.
pub(crate) struct Shared {
    pub(crate) config: ClientConfig,
    pub(crate) outbox: Mutex<Outbox>,
    pub(crate) wake: Notify,
    pub(crate) progress: Notify,
    pub(crate) counters: Counters,
    /// Set once a [`crate::metrics::Metrics`] watches this client: the metrics-only counts.
    pub(crate) observed: OnceLock<Arc<Observed>>,
    pub(crate) pending: Mutex<HashMap<PendingKey, oneshot::Sender<Message>>>,
    pub(crate) connected: watch::Sender<bool>,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) ack_tx: mpsc::UnboundedSender<u64>,
    pub(crate) inbox_rx: Mutex<Option<mpsc::Receiver<Incoming>>>,
    pub(crate) supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    /// The counters now, and the age of the oldest message in the outbox.
    pub(crate) fn snapshot(&self) -> (CounterSnapshot, Option<Duration>) {
        let outbox = self.outbox.lock().unwrap();
        let counters = self.counters.snapshot(outbox.len(), outbox.dropped());
        (counters, outbox.oldest_age())
    }
}
