//! Publishing on one confirm-mode channel, and the settlement of what the broker answers:
//! confirms remove messages from the outbox; a nack or a return (no queue bound: published
//! `mandatory`) defers just that message with backoff; a channel the broker closes over one
//! publish (exchange not found, access refused) gives up the messages it names, with the reason,
//! and the others go on on a fresh channel. Quarantine copies travel here too, apart from the
//! application's outbox: their original is acknowledged only when the copy is confirmed.

use crate::client::Shared;
use crate::conventions::{MESSAGE_TTL_MS, quarantine_queue};
use crate::counters::Counters;
use crate::outbox::Outgoing;
use amqprs::channel::{BasicPublishArguments, Channel};
use amqprs::{BasicProperties, FieldName, FieldTable, FieldValue, LongStr};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A copy of an invalid incoming message on its way to our quarantine queue.
#[derive(Debug, Clone)]
pub(crate) struct QuarantineCopy {
    /// The delivery tag of the original, acknowledged when this copy is confirmed.
    pub(crate) original_tag: u64,
    /// The copy's own message_id (the original's is in a header).
    pub(crate) message_id: String,
    pub(crate) routing_key: String,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: Vec<(String, String)>,
}

#[derive(Debug)]
enum Inflight {
    Outbox {
        seq: u64,
        message_id: String,
        exchange: String,
    },
    Quarantine(QuarantineCopy),
}

/// First wait before a refused message goes out again; doubles per refusal up to
/// [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Refused (nacked or returned) outbox messages and when each goes out again. Outlives
/// channels and connections: a refusal is about the message, not the link.
#[derive(Debug, Default)]
pub(crate) struct Retries {
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
    /// Records a refusal of `seq`: when it goes out again, or `Err(reason)` once it has been
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
    pub(crate) fn channel_lost(&mut self, now: Instant) {
        for entry in self.entries.values_mut() {
            entry.due.get_or_insert(now);
        }
        if !self.entries.is_empty() {
            self.next_due = Some(now);
        }
    }
}

/// Publishes per loop turn at most this many, so acks and deliveries keep flowing.
const PUBLISH_BATCH: usize = 2_000;

/// The publishing side of one channel.
pub(crate) struct Publisher {
    channel: Channel,
    /// Which channel of this client this is: events of an older one are ignored.
    pub(crate) generation: u64,
    next_tag: u64,
    inflight: BTreeMap<u64, Inflight>,
    /// Message ids the broker returned (unroutable), until their confirm arrives.
    returned: HashMap<String, String>,
    /// Highest outbox sequence number published on this channel, in order.
    sent_upto: u64,
    /// Quarantine copies to publish.
    quarantine: Vec<QuarantineCopy>,
    /// Quarantine copies refused; they go out at the next retry tick.
    quarantine_later: Vec<QuarantineCopy>,
    /// Negative confirms since the last positive one.
    pub(crate) nacks_since_ack: u64,
}

impl Publisher {
    /// A publisher on a fresh confirm-mode `channel`.
    pub(crate) fn new(channel: Channel, generation: u64) -> Self {
        Self {
            channel,
            generation,
            next_tag: 1,
            inflight: BTreeMap::new(),
            returned: HashMap::new(),
            sent_upto: 0,
            quarantine: Vec::new(),
            quarantine_later: Vec::new(),
            nacks_since_ack: 0,
        }
    }

    /// Moves to a fresh channel: what was in flight on the old one goes out again (receivers
    /// drop the copies that did arrive).
    pub(crate) fn restart(&mut self, channel: Channel, generation: u64, retries: &mut Retries) {
        let mut quarantine = std::mem::take(&mut self.quarantine);
        for inflight in std::mem::take(&mut self.inflight).into_values() {
            if let Inflight::Quarantine(copy) = inflight {
                quarantine.push(copy);
            }
        }
        quarantine.append(&mut self.quarantine_later);
        retries.channel_lost(Instant::now());
        *self = Self::new(channel, generation);
        self.quarantine = quarantine;
    }

    /// The channel's handle, to close it.
    pub(crate) fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Queues a quarantine copy for publishing.
    pub(crate) fn quarantine(&mut self, copy: QuarantineCopy) {
        self.quarantine.push(copy);
    }

