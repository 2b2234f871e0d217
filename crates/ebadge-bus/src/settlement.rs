//! Settlement of publishes, with no I/O: which message is in flight under which delivery tag of
//! the publishing channel, and what the broker's answers do to it, to the outbox and to the retry
//! schedule. A confirm removes it from the outbox; a nack or a return (no queue bound: publishes
//! are `mandatory`) defers just that message with backoff; a channel the broker closes over one
//! publish (exchange not found, access refused) gives up the messages it names, with the reason.
//! Quarantine copies travel here too, apart from the application's outbox: their original is
//! acknowledged when the copy is confirmed, or when the quarantine refuses the copy (the copy is
//! then ours to retry with backoff, a few times, and dropped with a log line if it keeps being
//! refused): a full or refusing quarantine never holds the inbox's prefetch window.
//!
//! [`crate::publisher`] publishes what [`Settlement::due`] hands out on an amqprs channel and
//! feeds the broker's answers back in; the unit tests below feed them directly, in the orders the
//! broker tests provoke (confirms after a reconnect, multiple confirms, a return before its
//! confirm, a nack, a channel closed over a refused publish), in milliseconds.

use crate::backoff::Backoff;
use crate::conventions::{MESSAGE_TTL_MS, QUARANTINE_REASON_HEADER};
use crate::outbox::{Outbox, Outgoing};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// A copy of an invalid incoming message on its way to our quarantine queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuarantineCopy {
    /// The delivery tag of the original while the original is held unacknowledged (it is
    /// acknowledged when this copy is confirmed); `None` once it was acknowledged without
    /// waiting (the quarantine refused the copy, or too many originals were held already).
    pub(crate) original_tag: Option<u64>,
    /// The copy's own message_id (the original's is in a header).
    pub(crate) message_id: String,
    pub(crate) routing_key: String,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(String, String)>,
    /// When it goes out again after a refusal.
    pub(crate) retry: Backoff,
}

impl QuarantineCopy {
    /// A copy of a delivery (`original_tag`, when its original waits for it) with a new message id.
    pub(crate) fn new(
        original_tag: Option<u64>,
        routing_key: String,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
    ) -> Self {
        Self {
            original_tag,
            message_id: crate::conventions::new_message_id(),
            routing_key,
            body,
            headers,
            retry: Backoff::new(RETRY_MIN, RETRY_MAX),
        }
    }

    /// Why the original was quarantined (for the log line of a copy that is dropped).
    fn reason(&self) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == QUARANTINE_REASON_HEADER)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Refusals after which a quarantine copy is dropped (waits of 1, 2, 4, 8 and 16 s between).
pub(crate) const QUARANTINE_ATTEMPTS: u32 = 6;

/// Most refused quarantine copies waiting for their next try; past it a refused copy is dropped
/// at once (a peer flooding invalid messages while the quarantine refuses must not fill memory).
pub(crate) const QUARANTINE_BACKLOG: usize = 1_000;

/// Something to publish, in the order [`Settlement::due`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Publish {
    /// A quarantine copy, to `private-<me>-quarantine`.
    Quarantine(QuarantineCopy),
    /// An outbox message; `again` when it was published before (by this process or, with a
    /// durable outbox, by an earlier one). `size` is its body's length (the publisher takes the
    /// body out of `message`).
    Outbox {
        message: Outgoing,
        again: bool,
        size: usize,
    },
}

#[derive(Debug)]
enum Inflight {
    Outbox {
        seq: u64,
        message_id: String,
        exchange: String,
        /// Its body's length: a broker that refuses a message as too large names only its size.
        size: usize,
    },
    Quarantine(QuarantineCopy),
    /// A quarantine copy whose original's tag is void ([`Settlement::forget_quarantine`]): its
    /// answer settles nothing.
    Forgotten,
}

/// What one answer of the broker settled: counter increments, and the delivery tags of
/// originals to acknowledge (their quarantine copy is safe, or is ours now).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Settled {
    pub(crate) confirmed: u64,
    pub(crate) nacked: u64,
    pub(crate) returned: u64,
    pub(crate) failed: u64,
    /// Quarantine copies confirmed: invalid messages safe in the quarantine.
    pub(crate) quarantined: u64,
    /// Quarantine copies dropped after being refused too often (each logged with its reason).
    pub(crate) quarantine_dropped: u64,
    /// Whether the quarantine could not route a copy or closed the channel over it (its
    /// exchange, queue or binding may be gone: declare them again).
    pub(crate) quarantine_gone: bool,
    pub(crate) originals: Vec<u64>,
}

/// First wait before a refused message goes out again; doubles per refusal up to
/// [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Publishes handed out per call of [`Settlement::due`], so acks and deliveries keep flowing.
pub(crate) const PUBLISH_BATCH: usize = 2_000;

/// Refused (nacked or returned) outbox messages and when each goes out again. Outlives
/// channels and connections: a refusal is about the message, not the link.
#[derive(Debug, Default)]
struct Retries {
    entries: BTreeMap<u64, Retry>,
    /// The earliest `due` of the entries: `take_due` runs on every turn of the session loop and
    /// scans only when something is due.
    next_due: Option<Instant>,
}

#[derive(Debug)]
struct Retry {
    /// `None` while a copy is in flight.
    due: Option<Instant>,
    backoff: Backoff,
    first_refused: Instant,
}

impl Retries {
    /// Records a refusal of `seq`: when it goes out again, or `Err(how long)` once it has been
    /// refused for longer than the message TTL (the receiver would drop it as stale anyway).
    fn refused(&mut self, seq: u64, now: Instant) -> Result<Duration, Duration> {
        let entry = self.entries.entry(seq).or_insert(Retry {
            due: None,
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
            first_refused: now,
        });
        let refused_for = now - entry.first_refused;
        if refused_for >= Duration::from_millis(MESSAGE_TTL_MS) {
            self.entries.remove(&seq);
            return Err(refused_for);
        }
        let wait = entry.backoff.next_wait();
        entry.due = Some(now + wait);
        self.next_due = Some(self.next_due.map_or(now + wait, |d| d.min(now + wait)));
        Ok(wait)
    }

    fn is_deferred(&self, seq: u64) -> bool {
        self.entries.contains_key(&seq)
    }

    fn settled(&mut self, seq: u64) {
        self.entries.remove(&seq);
    }

    /// Sequence numbers due now; they are marked in flight.
    fn take_due(&mut self, now: Instant) -> Vec<u64> {
        if self.next_due.is_none_or(|d| d > now) {
            return Vec::new();
        }
        let mut due = Vec::new();
        self.next_due = None;
        for (seq, entry) in &mut self.entries {
            match entry.due {
                Some(at) if at <= now => {
                    entry.due = None;
                    due.push(*seq);
                }
                Some(at) => self.next_due = Some(self.next_due.map_or(at, |d| d.min(at))),
                None => {}
            }
        }
        due
    }

    /// One sequence number due now (the lowest), marked in flight.
    fn take_one_due(&mut self, now: Instant) -> Option<u64> {
        let (seq, entry) = self
            .entries
            .iter_mut()
            .find(|(_, e)| e.due.is_some_and(|at| at <= now))?;
        entry.due = None;
        Some(*seq)
    }

