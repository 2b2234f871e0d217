//! Settlement of publishes, with no I/O: which message is in flight under which delivery tag of
//! the publishing channel, and what the broker's answers do to it, to the outbox and to the retry
//! schedule. A confirm removes it from the outbox; a nack or a return (no queue bound: publishes
//! are `mandatory`) defers just that message with backoff; a channel the broker closes over one
//! publish (exchange not found, access refused) gives up the messages it names, with the reason.
//! Quarantine copies travel here too, apart from the application's outbox: their original is
//! acknowledged only when the copy is confirmed.
//!
//! [`crate::publisher`] publishes what [`Settlement::due`] hands out on an amqprs channel and
//! feeds the broker's answers back in; the unit tests below feed them directly, in the orders the
//! broker tests provoke (confirms after a reconnect, multiple confirms, a return before its
//! confirm, a nack, a channel closed over a refused publish), in milliseconds.

use crate::conventions::MESSAGE_TTL_MS;
use crate::outbox::{Outbox, Outgoing};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A copy of an invalid incoming message on its way to our quarantine queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuarantineCopy {
    /// The delivery tag of the original, acknowledged when this copy is confirmed.
    pub(crate) original_tag: u64,
    /// The copy's own message_id (the original's is in a header).
    pub(crate) message_id: String,
    pub(crate) routing_key: String,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(String, String)>,
}

/// Something to publish, in the order [`Settlement::due`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Publish {
    /// A quarantine copy, to `private-<me>-quarantine`.
    Quarantine(QuarantineCopy),
    /// An outbox message; `again` when it was published before (by this process or, with a
    /// durable outbox, by an earlier one).
    Outbox { message: Outgoing, again: bool },
}

#[derive(Debug)]
enum Inflight {
    Outbox {
        seq: u64,
        message_id: String,
        exchange: String,
    },
    Quarantine(QuarantineCopy),
    /// A quarantine copy whose original's tag is void ([`Settlement::forget_quarantine`]): its
    /// answer settles nothing.
    Forgotten,
}

/// What one answer of the broker settled: counter increments, and the delivery tags of
/// originals whose quarantine copy is now safe (to acknowledge).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Settled {
    pub(crate) confirmed: u64,
    pub(crate) nacked: u64,
    pub(crate) returned: u64,
    pub(crate) failed: u64,
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
    attempts: u32,
    first_refused: Instant,
}

impl Retries {
    /// Records a refusal of `seq`: when it goes out again, or `Err(how long)` once it has been
    /// refused for longer than the message TTL (the receiver would drop it as stale anyway).
    fn refused(&mut self, seq: u64, now: Instant) -> Result<Duration, Duration> {
        let entry = self.entries.entry(seq).or_insert(Retry {
            due: None,
            attempts: 0,
            first_refused: now,
        });
        let refused_for = now - entry.first_refused;
        if refused_for >= Duration::from_millis(MESSAGE_TTL_MS) {
            self.entries.remove(&seq);
            return Err(refused_for);
        }
        let wait = RETRY_MIN
            .saturating_mul(1 << entry.attempts.min(8))
            .min(RETRY_MAX);
        entry.attempts += 1;
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
    /// Quarantine copies refused; they go out at the next retry tick.
    quarantine_later: Vec<QuarantineCopy>,
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
        self.quarantine.append(&mut self.quarantine_later);
        self.retries.channel_lost(now);
        self.next_tag = 1;
        self.returned.clear();
        self.sent_upto = 0;
        self.nacks_since_ack = 0;
    }

    /// The consuming channel is gone (or the whole connection): the delivery tags of the
    /// originals whose quarantine copies wait or fly are void, and acknowledging them on a new
    /// channel would acknowledge other messages. The copies are forgotten; the broker delivers
    /// the unacknowledged originals again and they are quarantined again (an extra copy in the
    /// quarantine at worst, never a wrong acknowledgement).
    pub(crate) fn forget_quarantine(&mut self) {
        self.quarantine.clear();
        self.quarantine_later.clear();
        for inflight in self.inflight.values_mut() {
            if matches!(inflight, Inflight::Quarantine(_)) {
                *inflight = Inflight::Forgotten;
            }
        }
    }

    /// Queues a quarantine copy for publishing.
    pub(crate) fn quarantine(&mut self, copy: QuarantineCopy) {
        self.quarantine.push(copy);
    }