    /// Publishes what waits: quarantine copies, refused messages that are due, then the outbox
    /// in order.
    pub(crate) async fn publish_pending(
        &mut self,
        shared: &Shared,
        retries: &mut Retries,
    ) -> Result<(), amqprs::error::Error> {
        let me = shared.config.name.as_str();
        for copy in std::mem::take(&mut self.quarantine) {
            let props = properties(me, &copy.message_id, "quarantined", &copy.headers);
            let exchange = quarantine_queue(&shared.config.name);
            self.publish(props, copy.body.clone(), &exchange, &copy.routing_key)
                .await?;
            self.inflight
                .insert(self.next_tag - 1, Inflight::Quarantine(copy));
        }
        let due = retries.take_due(Instant::now());
        let (retry, batch): (Vec<Outgoing>, Vec<Outgoing>) = {
            let outbox = shared.outbox.lock().unwrap();
            let mut retry = Vec::with_capacity(due.len());
            for seq in due {
                match outbox.get(seq) {
                    Some(message) => retry.push(message.clone()),
                    // Gone meanwhile (dropped by the cap): nothing to retry.
                    None => retries.settled(seq),
                }
            }
            let batch = outbox
                .after(self.sent_upto)
                .filter(|m| !retries.is_deferred(m.seq))
                .take(PUBLISH_BATCH)
                .cloned()
                .collect();
            (retry, batch)
        };
        let highest = shared.highest_published.load(Ordering::Relaxed);
        let full_batch = batch.len() == PUBLISH_BATCH;
        let in_order_upto = batch.last().map(|m| m.seq);
        for message in retry.into_iter().chain(batch) {
            let props = properties(me, &message.message_id, &message.msg_type, &message.headers);
            self.publish(props, message.body, &message.exchange, &message.routing_key)
                .await?;
            if message.seq <= highest {
                Counters::add(&shared.counters.republished, 1);
            }
            self.inflight.insert(
                self.next_tag - 1,
                Inflight::Outbox {
                    seq: message.seq,
                    message_id: message.message_id,
                    exchange: message.exchange,
                },
            );
            shared
                .highest_published
                .fetch_max(message.seq, Ordering::Relaxed);
        }
        if let Some(last) = in_order_upto {
            self.sent_upto = last;
            if full_batch {
                shared.wake.notify_one();
            }
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        props: BasicProperties,
        body: Vec<u8>,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), amqprs::error::Error> {
        let mut args = BasicPublishArguments::new(exchange, routing_key);
        // Mandatory: a message no queue takes comes back (basic.return) instead of being
        // confirmed and lost.
        args.mandatory(true);
        self.channel.basic_publish(props, body, args).await?;
        self.next_tag += 1;
        Ok(())
    }

    fn settled(&mut self, tag: u64, multiple: bool) -> Vec<Inflight> {
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

    /// A positive confirm. Returns the tags of originals whose quarantine copy is now safe.
    pub(crate) fn confirmed(
        &mut self,
        shared: &Shared,
        retries: &mut Retries,
        tag: u64,
        multiple: bool,
    ) -> Vec<u64> {
        let mut originals = Vec::new();
        let mut confirmed = 0;
        let mut outbox = shared.outbox.lock().unwrap();
        for inflight in self.settled(tag, multiple) {
            match inflight {
                Inflight::Quarantine(copy) => {
                    if self.returned.remove(&copy.message_id).is_some() {
                        self.quarantine_later.push(copy);
                    } else {
                        originals.push(copy.original_tag);
                    }
                }
                Inflight::Outbox {
                    seq, message_id, ..
                } => {
                    if let Some(reason) = self.returned.remove(&message_id) {
                        Counters::add(&shared.counters.returned, 1);
                        refuse(shared, &mut outbox, retries, seq, &reason);
                        continue;
                    }
                    retries.settled(seq);
                    match outbox.confirm(seq) {
                        Ok(true) => confirmed += 1,
                        Ok(false) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "could not remove a confirmed message from the outbox")
                        }
                    }
                }
            }
        }
        drop(outbox);
        if confirmed > 0 || !originals.is_empty() {
            self.nacks_since_ack = 0;
        }
        Counters::add(&shared.counters.confirmed, confirmed);
        shared.progress.notify_waiters();
        originals
    }

    /// A negative confirm: the broker did not take these messages (a full queue, a queue
    /// without leader). Each goes out again after its own backoff.
    pub(crate) fn nacked(
        &mut self,
        shared: &Shared,
        retries: &mut Retries,
        tag: u64,
        multiple: bool,
    ) {
        let settled = self.settled(tag, multiple);
        self.nacks_since_ack += settled.len() as u64;
        Counters::add(&shared.counters.nacked, settled.len() as u64);
        let mut outbox = shared.outbox.lock().unwrap();
        for inflight in settled {
            match inflight {
                Inflight::Quarantine(copy) => self.quarantine_later.push(copy),
                Inflight::Outbox { seq, .. } => {
                    refuse(
                        shared,
                        &mut outbox,
                        retries,
                        seq,
                        "refused by the broker (nack)",
                    );
                }
            }
        }
        drop(outbox);
        shared.progress.notify_waiters();
    }