    /// Copies in flight on a channel that is gone go out again at once.
    fn channel_lost(&mut self, now: Instant) {
        for entry in self.entries.values_mut() {
            entry.due.get_or_insert(now);
        }
        if !self.entries.is_empty() {
            self.next_due = Some(now);
        }
    }
}

/// Which share of the outbox one publishing channel takes: the messages whose exchange hashes
/// to `index` of `count`. Every message for one exchange (one receiver, or one group) goes
/// through the same channel, so each receiver gets them in the order they were sent (tested
/// below: `lanes_share_the_outbox_each_exchange_on_one_lane_in_order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lane {
    index: usize,
    count: usize,
}

impl Lane {
    /// `count` lanes (at least one), covering every exchange once.
    pub(crate) fn all(count: usize) -> Vec<Lane> {
        let count = count.max(1);
        (0..count).map(|index| Lane { index, count }).collect()
    }

    /// Whether this lane publishes messages for `exchange`. FNV-1a: the same exchange gets the
    /// same lane in every process and after every restart.
    pub(crate) fn takes(&self, exchange: &str) -> bool {
        if self.count == 1 {
            return true;
        }
        let hash = exchange.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        (hash % self.count as u64) as usize == self.index
    }
}

/// The state of one publishing channel's share of the outbox ([`Lane`]): what is in flight on
/// the current channel, and what outlives channels (the retry schedule, the highest sequence
/// number ever published).
#[derive(Debug)]
pub(crate) struct Settlement {
    lane: Lane,
    /// Delivery tag the next publish gets on the current channel.
    next_tag: u64,
    inflight: BTreeMap<u64, Inflight>,
    /// Message ids the broker returned (unroutable), until their confirm arrives.
    returned: HashMap<String, String>,
    /// Highest outbox sequence number handed out on this channel, in order, or passed over as
    /// another lane's.
    sent_upto: u64,
    /// Highest outbox sequence number ever published: above it a publish is a first one.
    highest_published: u64,
    /// Quarantine copies to publish.
    quarantine: Vec<QuarantineCopy>,
    /// Quarantine copies refused, and when each goes out again (at a retry tick).
    quarantine_later: Vec<(Instant, QuarantineCopy)>,
    /// How many originals wait, unacknowledged, for their copy's confirm.
    holding: usize,
    /// Messages that were in flight when the broker closed the channel without naming what it
    /// refused: they go out one at a time until each is confirmed or found to be the culprit.
    suspects: BTreeSet<u64>,
    /// Negative confirms since the last positive one.
    nacks_since_ack: u64,
    retries: Retries,
}

impl Settlement {
    /// Nothing in flight yet; outbox messages up to `highest_published` count as published
    /// before (a durable outbox's leftovers from an earlier process). The only lane.
    #[cfg(test)]
    pub(crate) fn new(highest_published: u64) -> Self {
        Self::for_lane(Lane::all(1)[0], highest_published)
    }

    /// Like [`Self::new`], for the messages of `lane` only.
    pub(crate) fn for_lane(lane: Lane, highest_published: u64) -> Self {
        Self {
            lane,
            next_tag: 1,
            inflight: BTreeMap::new(),
            returned: HashMap::new(),
            sent_upto: 0,
            highest_published,
            quarantine: Vec::new(),
            quarantine_later: Vec::new(),
            holding: 0,
            suspects: BTreeSet::new(),
            nacks_since_ack: 0,
            retries: Retries::default(),
        }
    }

    /// The publishing channel is gone (replaced, or the connection lost): everything in flight
    /// on it goes out again on the next one, from tag 1 (receivers drop the copies that did
    /// arrive, by message id).
    pub(crate) fn channel_lost(&mut self, now: Instant) {
        for inflight in std::mem::take(&mut self.inflight).into_values() {
            if let Inflight::Quarantine(copy) = inflight {
                self.quarantine.push(copy);
            }
        }
        self.retries.channel_lost(now);
        self.next_tag = 1;
        self.returned.clear();
        self.sent_upto = 0;
        self.nacks_since_ack = 0;
    }

    /// The consuming channel is gone (or the whole connection): the delivery tags of the
    /// originals whose quarantine copies wait or fly are void, and acknowledging them on a new
    /// channel would acknowledge other messages. Those copies are forgotten; the broker delivers
    /// the unacknowledged originals again and they are quarantined again (an extra copy in the
    /// quarantine at worst, never a wrong acknowledgement). Copies whose original was
    /// acknowledged already are ours alone: they stay.
    pub(crate) fn forget_quarantine(&mut self) {
        self.quarantine.retain(|c| c.original_tag.is_none());
        for inflight in self.inflight.values_mut() {
            if matches!(inflight, Inflight::Quarantine(c) if c.original_tag.is_some()) {
                *inflight = Inflight::Forgotten;
            }
        }
        self.holding = 0;
    }

    /// Queues a quarantine copy for publishing.
    pub(crate) fn quarantine(&mut self, copy: QuarantineCopy) {
        if copy.original_tag.is_some() {
            self.holding += 1;
        }
        self.quarantine.push(copy);
    }

    /// How many originals wait unacknowledged for their copy's confirm: each takes a place in
    /// the inbox's prefetch window, so the session holds only a few (see
    /// [`crate::session`]'s `QUARANTINE_HOLD_MAX`).
    pub(crate) fn holding(&self) -> usize {
        self.holding
    }

    /// What to publish now, in order: quarantine copies, refused messages that are due, then
    /// the outbox after what this channel already has, at most [`PUBLISH_BATCH`] of those.
    /// The second value says whether the batch was full (more wait). Each item must be passed
    /// to [`Self::published`] once the channel took it, or back to [`Self::unpublished`].
    ///
    /// While suspects remain ([`Self::refused_for_good`] with no culprit named): one publish,
    /// and only when nothing is in flight, so that a channel the broker closes next names its
    /// culprit by being the only one; the application's messages go before quarantine copies,
    /// which cannot keep the suspects from being sent.
    pub(crate) fn due(&mut self, outbox: &Outbox, now: Instant) -> (Vec<Publish>, bool) {
        if !self.suspects.is_empty() {
            // Gone meanwhile (dropped by the cap, given up): no longer a suspect.
            self.suspects.retain(|seq| outbox.get(*seq).is_some());
        }
        let alone = !self.suspects.is_empty();
        if alone && !self.inflight.is_empty() {
            return (Vec::new(), false);
        }
        let mut due: Vec<Publish> = Vec::new();
        if !alone {
            due.extend(self.quarantine.drain(..).map(Publish::Quarantine));
        }
        let retries = if alone {
            self.retries.take_one_due(now).into_iter().collect()
        } else {
            self.retries.take_due(now)
        };
        for seq in retries {
            match outbox.get(seq) {
                Some(message) => due.push(Publish::Outbox {
                    size: message.body.len(),
                    message: message.clone(),
                    again: true,
                }),
                // Gone meanwhile (dropped by the cap): nothing to retry.
                None => self.retries.settled(seq),
            }
        }
        let batch = match (alone, due.is_empty()) {
            (false, _) => PUBLISH_BATCH,
            (true, true) => 1,
            (true, false) => 0,
        };
        let mut taken = 0;
        let mut scanned_upto = self.sent_upto;
        for m in outbox.after(self.sent_upto) {
            if taken == batch {
                break;
            }
            scanned_upto = m.seq;
            if self.lane.takes(&m.exchange) && !self.retries.is_deferred(m.seq) {
                due.push(Publish::Outbox {
                    size: m.body.len(),
                    message: m.clone(),
                    again: m.seq <= self.highest_published,
                });
                taken += 1;
            }
        }
        // Other lanes' messages are passed over once, not at every call. Safe before
        // `published`: a channel that fails to take what is handed out is replaced, and
        // `channel_lost` starts the scan again from the beginning.
        self.sent_upto = scanned_upto;
        if alone && due.is_empty() && !self.quarantine.is_empty() {
            due.push(Publish::Quarantine(self.quarantine.remove(0)));
        }
        (due, !alone && taken == PUBLISH_BATCH)
    }

