//! Counters of the client, readable at any time: what was sent, confirmed, buffered, republished,
//! returned, given up, received, dropped as duplicate, quarantined.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters (shared by the client's tasks).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) confirmed: AtomicU64,
    pub(crate) republished: AtomicU64,
    pub(crate) nacked: AtomicU64,
    pub(crate) returned: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) without_message_id: AtomicU64,
    pub(crate) channels_reopened: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) quarantined: AtomicU64,
    pub(crate) quarantine_dropped: AtomicU64,
    pub(crate) unhandled: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CounterSnapshot {
    /// Messages the application sent (accepted into the outbox).
    pub sent: u64,
    /// Messages the broker confirmed.
    pub confirmed: u64,
    /// Messages waiting in the outbox for a confirm now.
    pub buffered: u64,
    /// Messages the outbox cap dropped (oldest first).
    pub dropped: u64,
    /// Publishes repeated after a reconnect or a nack.
    pub republished: u64,
    /// Negative confirms from the broker for the application's messages (e.g. a full queue
    /// refusing publishes); a full quarantine's refusals count in `quarantine_dropped` when
    /// they end in a drop.
    pub nacked: u64,
    /// Publishes the broker returned because no queue was bound for them (kept and retried).
    pub returned: u64,
    /// Messages given up for good, each with its reason ([`Client::undelivered`](crate::Client::undelivered)).
    pub failed: u64,
    /// Successful reconnections after a loss.
    pub reconnects: u64,
    /// Publishing channels replaced on the same connection: closed by the broker over a refused
    /// publish, or getting nothing but nacks for two seconds.
    pub channels_reopened: u64,
    /// Valid messages handed to the application.
    pub received: u64,
    /// Redeliveries and republished copies dropped by message_id.
    pub duplicates: u64,
    /// Invalid incoming messages moved to the quarantine queue.
    pub quarantined: u64,
    /// Invalid incoming messages the quarantine kept refusing (full, or deleted), dropped after
    /// a few tries with backoff, each logged with its reason.
    pub quarantine_dropped: u64,
    /// Messages a handler did not handle.
    pub unhandled: u64,
    /// Valid messages the application refused ([`Incoming::reject`](crate::Incoming::reject):
    /// a handler failed on them), moved to the quarantine queue with the reason.
    pub rejected: u64,
    /// Valid messages that came without an AMQP message_id (clients of other stacks): nothing to
    /// drop duplicates by, so a redelivered copy reaches the application again.
    pub without_message_id: u64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn snapshot(&self, buffered: usize, dropped: u64) -> CounterSnapshot {
        CounterSnapshot {
            sent: self.sent.load(Relaxed),
            confirmed: self.confirmed.load(Relaxed),
            buffered: buffered as u64,
            dropped,
            republished: self.republished.load(Relaxed),
            nacked: self.nacked.load(Relaxed),
            returned: self.returned.load(Relaxed),
            failed: self.failed.load(Relaxed),
            without_message_id: self.without_message_id.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            channels_reopened: self.channels_reopened.load(Relaxed),
            received: self.received.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            quarantined: self.quarantined.load(Relaxed),
            quarantine_dropped: self.quarantine_dropped.load(Relaxed),
            unhandled: self.unhandled.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
        }
    }
}

impl std::ops::AddAssign for CounterSnapshot {
    /// Adds another client's counters (a group's totals).
    fn add_assign(&mut self, other: Self) {
        let CounterSnapshot {
            sent,
            confirmed,
            buffered,
            dropped,
            republished,
            nacked,
            returned,
            failed,
            reconnects,
            channels_reopened,
            received,
            duplicates,
            quarantined,
            quarantine_dropped,
            unhandled,
            rejected,
            without_message_id,
        } = other;
        self.sent += sent;
        self.confirmed += confirmed;
        self.buffered += buffered;
        self.dropped += dropped;
        self.republished += republished;
        self.nacked += nacked;
        self.returned += returned;
        self.failed += failed;
        self.reconnects += reconnects;
        self.channels_reopened += channels_reopened;
        self.received += received;
        self.duplicates += duplicates;
        self.quarantined += quarantined;
        self.quarantine_dropped += quarantine_dropped;
        self.unhandled += unhandled;
        self.rejected += rejected;
        self.without_message_id += without_message_id;
    }
}