    /// The broker closed this channel over a publish it will never take (`code` 403, 404 or
    /// 406). The messages it names leave the outbox as undelivered; returns how many.
    pub(crate) fn refused_for_good(&mut self, shared: &Shared, code: u16, text: &str) -> usize {
        let culprit = refused_exchange(text).map(str::to_owned).or_else(|| {
            // The reply names no exchange (a bad property, say): the oldest publish in flight
            // is the one the broker stopped at.
            self.inflight.values().find_map(|i| match i {
                Inflight::Outbox { exchange, .. } => Some(exchange.clone()),
                Inflight::Quarantine(_) => None,
            })
        });
        let quarantine = quarantine_queue(&shared.config.name);
        let culprit = culprit.unwrap_or_else(|| quarantine.clone());
        let reason = format!("refused by the broker: {code} {text}");
        let mut failed = 0;
        let mut outbox = shared.outbox.lock().unwrap();
        self.inflight.retain(|_, inflight| match inflight {
            // Our own quarantine refused: the originals stay unacknowledged in the inbox and come
            // back with the next connection; retrying here would loop.
            Inflight::Quarantine(_) if culprit == quarantine => {
                tracing::error!(%reason, "the quarantine refused a copy; the original stays in the inbox");
                false
            }
            Inflight::Outbox { seq, exchange, .. } if *exchange == culprit => {
                match outbox.fail(*seq, reason.clone()) {
                    Ok(Some(_)) => failed += 1,
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "could not record an undelivered message")
                    }
                }
                false
            }
            _ => true,
        });
        drop(outbox);
        Counters::add(&shared.counters.failed, failed as u64);
        tracing::error!(%reason, exchange = %culprit, messages = failed, "messages given up: see Client::undelivered");
        shared.progress.notify_waiters();
        failed
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

fn refuse(
    shared: &Shared,
    outbox: &mut crate::outbox::Outbox,
    retries: &mut Retries,
    seq: u64,
    reason: &str,
) {
    match retries.refused(seq, Instant::now()) {
        Ok(wait) => {
            tracing::warn!(seq, %reason, retry_in = ?wait, "message refused; it stays in the outbox")
        }
        Err(refused_for) => {
            let reason = format!(
                "{reason}, again and again for {} s: given up (older than the message TTL)",
                refused_for.as_secs()
            );
            match outbox.fail(seq, reason) {
                Ok(Some(_)) => Counters::add(&shared.counters.failed, 1),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "could not record an undelivered message"),
            }
        }
    }
}

/// The exchange a channel-closing reply names: RabbitMQ says "NOT_FOUND - no exchange 'x' in
/// vhost '/'" or "ACCESS_REFUSED - access to exchange 'x' in vhost '/' refused for user 'u'".
fn refused_exchange(text: &str) -> Option<&str> {
    let start = text.find("exchange '")? + "exchange '".len();
    let len = text[start..].find('\'')?;
    Some(&text[start..start + len])
}

fn properties(
    me: &str,
    message_id: &str,
    msg_type: &str,
    headers: &[(String, String)],
) -> BasicProperties {
    let mut props = BasicProperties::default();
    props
        .with_content_type("application/json")
        .with_persistence(true)
        .with_message_id(message_id)
        .with_message_type(msg_type)
        .with_timestamp(unix_now())
        .with_user_id(me);
    if !headers.is_empty() {
        let mut table = FieldTable::new();
        for (k, v) in headers {
            if let (Ok(k), Ok(v)) = (
                FieldName::try_from(k.as_str()),
                LongStr::try_from(v.clone()),
            ) {
                table.insert(k, FieldValue::S(v));
            }
        }
        props.with_headers(table);
    }
    props
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refused_exchange_is_read_from_the_reply() {
        assert_eq!(
            refused_exchange("NOT_FOUND - no exchange 'a-to-b' in vhost '/'"),
            Some("a-to-b")
        );
        assert_eq!(
            refused_exchange(
                "ACCESS_REFUSED - access to exchange 'x-to-y' in vhost '/' refused for user 'a'"
            ),
            Some("x-to-y")
        );
        assert_eq!(
            refused_exchange("PRECONDITION_FAILED - user_id property set to 'x'"),
            None
        );
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