    /// `publish` was handed out by [`Self::due`] but the channel did not take it (the
    /// connection failed): a quarantine copy goes back to the front of the queue, since
    /// nothing else keeps it; an outbox message is still in the outbox.
    pub(crate) fn unpublished(&mut self, publish: Publish) {
        if let Publish::Quarantine(copy) = publish {
            self.quarantine.insert(0, copy);
        }
    }

    /// `publish` went out on the channel: it is in flight under the next delivery tag.
    pub(crate) fn published(&mut self, publish: Publish) {
        let inflight = match publish {
            Publish::Quarantine(copy) => Inflight::Quarantine(copy),
            Publish::Outbox { message, size, .. } => {
                self.highest_published = self.highest_published.max(message.seq);
                // Refused messages go out again out of order; the in-order position moves only
                // with messages that were never deferred.
                if !self.retries.is_deferred(message.seq) {
                    self.sent_upto = self.sent_upto.max(message.seq);
                }
                Inflight::Outbox {
                    seq: message.seq,
                    message_id: message.message_id,
                    exchange: message.exchange,
                    size,
                }
            }
        };
        self.inflight.insert(self.next_tag, inflight);
        self.next_tag += 1;
    }

    fn settle(&mut self, tag: u64, multiple: bool) -> Vec<Inflight> {
        if multiple {
            let rest = self.inflight.split_off(&(tag + 1));
            std::mem::replace(&mut self.inflight, rest)
                .into_values()
                .collect()
        } else {
            self.inflight.remove(&tag).into_iter().collect()
        }
    }

    /// The broker returned a message: no queue is bound for it. Its confirm follows.
    pub(crate) fn returned(
        &mut self,
        message_id: Option<String>,
        exchange: &str,
        routing_key: &str,
    ) {
        if let Some(id) = message_id {
            self.returned.insert(
                id,
                format!("unroutable: no queue is bound for routing key {routing_key:?} on exchange {exchange:?} (the receiver's inbox is missing: ask the operator to provision it)"),
            );
        }
    }