    /// What to publish now, in order: quarantine copies, refused messages that are due, then
    /// the outbox after what this channel already has, at most [`PUBLISH_BATCH`] of those.
    /// The second value says whether the batch was full (more wait). Each item must be passed
    /// to [`Self::published`] once the channel took it.
    pub(crate) fn due(&mut self, outbox: &Outbox, now: Instant) -> (Vec<Publish>, bool) {
        let mut due: Vec<Publish> = std::mem::take(&mut self.quarantine)
            .into_iter()
            .map(Publish::Quarantine)
            .collect();
        for seq in self.retries.take_due(now) {
            match outbox.get(seq) {
                Some(message) => due.push(Publish::Outbox {
                    message: message.clone(),
                    again: true,
                }),
                // Gone meanwhile (dropped by the cap): nothing to retry.
                None => self.retries.settled(seq),
            }
        }
        let mut taken = 0;
        let mut scanned_upto = self.sent_upto;
        for m in outbox.after(self.sent_upto) {
            if taken == PUBLISH_BATCH {
                break;
            }
            scanned_upto = m.seq;
            if self.lane.takes(&m.exchange) && !self.retries.is_deferred(m.seq) {
                due.push(Publish::Outbox {
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
        (due, taken == PUBLISH_BATCH)
    }

    /// `publish` went out on the channel: it is in flight under the next delivery tag.
    pub(crate) fn published(&mut self, publish: Publish) {
        let inflight = match publish {
            Publish::Quarantine(copy) => Inflight::Quarantine(copy),
            Publish::Outbox { message, .. } => {
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
                        self.quarantine_later.push(copy);
                    } else {
                        settled.originals.push(copy.original_tag);
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
        if settled.confirmed > 0 || !settled.originals.is_empty() {
            self.nacks_since_ack = 0;
        }
        settled
    }

    /// A negative confirm: the broker did not take these messages (a full queue, a queue
    /// without leader). Each goes out again after its own backoff.
    pub(crate) fn nacked(
        &mut self,
        outbox: &mut Outbox,
        tag: u64,
        multiple: bool,
        now: Instant,
    ) -> Settled {
        let mut settled = Settled::default();
        for inflight in self.settle(tag, multiple) {
            settled.nacked += 1;
            match inflight {
                Inflight::Forgotten => {}
                Inflight::Quarantine(copy) => self.quarantine_later.push(copy),
                Inflight::Outbox { seq, .. } => {
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

    /// The broker closed the channel over a publish it will never take (`code` 403, 404 or
    /// 406). The messages for the exchange its reply names (else the oldest in flight) leave
    /// the outbox as undelivered, with the reason; the rest go out again on the next channel.
    /// `quarantine` is our quarantine exchange: when it is the one refused, the originals stay
    /// unacknowledged in the inbox (retrying here would loop).
    pub(crate) fn refused_for_good(
        &mut self,
        outbox: &mut Outbox,
        quarantine: &str,
        code: u16,
        text: &str,
    ) -> Settled {
        let culprit = refused_exchange(text)
            .map(str::to_owned)
            .or_else(|| {
                // The reply names no exchange (a bad property, say): the oldest publish in
                // flight is the one the broker stopped at.
                self.inflight.values().find_map(|i| match i {
                    Inflight::Outbox { exchange, .. } => Some(exchange.clone()),
                    Inflight::Quarantine(_) | Inflight::Forgotten => None,
                })
            })
            .unwrap_or_else(|| quarantine.to_owned());
        let reason = format!("refused by the broker: {code} {text}");
        let mut settled = Settled::default();
        self.inflight.retain(|_, inflight| match inflight {
            Inflight::Quarantine(_) | Inflight::Forgotten if culprit == quarantine => {
                tracing::error!(%reason, "the quarantine refused a copy; the original stays in the inbox");
                false
            }
            Inflight::Outbox { seq, exchange, .. } if *exchange == culprit => {
                match outbox.fail(*seq, reason.clone()) {
                    Ok(Some(_)) => settled.failed += 1,
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "could not record an undelivered message")
                    }
                }
                false
            }
            _ => true,
        });
        tracing::error!(%reason, exchange = %culprit, messages = settled.failed, "messages given up: see Client::undelivered");
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

    /// Negative confirms since the last positive one (a channel that gets only these is
    /// replaced).
    pub(crate) fn nacks_since_ack(&self) -> u64 {
        self.nacks_since_ack
    }

    /// Whether quarantine copies wait to be published.
    pub(crate) fn quarantine_waiting(&self) -> bool {
        !self.quarantine.is_empty()
    }

    /// Whether quarantine copies wait for their confirm (their originals are not acknowledged).
    pub(crate) fn quarantine_pending(&self) -> bool {
        !self.quarantine.is_empty()
            || !self.quarantine_later.is_empty()
            || self
                .inflight
                .values()
                .any(|i| matches!(i, Inflight::Quarantine(_)))
    }

    /// The retry tick: refused quarantine copies go out again.
    pub(crate) fn tick(&mut self) {
        self.quarantine.append(&mut self.quarantine_later);
    }
}

/// The exchange a channel-closing reply names: RabbitMQ says "NOT_FOUND - no exchange 'x' in
/// vhost '/'" or "ACCESS_REFUSED - access to exchange 'x' in vhost '/' refused for user 'u'".
fn refused_exchange(text: &str) -> Option<&str> {
    let start = text.find("exchange '")? + "exchange '".len();
    let len = text[start..].find('\'')?;
    Some(&text[start..start + len])
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
            original_tag,
            message_id: format!("q{original_tag}"),
            routing_key: "report".into(),
            body: b"not json".to_vec(),
            headers: Vec::new(),
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
                Publish::Outbox { message, again } => (message.seq, *again),
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
    fn a_quarantine_copy_frees_its_original_only_when_confirmed_and_not_returned() {
        let mut outbox = outbox_with(&[]);
        let mut s = Settlement::new(0);
        let now = Instant::now();
        s.quarantine(copy(7));
        s.quarantine(copy(8));
        assert!(s.quarantine_waiting());
        publish_due(&mut s, &outbox, now);
        s.returned(Some("q7".into()), QUARANTINE, "report");
        let settled = s.confirmed(&mut outbox, 2, true, now);
        assert_eq!(settled.originals, vec![8]);
        assert!(s.quarantine_pending(), "copy 7 waits for the next tick");
        s.tick();
        publish_due(&mut s, &outbox, now);
        assert_eq!(s.confirmed(&mut outbox, 3, false, now).originals, vec![7]);
        assert!(!s.quarantine_pending());
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
}
