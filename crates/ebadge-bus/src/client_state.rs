//! What a client's handles and its supervisor task share: the configuration, the outbox, the
//! counters, the requests waiting for an answer, and the signals between them.

use crate::config::ClientConfig;
use crate::counters::CounterSnapshot;
use crate::counters::Counters;
use crate::incoming::{Incoming, Settle};
use crate::observed::Observed;
use crate::outbox::Outbox;
use crate::reception::PendingKey;
use ebadge_model::Message;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// The state behind a [`crate::Client`] and its clones.
pub(crate) struct ClientState {
    pub(crate) config: ClientConfig,
    pub(crate) outbox: Mutex<Outbox>,
    pub(crate) wake: Notify,
    pub(crate) progress: Notify,
    pub(crate) counters: Counters,
    /// Set once a [`crate::metrics::Metrics`] watches this client: the metrics-only counts.
    pub(crate) observed: OnceLock<Arc<Observed>>,
    pub(crate) pending: Mutex<HashMap<PendingKey, oneshot::Sender<Message>>>,
    pub(crate) connected: watch::Sender<bool>,
    /// Whether the inbox is being consumed now: a connection can be up while its inbox is not
    /// (its classic queue's node down, the queue deleted), and then nothing reaches us.
    pub(crate) consuming: watch::Sender<bool>,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) ack_tx: mpsc::UnboundedSender<Settle>,
    pub(crate) inbox_rx: Mutex<Option<mpsc::Receiver<Incoming>>>,
    pub(crate) supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl ClientState {
    /// The counters now, and the age of the oldest message in the outbox.
    pub(crate) fn snapshot(&self) -> (CounterSnapshot, Option<Duration>) {
        let outbox = self.outbox.lock().unwrap();
        let counters = self.counters.snapshot(outbox.len(), outbox.dropped());
        (counters, outbox.oldest_age())
    }
}