    /// A positive confirm of `tag` (and every tag below it when `multiple`).
    pub(crate) fn confirmed(
        &mut self,
        outbox: &mut Outbox,
        tag: u64,
        multiple: bool,
        now: Instant,
    ) -> Settled {
        let mut settled = Settled::default();
        for inflight in self.settle(tag, multiple) {
            match inflight {
                Inflight::Forgotten => {}
                Inflight::Quarantine(copy) => {
                    if self.returned.remove(&copy.message_id).is_some() {
                        settled.quarantine_gone = true;
                        self.quarantine_refused(copy, "unroutable", now, &mut settled);
                    } else {
                        settled.quarantined += 1;
                        if let Some(original) = copy.original_tag {
                            self.holding -= 1;
                            settled.originals.push(original);
                        }
                    }
                }
                Inflight::Outbox {
                    seq, message_id, ..
                } => {
                    if let Some(reason) = self.returned.remove(&message_id) {
                        settled.returned += 1;
                        self.refuse(outbox, seq, &reason, now, &mut settled);
                        continue;
                    }
                    self.retries.settled(seq);
                    self.suspects.remove(&seq);
                    match outbox.confirm(seq) {
                        Ok(true) => settled.confirmed += 1,
                        Ok(false) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "could not remove a confirmed message from the outbox")
                        }
                    }
                }
            }
        }
        if settled.confirmed > 0 || settled.quarantined > 0 {
            self.nacks_since_ack = 0;
        }
        settled
    }

    /// A negative confirm: the broker did not take these messages (a full queue, a queue
    /// without leader). Each goes out again after its own backoff. Only the application's
    /// messages count in [`Settled::nacked`].
    pub(crate) fn nacked(
        &mut self,
        outbox: &mut Outbox,
        tag: u64,
        multiple: bool,
        now: Instant,
    ) -> Settled {
        let mut settled = Settled::default();
        for inflight in self.settle(tag, multiple) {
            match inflight {
                Inflight::Forgotten => {}
                // Not counted as nacks: a full quarantine must not make the channel look
                // refused and get it replaced (which republishes what it has in flight).
                Inflight::Quarantine(copy) => {
                    self.quarantine_refused(copy, "refused by the broker (nack)", now, &mut settled)
                }
                Inflight::Outbox { seq, .. } => {
                    settled.nacked += 1;
                    self.refuse(
                        outbox,
                        seq,
                        "refused by the broker (nack)",
                        now,
                        &mut settled,
                    );
                }
            }
        }
        self.nacks_since_ack += settled.nacked;
        settled
    }

    /// The quarantine refused `copy`: its original, if it still waits, is acknowledged (the
    /// copy is ours now, so the original no longer holds a place in the inbox's prefetch
    /// window), and the copy goes out again after its backoff, or is dropped with a log line
    /// after [`QUARANTINE_ATTEMPTS`] refusals or when [`QUARANTINE_BACKLOG`] copies wait already.
    fn quarantine_refused(
        &mut self,
        mut copy: QuarantineCopy,
        why: &str,
        now: Instant,
        settled: &mut Settled,
    ) {
        if let Some(original) = copy.original_tag.take() {
            self.holding -= 1;
            settled.originals.push(original);
        }
        let wait = copy.retry.next_wait();
        if copy.retry.attempts() >= QUARANTINE_ATTEMPTS
            || self.quarantine_later.len() >= QUARANTINE_BACKLOG
        {
            settled.quarantine_dropped += 1;
            tracing::error!(
                refused = %why,
                attempts = copy.retry.attempts(),
                waiting = self.quarantine_later.len(),
                reason = %copy.reason(),
                headers = ?copy.headers,
                "the quarantine keeps refusing: an invalid message is dropped (ask the operator to look at the quarantine queue: full, or deleted?)"
            );
            return;
        }
        self.quarantine_later.push((now + wait, copy));
    }

    /// The broker closed the channel over a publish it will never take (`code` 403, 404 or
    /// 406). The culprit leaves the outbox as undelivered, with the reason: the messages for the
    /// exchange the reply names, else the message of the size it names (too large), else, when
    /// the reply names neither, the one message in flight if only one was. Otherwise nothing is
    /// failed: what was in flight becomes suspect and goes out one at a time, until each is
    /// confirmed or refused alone. The rest go out again on the next channel. `quarantine` is
    /// our quarantine exchange: a copy refused there is retried with backoff (and its original
    /// acknowledged), like a nacked one.
    pub(crate) fn refused_for_good(
        &mut self,
        outbox: &mut Outbox,
        quarantine: &str,
        code: u16,
        text: &str,
        now: Instant,
    ) -> Settled {
        let reason = format!("refused by the broker: {code} {text}");
        let mut culprit = if let Some(exchange) = refused_exchange(text) {
            Culprit::Exchange(exchange.to_owned())
        } else if let Some(size) = refused_size(text) {
            Culprit::Size(size)
        } else if self.inflight.len() == 1 {
            Culprit::Alone
        } else {
            Culprit::Unknown
        };
        let mut settled = Settled::default();
        let mut kept = BTreeMap::new();
        for (tag, inflight) in std::mem::take(&mut self.inflight) {
            let guilty = match &inflight {
                Inflight::Forgotten => false,
                Inflight::Quarantine(copy) => culprit.is(quarantine, copy.body.len()),
                Inflight::Outbox { exchange, size, .. } => culprit.is(exchange, *size),
            };
            match inflight {
                Inflight::Forgotten => {}
                Inflight::Quarantine(copy) if guilty => {
                    settled.quarantine_gone = true;
                    self.quarantine_refused(copy, &reason, now, &mut settled)
                }
                Inflight::Outbox { seq, .. } if guilty => {
                    self.suspects.remove(&seq);
                    match outbox.fail(seq, reason.clone()) {
                        Ok(Some(_)) => settled.failed += 1,
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "could not record an undelivered message")
                        }
                    }
                }
                Inflight::Outbox { seq, .. } if culprit == Culprit::Unknown => {
                    self.suspects.insert(seq);
                    kept.insert(tag, inflight);
                }
                other => {
                    kept.insert(tag, other);
                }
            }
            if guilty && matches!(culprit, Culprit::Size(_) | Culprit::Alone) {
                // One message is the culprit of a size, not every message of that size.
                culprit = Culprit::Found;
            }
        }
        self.inflight = kept;
        if culprit == Culprit::Unknown {
            tracing::warn!(%reason, suspects = self.suspects.len(), "the broker refused a publish without naming it: publishing one at a time until it is found");
        } else {
            tracing::error!(%reason, messages = settled.failed, "messages given up: see Client::undelivered");
        }
        settled
    }

    fn refuse(
        &mut self,
        outbox: &mut Outbox,
        seq: u64,
        reason: &str,
        now: Instant,
        settled: &mut Settled,
    ) {
        // Answered, not the cause of a channel close: no longer a suspect.
        self.suspects.remove(&seq);
        match self.retries.refused(seq, now) {
            Ok(wait) => {
                tracing::warn!(seq, %reason, retry_in = ?wait, "message refused; it stays in the outbox")
            }
            Err(refused_for) => {
                let reason = format!(
                    "{reason}, again and again for {} s: given up (older than the message TTL)",
                    refused_for.as_secs()
                );
                match outbox.fail(seq, reason) {
                    Ok(Some(_)) => settled.failed += 1,
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "could not record an undelivered message")
                    }
                }
            }
        }
    }

    /// Whether anything of this lane waits on the session's retry tick: a publish in flight
    /// (its channel may need replacing if only nacks come), a refused message or quarantine
    /// copy waiting out its backoff, suspects. An idle lane needs no tick, so an idle client
    /// does not wake every second (20,000 idle HEHs in four processes woke 20,000 times a
    /// second for nothing).
    pub(crate) fn needs_tick(&self) -> bool {
        !self.inflight.is_empty()
            || !self.retries.entries.is_empty()
            || !self.quarantine.is_empty()
            || !self.quarantine_later.is_empty()
            || !self.suspects.is_empty()
            || self.nacks_since_ack > 0
    }

    /// Negative confirms since the last positive one (a channel that gets only these is
    /// replaced).
    pub(crate) fn nacks_since_ack(&self) -> u64 {
        self.nacks_since_ack
    }

    /// Whether quarantine copies wait to be published.
    pub(crate) fn quarantine_waiting(&self) -> bool {
        !self.quarantine.is_empty()
    }

    /// Whether quarantine copies are on their way: waiting to be published or in flight
    /// (not those waiting out a backoff).
    pub(crate) fn quarantine_pending(&self) -> bool {
        !self.quarantine.is_empty()
            || self
                .inflight
                .values()
                .any(|i| matches!(i, Inflight::Quarantine(_)))
    }

    /// Whether another copy may queue up for publishing: not while [`QUARANTINE_BACKLOG`]
    /// wait already (the channel is slow, or one message at a time goes out).
    pub(crate) fn quarantine_has_room(&self) -> bool {
        self.quarantine.len() < QUARANTINE_BACKLOG
    }

    /// The quarantine could not be declared (`why`): every copy waiting to be published is
    /// refused, as if the broker had refused it (its original acknowledged, the copy retried
    /// after its backoff, when the declaration is tried again).
    pub(crate) fn quarantine_unavailable(&mut self, why: &str, now: Instant) -> Settled {
        let mut settled = Settled::default();
        for copy in std::mem::take(&mut self.quarantine) {
            self.quarantine_refused(copy, why, now, &mut settled);
        }
        settled
    }

    /// The client is closing: the copies whose originals were acknowledged already are lost
    /// with this process (logged, and counted in the returned number); those still holding
    /// their originals are not (the broker delivers the originals again to the next run).
    pub(crate) fn abandon_quarantine(&mut self) -> u64 {
        let detached = |c: &QuarantineCopy| c.original_tag.is_none();
        let lost = self.quarantine.iter().filter(|c| detached(c)).count()
            + self.quarantine_later.len()
            + self
                .inflight
                .values()
                .filter(|i| matches!(i, Inflight::Quarantine(c) if detached(c)))
                .count();
        if lost > 0 {
            tracing::error!(
                lost,
                "closing with quarantine copies not confirmed: those invalid messages are lost (their originals were acknowledged)"
            );
        }
        self.quarantine.clear();
        self.quarantine_later.clear();
        lost as u64
    }

    /// The retry tick: refused quarantine copies whose wait is over go out again.
    pub(crate) fn tick(&mut self, now: Instant) {
        let (due, later) = std::mem::take(&mut self.quarantine_later)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.quarantine_later = later;
        self.quarantine.extend(
            due.into_iter()
                .map(|(_, copy): (Instant, QuarantineCopy)| copy),
        );
    }
}

/// Which publish in flight the broker refused when it closed the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Culprit {
    /// Every message for this exchange (the reply names it).
    Exchange(String),
    /// The first message of this size (the reply says it is too large).
    Size(usize),
    /// The only message in flight.
    Alone,
    /// The reply names nothing and several were in flight.
    Unknown,
    /// Found already (a size or a lone message): nothing else is guilty.
    Found,
}

impl Culprit {
    fn is(&self, exchange: &str, size: usize) -> bool {
        match self {
            Culprit::Exchange(e) => e == exchange,
            Culprit::Size(s) => *s == size,
            Culprit::Alone => true,
            Culprit::Unknown | Culprit::Found => false,
        }
    }
}

/// The size a channel-closing reply says was too large: RabbitMQ says "PRECONDITION_FAILED -
/// message size 5000000 is larger than configured max size 4194304".
fn refused_size(text: &str) -> Option<usize> {
    let start = text.find("message size ")? + "message size ".len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The exchange a channel-closing reply names: RabbitMQ says "NOT_FOUND - no exchange 'x' in
/// vhost '/'" or "ACCESS_REFUSED - access to exchange 'x' in vhost '/' refused for user 'u'".
fn refused_exchange(text: &str) -> Option<&str> {
    let start = text.find("exchange '")? + "exchange '".len();
    let len = text[start..].find('\'')?;
    Some(&text[start..start + len])
}

/// Longest wait between two reopenings of a publishing channel that gets only nacks.
const REOPEN_MAX: Duration = Duration::from_secs(30);

/// When a publishing channel that gets only nacks is replaced: after two retry ticks with
/// nothing but nacks, then again no sooner than a backoff later. After a quorum queue's leader
/// moved, a channel can stay refused while a new one is confirmed at once (seen on RabbitMQ
/// 3.10, a node killed under load); the backoff keeps a queue that refuses everything from
/// costing a channel a second.
#[derive(Debug)]
pub(crate) struct Reopen {
    at: Option<Instant>,
    backoff: Backoff,
    nacked_ticks: u32,
}

impl Default for Reopen {
    fn default() -> Self {
        Self {
            at: None,
            backoff: Backoff::new(Duration::from_secs(1), REOPEN_MAX),
            nacked_ticks: 0,
        }
    }
}

impl Reopen {
    /// The retry tick, with the lane's nacks since its last confirm: whether to replace its
    /// channel now. A tick without nacks starts the count and the backoff from zero.
    pub(crate) fn after_tick(&mut self, nacks_since_ack: u64, now: Instant) -> bool {
        if nacks_since_ack == 0 {
            self.nacked_ticks = 0;
            self.backoff.reset();
            return false;
        }
        self.nacked_ticks += 1;
        if self.nacked_ticks < 2 || self.at.is_some_and(|at| now < at) {
            return false;
        }
        self.at = Some(now + self.backoff.next_wait());
        self.nacked_ticks = 0;
        true
    }

    /// Whether it needs the retry tick: a lane that had nacks is ticked once more after they
    /// stop, so that its count and its backoff start from zero at the next incident.
    pub(crate) fn needs_tick(&self) -> bool {
        self.nacked_ticks > 0 || self.backoff.attempts() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUARANTINE: &str = "private-me-quarantine";

    fn outbox_with(exchanges: &[&str]) -> Outbox {
        let mut outbox = Outbox::in_memory(100);
        for (i, exchange) in exchanges.iter().enumerate() {
            outbox
                .push(Outgoing {
                    seq: 0,
                    exchange: (*exchange).into(),
                    routing_key: "report".into(),
                    message_id: format!("m{}", i + 1),
                    msg_type: "report".into(),
                    body: b"{}".to_vec(),
                    headers: Vec::new(),
                })
                .unwrap();
        }
        outbox
    }

    /// An outbox of messages for `exchanges`, all of them published on a fresh channel.
    fn all_published(exchanges: &[&str]) -> (Outbox, Settlement, Instant) {
        let outbox = outbox_with(exchanges);
        let mut s = Settlement::new(0);
        let now = Instant::now();
        publish_due(&mut s, &outbox, now);
        (outbox, s, now)
    }

    /// Hands out what is due and marks it published; returns the outbox seqs (0 for copies).
    fn publish_due(s: &mut Settlement, outbox: &Outbox, now: Instant) -> Vec<u64> {
        let (due, _) = s.due(outbox, now);
        due.into_iter()
            .map(|p| {
                let seq = match &p {
                    Publish::Outbox { message, .. } => message.seq,
                    Publish::Quarantine(_) => 0,
                };
                s.published(p);
                seq
            })
            .collect()
    }

    fn copy(original_tag: u64) -> QuarantineCopy {
        QuarantineCopy {
            message_id: format!("q{original_tag}"),
            ..QuarantineCopy::new(
                Some(original_tag),
                "report".into(),
                b"not json".to_vec(),
                Vec::new(),
            )
        }
    }

    #[test]
    fn lanes_share_the_outbox_each_exchange_on_one_lane_in_order() {
        let exchanges: Vec<String> = (0..40).map(|i| format!("vpp-to-heh-{}", i % 10)).collect();
        let refs: Vec<&str> = exchanges.iter().map(String::as_str).collect();
        let outbox = outbox_with(&refs);
        let now = Instant::now();
        let mut lanes: Vec<Settlement> = Lane::all(3)
            .into_iter()
            .map(|lane| Settlement::for_lane(lane, 0))
            .collect();
        let mut owner = std::collections::HashMap::new();
        let mut seen = Vec::new();
        for (index, lane) in lanes.iter_mut().enumerate() {
            let seqs = publish_due(lane, &outbox, now);
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
            for seq in seqs {
                let exchange = &exchanges[seq as usize - 1];
                assert_eq!(*owner.entry(exchange.clone()).or_insert(index), index);
                seen.push(seq);
            }
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            (1..=40).collect::<Vec<_>>(),
            "each message exactly once"
        );
        assert!(
            owner
                .values()
                .collect::<std::collections::HashSet<_>>()
                .len()
                > 1,
            "ten exchanges do not all hash to one lane of three"
        );
    }

    #[test]
    fn a_lane_passes_over_other_lanes_messages_once_and_takes_its_new_ones() {
        let lanes = Lane::all(2);
        let mine = (0..)
            .map(|i| format!("a-to-{i}"))
            .find(|e| lanes[0].takes(e))
            .unwrap();
        let theirs = (0..)
            .map(|i| format!("a-to-{i}"))
            .find(|e| lanes[1].takes(e))
            .unwrap();
        let mut outbox = outbox_with(&[theirs.as_str(), theirs.as_str()]);
        let mut s = Settlement::for_lane(lanes[0], 0);
        let now = Instant::now();
        assert!(publish_due(&mut s, &outbox, now).is_empty());
        outbox
            .push(Outgoing {
                seq: 0,
                exchange: mine,
                routing_key: "activate".into(),
                message_id: "m3".into(),
                msg_type: "activate".into(),
                body: b"{}".to_vec(),
                headers: Vec::new(),
            })
            .unwrap();
        assert_eq!(publish_due(&mut s, &outbox, now), vec![3]);
        s.channel_lost(now);
        assert_eq!(
            publish_due(&mut s, &outbox, now),
            vec![3],
            "a new channel scans from the start and finds only its own again"
        );
    }

    #[test]
    fn a_multiple_confirm_settles_every_tag_up_to_it_and_only_those() {
        let mut outbox = outbox_with(&["a-to-b"; 4]);
        let mut s = Settlement::new(0);
        let now = Instant::now();
        assert_eq!(publish_due(&mut s, &outbox, now), vec![1, 2, 3, 4]);
        let settled = s.confirmed(&mut outbox, 3, true, now);
        assert_eq!(settled.confirmed, 3);
        assert_eq!(outbox.len(), 1, "message 4 waits for its own confirm");
        assert!(
            publish_due(&mut s, &outbox, now).is_empty(),
            "nothing is published twice"
        );
        assert_eq!(s.confirmed(&mut outbox, 4, false, now).confirmed, 1);
        assert!(outbox.is_empty());
    }

    #[test]
    fn after_a_lost_channel_what_was_unconfirmed_goes_out_again_counted_as_again() {
        let (mut outbox, mut s, now) = all_published(&["a-to-b"; 3]);
        s.confirmed(&mut outbox, 1, false, now);
        s.channel_lost(now);
        let (due, _) = s.due(&outbox, now);
        let again: Vec<(u64, bool)> = due
            .iter()
            .map(|p| match p {
                Publish::Outbox { message, again, .. } => (message.seq, *again),
                Publish::Quarantine(_) => unreachable!(),
            })
            .collect();
        assert_eq!(again, vec![(2, true), (3, true)]);
        for p in due {
            s.published(p);
        }
        // The new channel numbers from 1: its confirm of tag 2 is message 3.
        let settled = s.confirmed(&mut outbox, 2, true, now);
        assert_eq!(settled.confirmed, 2);
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_lane_wants_the_retry_tick_only_while_something_waits_on_it() {
        let mut outbox = outbox_with(&["a-to-b"; 2]);
        let mut s = Settlement::new(0);
        let t0 = Instant::now();
        assert!(!s.needs_tick(), "a new lane");
        publish_due(&mut s, &outbox, t0);
        assert!(s.needs_tick(), "publishes in flight");
        s.nacked(&mut outbox, 1, false, t0);
        s.confirmed(&mut outbox, 2, false, t0);
        assert!(s.needs_tick(), "a nacked message waits out its backoff");
        assert_eq!(publish_due(&mut s, &outbox, t0 + RETRY_MIN), vec![1]);
        s.confirmed(&mut outbox, 3, false, t0 + RETRY_MIN);
        assert!(outbox.is_empty());
        assert!(!s.needs_tick(), "all confirmed: idle again");
        s.quarantine_later.push((t0 + RETRY_MIN, copy(7)));
        assert!(
            s.needs_tick(),
            "a refused quarantine copy waits for its retry"
        );
    }

    #[test]
    fn a_durable_outboxs_leftovers_count_as_published_before() {
        let outbox = outbox_with(&["a-to-b"; 2]);
        let mut s = Settlement::new(1);
        let (due, _) = s.due(&outbox, Instant::now());
        let again: Vec<bool> = due
            .iter()
            .map(|p| matches!(p, Publish::Outbox { again: true, .. }))
            .collect();
        assert_eq!(again, vec![true, false]);
    }

    #[test]
    fn a_return_before_its_confirm_keeps_the_message_and_retries_it_with_backoff() {
        let (mut outbox, mut s, t0) = all_published(&["a-to-b", "a-to-c"]);
        s.returned(Some("m1".into()), "a-to-b", "report");
        let settled = s.confirmed(&mut outbox, 2, true, t0);
        assert_eq!((settled.confirmed, settled.returned), (1, 1));
        assert_eq!(outbox.len(), 1, "the returned message stays");
        assert!(
            publish_due(&mut s, &outbox, t0).is_empty(),
            "not before its backoff"
        );
        assert_eq!(publish_due(&mut s, &outbox, t0 + RETRY_MIN), vec![1]);
        assert_eq!(
            s.confirmed(&mut outbox, 3, false, t0 + RETRY_MIN).confirmed,
            1
        );
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_nack_defers_only_the_nacked_message_and_the_backoff_doubles() {
        let (mut outbox, mut s, t0) = all_published(&["a-to-b"; 3]);
        assert_eq!(s.nacked(&mut outbox, 2, false, t0).nacked, 1);
        assert_eq!(s.confirmed(&mut outbox, 3, true, t0).confirmed, 2);
        assert_eq!(
            s.nacks_since_ack(),
            0,
            "a confirm after the nack resets the count"
        );
        assert_eq!(publish_due(&mut s, &outbox, t0 + RETRY_MIN), vec![2]);
        s.nacked(&mut outbox, 4, false, t0 + RETRY_MIN);
        assert!(
            publish_due(&mut s, &outbox, t0 + RETRY_MIN * 2).is_empty(),
            "the second wait is 2 s"
        );
        assert_eq!(publish_due(&mut s, &outbox, t0 + RETRY_MIN * 3), vec![2]);
    }

    #[test]
    fn a_message_refused_for_longer_than_the_ttl_is_given_up() {
        let (mut outbox, mut s, t0) = all_published(&["a-to-b"]);
        s.nacked(&mut outbox, 1, false, t0);
        let later = t0 + Duration::from_millis(MESSAGE_TTL_MS);
        publish_due(&mut s, &outbox, later);
        let settled = s.nacked(&mut outbox, 2, false, later);
        assert_eq!(settled.failed, 1);
        assert!(outbox.is_empty());
        let undelivered = outbox.take_undelivered(u64::MAX);
        assert!(
            undelivered[0].reason.contains("given up"),
            "{undelivered:?}"
        );
    }

    #[test]
    fn a_channel_closed_over_one_exchange_gives_up_only_its_messages() {
        let (mut outbox, mut s, now) = all_published(&["a-to-b", "a-to-gone", "a-to-b"]);
        let settled = s.refused_for_good(
            &mut outbox,
            QUARANTINE,
            404,
            "NOT_FOUND - no exchange 'a-to-gone' in vhost '/'",
            now,
        );
        assert_eq!(settled.failed, 1);
        let undelivered = outbox.take_undelivered(u64::MAX);
        assert_eq!(undelivered.len(), 1);
        assert_eq!(undelivered[0].exchange, "a-to-gone");
        assert!(undelivered[0].reason.contains("404"), "{undelivered:?}");
        s.channel_lost(now);
        assert_eq!(publish_due(&mut s, &outbox, now), vec![1, 3]);
    }

    #[test]
    fn a_refused_quarantine_copy_frees_its_original_at_once_and_goes_out_again_later() {
        let mut outbox = outbox_with(&[]);
        let mut s = Settlement::new(0);
        let t0 = Instant::now();
        s.quarantine(copy(7));
        s.quarantine(copy(8));
        assert_eq!(s.holding(), 2);
        publish_due(&mut s, &outbox, t0);
        s.returned(Some("q7".into()), QUARANTINE, "report");
        let settled = s.confirmed(&mut outbox, 2, true, t0);
        assert_eq!(
            (settled.originals, settled.quarantined),
            (vec![7, 8], 1),
            "8 is safe; 7's copy is ours now, so 7 need not hold a prefetch place"
        );
        assert!(settled.quarantine_gone);
        assert_eq!(s.holding(), 0);
        assert!(!s.quarantine_pending());
        s.tick(t0);
        assert!(
            publish_due(&mut s, &outbox, t0).is_empty(),
            "not before its backoff"
        );
        s.tick(t0 + RETRY_MIN);
        publish_due(&mut s, &outbox, t0 + RETRY_MIN);
        let settled = s.confirmed(&mut outbox, 3, false, t0 + RETRY_MIN);
        assert_eq!((settled.originals, settled.quarantined), (vec![], 1));
    }

    #[test]
    fn a_quarantine_that_keeps_refusing_drops_the_copy_after_its_attempts() {
        let mut outbox = outbox_with(&[]);
        let mut s = Settlement::new(0);
        let mut now = Instant::now();
        s.quarantine(copy(1));
        let mut tag = 0;
        let mut dropped = 0;
        let mut nacks = 0;
        for _ in 0..20 {
            s.tick(now);
            if publish_due(&mut s, &outbox, now).is_empty() {
                now += RETRY_MAX;
                continue;
            }
            tag += 1;
            nacks += 1;
            let settled = s.nacked(&mut outbox, tag, false, now);
            assert_eq!(
                settled.originals,
                if nacks == 1 { vec![1] } else { vec![] },
                "the original is freed at the first refusal"
            );
            dropped += settled.quarantine_dropped;
        }
        assert_eq!(nacks, QUARANTINE_ATTEMPTS, "tried this often, then dropped");
        assert_eq!(dropped, 1);
        assert!(!s.quarantine_pending() && !s.quarantine_waiting());
    }

    #[test]
    fn refused_quarantine_copies_past_the_backlog_are_dropped_at_once() {
        let mut outbox = outbox_with(&[]);
        let mut s = Settlement::new(0);
        let now = Instant::now();
        let n = QUARANTINE_BACKLOG as u64 + 5;
        for tag in 1..=n {
            s.quarantine(copy(tag));
        }
        publish_due(&mut s, &outbox, now);
        let settled = s.nacked(&mut outbox, n, true, now);
        assert_eq!(settled.originals.len() as u64, n, "every original freed");
        assert_eq!(settled.quarantine_dropped, 5, "memory stays bounded");
    }

    #[test]
    fn a_channel_closed_over_the_quarantine_frees_the_originals_and_keeps_the_others() {
        let (mut outbox, mut s, now) = all_published(&["a-to-b"]);
        s.quarantine(copy(4));
        publish_due(&mut s, &outbox, now);
        let settled = s.refused_for_good(
            &mut outbox,
            QUARANTINE,
            404,
            &format!("NOT_FOUND - no exchange '{QUARANTINE}' in vhost '/'"),
            now,
        );
        assert_eq!((settled.originals, settled.failed), (vec![4], 0));
        assert!(settled.quarantine_gone);
        s.channel_lost(now);
        assert_eq!(
            publish_due(&mut s, &outbox, now),
            vec![1],
            "the outbox message goes again"
        );
        s.tick(now + RETRY_MIN);
        assert_eq!(
            publish_due(&mut s, &outbox, now + RETRY_MIN),
            vec![0],
            "the copy too, later"
        );
    }

    #[test]
    fn a_lost_consumer_forgets_copies_with_originals_but_keeps_those_that_are_ours() {
        let mut outbox = outbox_with(&[]);
        let mut s = Settlement::new(0);
        let now = Instant::now();
        let mut detached = copy(9);
        detached.original_tag = None;
        s.quarantine(detached);
        s.quarantine(copy(10));
        s.forget_quarantine();
        assert_eq!(s.holding(), 0);
        assert_eq!(
            publish_due(&mut s, &outbox, now),
            vec![0],
            "the detached copy stays"
        );
        let settled = s.confirmed(&mut outbox, 1, false, now);
        assert_eq!((settled.quarantined, settled.originals), (1, vec![]));
    }

    #[test]
    fn a_message_too_large_for_the_broker_fails_alone() {
        let mut outbox = Outbox::in_memory(10);
        for (i, size) in [10, 5_000_000, 10].into_iter().enumerate() {
            outbox
                .push(Outgoing {
                    seq: 0,
                    exchange: "a-to-b".into(),
                    routing_key: "report".into(),
                    message_id: format!("m{i}"),
                    msg_type: "report".into(),
                    body: vec![b' '; size],
                    headers: Vec::new(),
                })
                .unwrap();
        }
        let mut s = Settlement::new(0);
        let now = Instant::now();
        publish_due(&mut s, &outbox, now);
        let settled = s.refused_for_good(
            &mut outbox,
            QUARANTINE,
            406,
            "PRECONDITION_FAILED - message size 5000000 is larger than configured max size 4194304",
            now,
        );
        assert_eq!(settled.failed, 1);
        assert_eq!(outbox.take_undelivered(u64::MAX)[0].seq, 2, "the large one");
        s.channel_lost(now);
        assert_eq!(
            publish_due(&mut s, &outbox, now),
            vec![1, 3],
            "the others go again"
        );
    }

    #[test]
    fn an_unnamed_refusal_fails_nobody_and_finds_the_culprit_one_at_a_time() {
        let (mut outbox, mut s, now) = all_published(&["a-to-b", "a-to-b", "a-to-b"]);
        let unnamed = "PRECONDITION_FAILED - something about one publish";
        let settled = s.refused_for_good(&mut outbox, QUARANTINE, 406, unnamed, now);
        assert_eq!(settled.failed, 0, "the oldest is not blamed");
        s.channel_lost(now);
        assert_eq!(publish_due(&mut s, &outbox, now), vec![1], "one at a time");
        assert!(
            publish_due(&mut s, &outbox, now).is_empty(),
            "until it is answered"
        );
        assert_eq!(s.confirmed(&mut outbox, 1, false, now).confirmed, 1);
        assert_eq!(publish_due(&mut s, &outbox, now), vec![2]);
        let settled = s.refused_for_good(&mut outbox, QUARANTINE, 406, unnamed, now);
        assert_eq!(settled.failed, 1, "alone in flight: the culprit");
        assert_eq!(outbox.take_undelivered(u64::MAX)[0].seq, 2);
        s.channel_lost(now);
        assert_eq!(publish_due(&mut s, &outbox, now), vec![3]);
        assert_eq!(s.confirmed(&mut outbox, 1, false, now).confirmed, 1);
        outbox
            .push(Outgoing {
                seq: 0,
                exchange: "a-to-b".into(),
                routing_key: "report".into(),
                message_id: "m4".into(),
                msg_type: "report".into(),
                body: b"{}".to_vec(),
                headers: Vec::new(),
            })
            .unwrap();
        outbox
            .push(Outgoing {
                seq: 0,
                exchange: "a-to-b".into(),
                routing_key: "report".into(),
                message_id: "m5".into(),
                msg_type: "report".into(),
                body: b"{}".to_vec(),
                headers: Vec::new(),
            })
            .unwrap();
        assert_eq!(
            publish_due(&mut s, &outbox, now),
            vec![4, 5],
            "no suspect left: batches again"
        );
    }

    #[test]
    fn quarantine_copies_in_flight_on_a_lost_channel_go_out_again() {
        let outbox = outbox_with(&[]);
        let mut s = Settlement::new(0);
        let now = Instant::now();
        s.quarantine(copy(5));
        publish_due(&mut s, &outbox, now);
        assert!(!s.quarantine_waiting());
        s.channel_lost(now);
        assert!(s.quarantine_waiting());
    }

    #[test]
    fn quarantine_copies_of_a_lost_consumer_are_forgotten_and_free_no_original() {
        let (mut outbox, mut s, now) = all_published(&["a-to-b"]);
        s.quarantine(copy(7));
        publish_due(&mut s, &outbox, now);
        s.quarantine(copy(8));
        s.forget_quarantine();
        assert!(!s.quarantine_waiting() && !s.quarantine_pending());
        // The confirm of the outbox message and of the forgotten copy frees no original: tag 7
        // belonged to a channel that is gone.
        let settled = s.confirmed(&mut outbox, 2, true, now);
        assert_eq!((settled.confirmed, settled.originals), (1, vec![]));
        assert!(
            publish_due(&mut s, &outbox, now).is_empty(),
            "copy 8 is not published"
        );
    }

    #[test]
    fn one_at_a_time_the_applications_messages_go_before_quarantine_copies() {
        let (mut outbox, mut s, now) = all_published(&["a-to-b", "a-to-b"]);
        s.refused_for_good(&mut outbox, QUARANTINE, 406, "PRECONDITION_FAILED - ?", now);
        s.channel_lost(now);
        s.quarantine(copy(1));
        assert_eq!(
            publish_due(&mut s, &outbox, now),
            vec![1],
            "a suspect, not the copy"
        );
        s.quarantine(copy(2));
        s.confirmed(&mut outbox, 1, false, now);
        assert_eq!(publish_due(&mut s, &outbox, now), vec![2]);
        s.confirmed(&mut outbox, 2, false, now);
        assert_eq!(
            publish_due(&mut s, &outbox, now),
            vec![0, 0],
            "no suspect left: the copies go"
        );
    }

    #[test]
    fn a_suspect_the_broker_nacks_is_no_longer_a_suspect() {
        let (mut outbox, mut s, now) = all_published(&["a-to-b", "a-to-b"]);
        s.refused_for_good(&mut outbox, QUARANTINE, 406, "PRECONDITION_FAILED - ?", now);
        s.channel_lost(now);
        assert_eq!(publish_due(&mut s, &outbox, now), vec![1]);
        s.nacked(&mut outbox, 1, false, now);
        assert_eq!(publish_due(&mut s, &outbox, now), vec![2]);
        s.confirmed(&mut outbox, 2, false, now);
        assert_eq!(
            publish_due(&mut s, &outbox, now + RETRY_MIN),
            vec![1],
            "retried after its backoff"
        );
        s.quarantine(copy(3));
        s.quarantine(copy(4));
        assert_eq!(
            publish_due(&mut s, &outbox, now + RETRY_MIN),
            vec![0, 0],
            "batches again: the nacked message was answered, so it is no suspect"
        );
    }

    #[test]
    fn nacked_quarantine_copies_do_not_make_the_channel_look_refused() {
        let mut outbox = outbox_with(&[]);
        let mut s = Settlement::new(0);
        let now = Instant::now();
        s.quarantine(copy(1));
        publish_due(&mut s, &outbox, now);
        let settled = s.nacked(&mut outbox, 1, false, now);
        assert_eq!((settled.nacked, s.nacks_since_ack()), (0, 0));
        assert!(
            !settled.quarantine_gone,
            "a full quarantine is not a missing one"
        );
    }

    #[test]
    fn copies_the_channel_did_not_take_and_an_unavailable_quarantine_lose_nothing() {
        let mut outbox = outbox_with(&[]);
        let mut s = Settlement::new(0);
        let now = Instant::now();
        s.quarantine(copy(1));
        let (due, _) = s.due(&outbox, now);
        for p in due {
            s.unpublished(p);
        }
        assert!(s.quarantine_waiting() && s.quarantine_pending());
        assert_eq!(s.holding(), 1);
        let settled = s.quarantine_unavailable("making the quarantine failed", now);
        assert_eq!(settled.originals, vec![1], "the original is freed");
        assert!(!s.quarantine_waiting(), "the copy waits out its backoff");
        s.tick(now + RETRY_MIN);
        assert_eq!(publish_due(&mut s, &outbox, now + RETRY_MIN), vec![0]);
        assert_eq!(s.abandon_quarantine(), 1, "closing now would lose it");
        let settled = s.confirmed(&mut outbox, 1, false, now + RETRY_MIN);
        assert_eq!(settled.quarantined, 1);
    }

    #[test]
    fn the_refused_exchange_is_read_from_rabbitmqs_replies() {
        assert_eq!(
            refused_exchange("NOT_FOUND - no exchange 'x-to-y' in vhost '/'"),
            Some("x-to-y")
        );
        assert_eq!(
            refused_exchange(
                "ACCESS_REFUSED - access to exchange 'a-to-b' in vhost '/' refused for user 'c'"
            ),
            Some("a-to-b")
        );
        assert_eq!(refused_exchange("PRECONDITION_FAILED - bad header"), None);
    }

    #[test]
    fn a_refused_message_backs_off_and_is_given_up_after_the_ttl() {
        let mut retries = Retries::default();
        let t0 = Instant::now();
        assert_eq!(retries.refused(7, t0), Ok(Duration::from_secs(1)));
        assert!(retries.take_due(t0).is_empty(), "not before its time");
        assert_eq!(retries.take_due(t0 + Duration::from_secs(1)), [7]);
        assert!(
            retries.take_due(t0 + Duration::from_secs(2)).is_empty(),
            "in flight"
        );
        assert_eq!(retries.refused(7, t0), Ok(Duration::from_secs(2)));
        for _ in 0..10 {
            let _ = retries.refused(7, t0);
        }
        assert_eq!(retries.refused(7, t0), Ok(RETRY_MAX));
        assert!(retries.is_deferred(7));
        let late = t0 + Duration::from_millis(MESSAGE_TTL_MS);
        assert!(retries.refused(7, late).is_err());
        assert!(!retries.is_deferred(7));
    }

    #[test]
    fn copies_in_flight_on_a_lost_channel_are_due_at_once() {
        let mut retries = Retries::default();
        let t0 = Instant::now();
        retries.refused(3, t0).unwrap();
        assert_eq!(retries.take_due(t0 + RETRY_MIN), [3]);
        retries.channel_lost(t0 + RETRY_MIN);
        assert_eq!(retries.take_due(t0 + RETRY_MIN), [3]);
    }

    #[test]
    fn a_channel_with_only_nacks_is_replaced_after_two_ticks_then_with_backoff() {
        let mut r = Reopen::default();
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        assert!(!r.after_tick(0, t0));
        assert!(!r.needs_tick());
        assert!(!r.after_tick(3, t0), "one nacked tick is not enough");
        assert!(r.after_tick(3, t0 + sec), "the second replaces it");
        // Nacks go on: the next replacement waits out its backoff (1 s, then 2 s).
        assert!(!r.after_tick(3, t0 + sec * 2));
        assert!(r.after_tick(3, t0 + sec * 3));
        assert!(!r.after_tick(3, t0 + sec * 4));
        assert!(!r.after_tick(3, t0 + sec * 4));
        assert!(r.after_tick(3, t0 + sec * 5));
        assert!(r.needs_tick());
        // A tick without nacks: the count and the backoff start again (after the wait set
        // last, 4 s from the third replacement).
        assert!(!r.after_tick(0, t0 + sec * 6));
        assert!(!r.needs_tick());
        assert!(!r.after_tick(1, t0 + sec * 9));
        assert!(r.after_tick(1, t0 + sec * 10));
        assert!(!r.after_tick(1, t0 + sec * 11));
        assert!(r.after_tick(1, t0 + sec * 12), "1 s after a reset backoff");
    }
}
