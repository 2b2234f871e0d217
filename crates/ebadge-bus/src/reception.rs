//! The receiving side's decisions, without I/O (as [`crate::settlement`] is the sending side's):
//! what each delivery becomes (quarantined, dropped as a duplicate, an answer to a waiting
//! request, a message for the application), what to acknowledge and when, what to give back to
//! the broker, what a lost consumer means, and when to consume again. The session
//! ([`crate::session`]) feeds it what the broker and the application did, and carries out what
//! it answers.
//!
//! The rule it keeps: a message is acknowledged only when the application has handled it, or it
//! was a duplicate of one the application handled, or its quarantine copy is confirmed, across
//! reconnects, where the broker redelivers what the old connection had not acknowledged.

use crate::backoff::Backoff;
use crate::conventions::{EntityName, QUARANTINE_FROM_HEADER, QUARANTINE_REASON_HEADER};
use crate::dedupe::DedupeWindow;
use crate::held::{AckPlan, DedupeKey, Held};
use crate::incoming::{Rejected, Settle};
use crate::settlement::{QuarantineCopy, Settlement};
use crate::verdict::{RejectClass, verdict};
use ebadge_model::Message;
use std::time::{Duration, Instant};

/// Longest wait between two attempts to consume an inbox that is unavailable.
const CONSUME_RETRY_MAX: Duration = Duration::from_secs(30);

/// The wait before consuming again after the broker took the consumer away: short, since the
/// connection is fine; a failing attempt then backs off.
const CONSUME_AGAIN: Duration = Duration::from_millis(500);

/// What an awaited answer is matched by: the peer it was sent to (only it answers), and the
/// activation's id and modification count or the market request's `msg_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PendingKey {
    Activation {
        peer: String,
        id: String,
        count: u32,
    },
    Market {
        peer: String,
        msg_id: String,
    },
}

impl PendingKey {
    /// The request `message` from `peer` answers, if it is an answer (accept, reject or modify an
    /// activation; a market `response`).
    pub(crate) fn answered_by(peer: &EntityName, message: &Message) -> Option<Self> {
        let peer = peer.as_str().to_owned();
        match message {
            Message::AcceptActivation(_)
            | Message::RejectActivation(_)
            | Message::ModifyActivation(_) => {
                message
                    .activation_key()
                    .map(|(id, count)| PendingKey::Activation {
                        peer,
                        id: id.as_str().to_owned(),
                        count,
                    })
            }
            Message::Response(r) => Some(PendingKey::Market {
                peer,
                msg_id: r.msg_id.as_str().to_owned(),
            }),
            _ => None,
        }
    }
}

/// A delivery, as far as the decisions read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub(crate) tag: u64,
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    pub(crate) user_id: Option<String>,
    /// The `x-first-death-exchange` header: where a message moved by a queue migration was
    /// first published.
    pub(crate) first_death_exchange: Option<String>,
    pub(crate) message_id: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// What a delivery became.
#[derive(Debug)]
pub(crate) enum Received {
    /// Invalid: a copy is queued on the quarantine lane with the reason, unless too many copies
    /// wait already: then `dropped` holds the copy's headers, for the log line that is its only
    /// record. `ack` is the original's tag when it is acknowledged now rather than when its copy
    /// is confirmed.
    Quarantined {
        from: Option<String>,
        class: RejectClass,
        reason: String,
        ack: Option<u64>,
        dropped: Option<Headers>,
    },
    /// Seen before: acknowledge `ack` now, if any (none while the application still holds the
    /// message: the new tag is acknowledged with it).
    Duplicate { ack: Option<u64> },
    /// Valid and new: for the requester waiting on `answers`, if one still waits (then its tag
    /// is acknowledged), else for the application ([`Reception::hand_over`]).
    Fresh(Box<Fresh>),
}

/// A valid, new delivery.
#[derive(Debug)]
pub(crate) struct Fresh {
    pub(crate) from: EntityName,
    pub(crate) message: Message,
    pub(crate) tag: u64,
    /// The exchange and routing key it came with (given back, not copied again, for the
    /// application's [`crate::Incoming`]).
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    /// Its dedupe key; `None` when the sender set no message_id.
    pub(crate) key: Option<DedupeKey>,
    /// The waiting request it answers, if it is an answer.
    pub(crate) answers: Option<PendingKey>,
}

/// A quarantine copy's headers: the reason, the sender, the exchange, the message id.
pub(crate) type Headers = Vec<(String, String)>;

/// What the application's settlements (acks, releases, rejections) come to.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ByApplication {
    /// Tags to acknowledge now.
    pub(crate) ack: Vec<u64>,
    /// The headers of each message the application rejected (each quarantined, or dropped when
    /// in `dropped` too), for the log.
    pub(crate) rejected: Vec<Headers>,
    /// The headers of the rejected messages dropped: too many quarantine copies wait already.
    pub(crate) dropped: Vec<Headers>,
}

/// The receiving side's state: the dedupe window, the messages the application holds, the
/// messages to give back, and whether and when the inbox is consumed.
#[derive(Debug)]
pub(crate) struct Reception {
    me: EntityName,
    groups: Vec<EntityName>,
    hold_max: usize,
    dedupe: DedupeWindow,
    held: Held,
    /// Delivery tags the application gave back, nacked at the next retry tick (kept pinned until
    /// then): a message that fails at once every time comes back once a second, not in a loop.
    giving_back: Vec<u64>,
    consuming: bool,
    /// When to try consuming again, while the inbox is not consumed.
    consume_at: Option<Instant>,
    consume_backoff: Backoff,
}

/// Most invalid deliveries whose originals stay unacknowledged until their quarantine copy is
/// confirmed: each holds a place of the prefetch window, so a peer flooding invalid messages
/// while the quarantine is slow cannot take the window from everyone else. Past it, an
/// original is acknowledged at once and its copy, ours alone then, goes to the quarantine as
/// usual (only a crash of this process before the copy's confirm loses it).
fn quarantine_hold_max(prefetch: u16) -> usize {
    (usize::from(prefetch) / 4).clamp(1, 100)
}

impl Reception {
    /// The receiving side of `me`, member of `groups`, consuming with `prefetch` and dropping
    /// duplicates among the last `dedupe_window` messages.
    pub(crate) fn new(
        me: EntityName,
        groups: Vec<EntityName>,
        prefetch: u16,
        dedupe_window: usize,
    ) -> Self {
        Self {
            me,
            groups,
            hold_max: quarantine_hold_max(prefetch),
            dedupe: DedupeWindow::new(dedupe_window),
            held: Held::default(),
            giving_back: Vec::new(),
            consuming: false,
            consume_at: None,
            consume_backoff: Backoff::new(Duration::from_secs(1), CONSUME_RETRY_MAX),
        }
    }

    /// A new connection: its tags start again; held messages wait for their redelivery; a
    /// failing consume starts again from the shortest wait (the new connection may be to
    /// another node, or the queue's node back).
    pub(crate) fn new_connection(&mut self) {
        self.held.new_connection();
        self.giving_back.clear();
        self.consuming = false;
        self.consume_at = None;
        self.consume_backoff.reset();
    }

    /// Checks one delivery. A quarantine copy goes on `quarantine` (the lane that publishes
    /// them); its original stays unacknowledged until the copy is confirmed, unless many do.
    pub(crate) fn delivered(
        &mut self,
        delivery: Delivery,
        quarantine: &mut Settlement,
    ) -> Received {
        let Delivery {
            tag,
            exchange,
            routing_key,
            user_id,
            first_death_exchange,
            message_id,
            body,
        } = delivery;
        let (from, message) = match verdict(
            &self.me,
            &self.groups,
            &exchange,
            user_id.as_deref(),
            first_death_exchange.as_deref(),
            &body,
        ) {
            Ok(valid) => valid,
            Err((from, class, reason)) => {
                let mut headers = vec![
                    (QUARANTINE_REASON_HEADER.into(), reason.clone()),
                    (
                        QUARANTINE_FROM_HEADER.into(),
                        from.clone().unwrap_or_else(|| "unknown".into()),
                    ),
                    ("x-ebadge-exchange".into(), exchange),
                ];
                if let Some(id) = message_id {
                    headers.push(("x-ebadge-message-id".into(), id));
                }
                let (ack, dropped) = self.quarantine(quarantine, tag, routing_key, body, headers);
                return Received::Quarantined {
                    from,
                    class,
                    reason,
                    ack,
                    dropped,
                };
            }
        };
        let key = match message_id {
            Some(id) => {
                let key = (from.as_str().to_owned(), id);
                if !self.dedupe.first_time(&key.0, &key.1) {
                    let ack = (!self.held.redelivered(&key, tag)).then_some(tag);
                    return Received::Duplicate { ack };
                }
                Some(key)
            }
            None => None,
        };
        let answers = PendingKey::answered_by(&from, &message);
        Received::Fresh(Box::new(Fresh {
            from,
            message,
            tag,
            exchange,
            routing_key,
            key,
            answers,
        }))
    }

    /// Queues a quarantine copy of delivery `tag`, holding the original if there is a place:
    /// the tag to acknowledge now (if not held), and the copy's headers if it was dropped
    /// instead.
    fn quarantine(
        &mut self,
        quarantine: &mut Settlement,
        tag: u64,
        routing_key: String,
        body: Vec<u8>,
        headers: Headers,
    ) -> (Option<u64>, Option<Headers>) {
        if !quarantine.quarantine_has_room() {
            return (Some(tag), Some(headers));
        }
        let hold = quarantine.holding() < self.hold_max;
        quarantine.quarantine(QuarantineCopy::new(
            hold.then_some(tag),
            routing_key,
            body,
            headers,
        ));
        if hold {
            self.held.pin(tag);
            (None, None)
        } else {
            (Some(tag), None)
        }
    }

    /// A fresh delivery goes to the application: the handle id its acknowledgement will name.
    pub(crate) fn hand_over(&mut self, key: Option<DedupeKey>, tag: u64) -> u64 {
        self.held.hold(key, tag)
    }

    /// What the application did with messages it was given. A rejected message's copy goes on
    /// `quarantine`; one released (dropped without an ack) is given back at the next tick,
    /// unless `inbox_open` is false (nobody would take it: it stays unacknowledged rather than
    /// come back again and again).
    pub(crate) fn by_application(
        &mut self,
        settles: Vec<Settle>,
        quarantine: &mut Settlement,
        inbox_open: bool,
    ) -> ByApplication {
        let mut outcome = ByApplication::default();
        for settle in settles {
            match settle {
                Settle::Ack(id) => outcome.ack.extend(self.held.release(id).1),
                Settle::Reject(id, rejected) => {
                    outcome.rejected.push(rejected.headers.clone());
                    let (key, tag) = self.held.release(id);
                    let room = quarantine.quarantine_has_room();
                    let hold = tag.is_some() && room && quarantine.holding() < self.hold_max;
                    if tag.is_none() || hold {
                        // The original stays the broker's until its copy is confirmed: if the
                        // link drops first (the copy is then forgotten), or the original died
                        // with a channel already, its redelivery must reach the application (and
                        // be rejected) again, not be dropped as a duplicate.
                        if let Some((sender, message_id)) = &key {
                            self.dedupe.forget(sender, message_id);
                        }
                    }
                    let Some(tag) = tag else {
                        continue;
                    };
                    let Rejected {
                        routing_key,
                        body,
                        headers,
                    } = *rejected;
                    let (ack, dropped) =
                        self.quarantine(quarantine, tag, routing_key, body, headers);
                    outcome.ack.extend(ack);
                    outcome.dropped.extend(dropped);
                }
                Settle::Release(id) => {
                    let (key, tag) = self.held.release(id);
                    if let Some((sender, message_id)) = key {
                        self.dedupe.forget(&sender, &message_id);
                    }
                    // Without a tag it died with a channel: the broker offers it again anyway.
                    if let Some(tag) = tag {
                        self.held.pin(tag);
                        if inbox_open {
                            self.giving_back.push(tag);
                        }
                    }
                }
            }
        }
        outcome
    }

    /// The client is closing: the tags of what the application acknowledged (the rest the
    /// connection's close gives back, rejected ones too: the next run meets them again).
    pub(crate) fn closing(&mut self, settles: Vec<Settle>) -> Vec<u64> {
        settles
            .into_iter()
            .filter_map(|settle| match settle {
                Settle::Ack(id) => self.held.release(id).1,
                Settle::Release(_) | Settle::Reject(..) => None,
            })
            .collect()
    }

    /// The tags to give back now (`basic.nack` with requeue): the broker offers them again.
    pub(crate) fn give_back(&mut self) -> Vec<u64> {
        let tags = std::mem::take(&mut self.giving_back);
        for tag in &tags {
            self.held.unpin(*tag);
        }
        tags
    }

    /// Quarantine copies of these originals are confirmed (or ours alone now): their tags, to
    /// acknowledge.
    pub(crate) fn copies_settled(&mut self, originals: Vec<u64>) -> Vec<u64> {
        originals.into_iter().map(|t| self.held.unpin(t)).collect()
    }

    /// How to acknowledge `tags`: one `multiple` ack below the oldest tag still held, the rest
    /// one by one.
    pub(crate) fn ack_plan(&self, tags: Vec<u64>) -> AckPlan {
        self.held.plan(tags)
    }

    /// The inbox is consumed (again): the next failure starts from the shortest wait.
    pub(crate) fn consumer_opened(&mut self) {
        self.consuming = true;
        self.consume_at = None;
        self.consume_backoff.reset();
    }

    /// Consuming the inbox failed (its node down, a migration, not provisioned yet): the wait
    /// before the next attempt, which doubles, with jitter, up to 30 s. The connection stays:
    /// publishing goes on, and a fleet whose inboxes' node is down does not reconnect in a storm.
    pub(crate) fn consume_failed(&mut self, now: Instant) -> Duration {
        self.consuming = false;
        let wait = self.consume_backoff.next_jittered();
        self.consume_at = Some(now + wait);
        wait
    }

    /// The consuming channel is gone (closed by the broker, the consumer cancelled, the
    /// deliveries ended): what it delivered and the application still holds comes again on the
    /// next one (tags are per channel), consumed again shortly. False if it was gone already.
    /// The caller also forgets the quarantine copies holding originals of that channel.
    pub(crate) fn consumer_lost(&mut self, now: Instant) -> bool {
        if !self.consuming {
            return false;
        }
        self.consuming = false;
        self.consume_backoff.reset();
        self.giving_back.clear();
        self.consume_at = Some(now + CONSUME_AGAIN);
        self.held.new_connection();
        true
    }

    /// Whether the inbox is consumed now.
    pub(crate) fn is_consuming(&self) -> bool {
        self.consuming
    }

    /// Whether an attempt to consume again is due.
    pub(crate) fn consume_due(&self, now: Instant) -> bool {
        self.consume_at.is_some_and(|at| now >= at)
    }

    /// Whether the retry tick has work here: messages to give back, or a consumer to reopen.
    pub(crate) fn needs_tick(&self) -> bool {
        !self.giving_back.is_empty() || self.consume_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settlement::Lane;

    fn name(s: &str) -> EntityName {
        EntityName::new(s).unwrap()
    }

    /// The receiving side of `ts` with a prefetch of 8 (two originals held for their copies).
    fn reception() -> Reception {
        Reception::new(name("ts"), vec![], 8, 100)
    }

    fn quarantine_lane() -> Settlement {
        Settlement::for_lane(Lane::all(1).remove(0), 0)
    }

    fn delivery(tag: u64, id: Option<&str>, body: &str) -> Delivery {
        Delivery {
            tag,
            exchange: "heh-1-to-ts".into(),
            routing_key: "get_capabilities".into(),
            user_id: None,
            first_death_exchange: None,
            message_id: id.map(str::to_owned),
            body: body.as_bytes().to_vec(),
        }
    }

    const VALID: &str = r#"{"msg":"get_capabilities"}"#;

    fn fresh(received: Received) -> Fresh {
        match received {
            Received::Fresh(f) => *f,
            other => panic!("not fresh: {other:?}"),
        }
    }

    fn rejected() -> Box<Rejected> {
        Box::new(Rejected {
            routing_key: "get_capabilities".into(),
            body: VALID.into(),
            headers: vec![(QUARANTINE_REASON_HEADER.into(), "the handler failed".into())],
        })
    }

    #[test]
    fn an_invalid_delivery_is_held_until_its_copy_is_confirmed_up_to_a_quarter_of_the_prefetch() {
        let mut r = reception();
        let mut q = quarantine_lane();
        for tag in 1..=3 {
            match r.delivered(delivery(tag, Some("x"), "{not json"), &mut q) {
                Received::Quarantined {
                    ack,
                    dropped,
                    class,
                    from,
                    ..
                } => {
                    assert!(dropped.is_none());
                    assert_eq!(class, RejectClass::InvalidMessage);
                    assert_eq!(from.as_deref(), Some("heh-1"));
                    // Two are held (8 / 4), the third is acknowledged at once.
                    assert_eq!(ack, (tag == 3).then_some(3), "tag {tag}");
                }
                other => panic!("not quarantined: {other:?}"),
            }
        }
        assert_eq!(q.holding(), 2);
        // Held originals stay out of a coalesced ack until their copies are confirmed.
        assert_eq!(r.ack_plan(vec![3]).single, vec![3]);
        assert_eq!(r.copies_settled(vec![1, 2]), vec![1, 2]);
        assert_eq!(r.ack_plan(vec![3]).multiple_upto, Some(3));
    }

    #[test]
    fn a_quarantine_copy_names_the_reason_the_sender_the_exchange_and_the_message_id() {
        let mut r = reception();
        let mut q = quarantine_lane();
        let _ = r.delivered(delivery(1, Some("m-1"), "{not json"), &mut q);
        let (publishes, _) = q.due(&crate::outbox::Outbox::in_memory(10), Instant::now());
        let crate::settlement::Publish::Quarantine(copy) = &publishes[0] else {
            panic!("not a copy: {publishes:?}");
        };
        let header = |k: &str| {
            copy.headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert!(header(QUARANTINE_REASON_HEADER).is_some_and(|r| !r.is_empty()));
        assert_eq!(header(QUARANTINE_FROM_HEADER), Some("heh-1"));
        assert_eq!(header("x-ebadge-exchange"), Some("heh-1-to-ts"));
        assert_eq!(header("x-ebadge-message-id"), Some("m-1"));
        assert_eq!(copy.original_tag, Some(1));
    }

    #[test]
    fn with_the_quarantine_backlog_full_an_invalid_delivery_is_dropped_and_acknowledged() {
        let mut r = reception();
        let mut q = quarantine_lane();
        for _ in 0..crate::settlement::QUARANTINE_BACKLOG {
            q.quarantine(QuarantineCopy::new(None, "k".into(), vec![], vec![]));
        }
        match r.delivered(delivery(7, None, "{not json"), &mut q) {
            Received::Quarantined { ack, dropped, .. } => {
                // The headers, for the log line that is the only record of it.
                let dropped = dropped.expect("dropped");
                assert!(dropped.iter().any(|(k, _)| k == QUARANTINE_REASON_HEADER));
                assert_eq!(ack, Some(7));
            }
            other => panic!("not quarantined: {other:?}"),
        }
    }

    #[test]
    fn a_duplicate_is_acknowledged_unless_the_application_still_holds_the_message() {
        let mut r = reception();
        let mut q = quarantine_lane();
        let first = fresh(r.delivered(delivery(1, Some("a"), VALID), &mut q));
        let id = r.hand_over(first.key, first.tag);
        // A republished copy on the same connection: the held delivery keeps its tag.
        assert!(matches!(
            r.delivered(delivery(2, Some("a"), VALID), &mut q),
            Received::Duplicate { ack: Some(2) }
        ));
        // After a reconnect, the redelivery becomes the held message's tag.
        r.new_connection();
        assert!(matches!(
            r.delivered(delivery(1, Some("a"), VALID), &mut q),
            Received::Duplicate { ack: None }
        ));
        let settled = r.by_application(vec![Settle::Ack(id)], &mut q, true);
        assert_eq!(settled.ack, vec![1]);
        // Done with it: a later duplicate is acknowledged at once.
        assert!(matches!(
            r.delivered(delivery(2, Some("a"), VALID), &mut q),
            Received::Duplicate { ack: Some(2) }
        ));
    }

    #[test]
    fn a_message_without_id_is_never_a_duplicate() {
        let mut r = reception();
        let mut q = quarantine_lane();
        let one = fresh(r.delivered(delivery(1, None, VALID), &mut q));
        let two = fresh(r.delivered(delivery(2, None, VALID), &mut q));
        assert!(one.key.is_none() && two.key.is_none());
    }

    #[test]
    fn an_answer_names_the_request_it_answers_and_the_peer_it_came_from() {
        let mut r = reception();
        let mut q = quarantine_lane();
        let accept = r#"{"msg":"accept_activation","id":"act-1","modification_count":2}"#;
        let f = fresh(r.delivered(delivery(1, Some("x"), accept), &mut q));
        assert_eq!(
            f.answers,
            Some(PendingKey::Activation {
                peer: "heh-1".into(),
                id: "act-1".into(),
                count: 2
            })
        );
        let response = r#"{"msg":"response","msg_id":"bid-9","response_code":200,"response_subcode":200,"response_desc":"OK"}"#;
        let f = fresh(r.delivered(delivery(2, Some("y"), response), &mut q));
        assert_eq!(
            f.answers,
            Some(PendingKey::Market {
                peer: "heh-1".into(),
                msg_id: "bid-9".into()
            })
        );
        let f = fresh(r.delivered(delivery(3, Some("z"), VALID), &mut q));
        assert_eq!(f.answers, None);
    }

    #[test]
    fn a_rejected_message_is_quarantined_and_its_redelivery_reaches_the_application_again() {
        let mut r = reception();
        let mut q = quarantine_lane();
        let f = fresh(r.delivered(delivery(1, Some("a"), VALID), &mut q));
        let id = r.hand_over(f.key, f.tag);
        let settled = r.by_application(vec![Settle::Reject(id, rejected())], &mut q, true);
        // Held for its copy: not acknowledged yet.
        assert_eq!(
            settled,
            ByApplication {
                ack: vec![],
                rejected: vec![rejected().headers],
                dropped: vec![]
            }
        );
        assert_eq!(q.holding(), 1);
        // The link drops before the copy's confirm: the redelivery is not a duplicate.
        r.new_connection();
        assert!(matches!(
            r.delivered(delivery(1, Some("a"), VALID), &mut q),
            Received::Fresh(_)
        ));
    }

    #[test]
    fn a_rejected_message_past_the_hold_limit_is_acknowledged_at_once_its_copy_kept() {
        let mut r = Reception::new(name("ts"), vec![], 4, 100);
        let mut q = quarantine_lane();
        let mut ids = Vec::new();
        for tag in 1..=2 {
            let f = fresh(r.delivered(delivery(tag, Some(&tag.to_string()), VALID), &mut q));
            ids.push(r.hand_over(f.key, f.tag));
        }
        let settles = ids
            .iter()
            .map(|id| Settle::Reject(*id, rejected()))
            .collect();
        let settled = r.by_application(settles, &mut q, true);
        // A prefetch of 4 holds one original; the second is acknowledged, its copy queued.
        assert_eq!(settled.ack, vec![2]);
        assert_eq!((settled.rejected.len(), settled.dropped.len()), (2, 0));
        assert!(q.quarantine_pending());
        // Its redelivery (it was acknowledged: none should come) would be a duplicate.
        assert!(matches!(
            r.delivered(delivery(9, Some("2"), VALID), &mut q),
            Received::Duplicate { .. }
        ));
    }

    #[test]
    fn a_rejected_message_with_the_backlog_full_is_dropped_and_acknowledged() {
        let mut r = reception();
        let mut q = quarantine_lane();
        let f = fresh(r.delivered(delivery(1, Some("a"), VALID), &mut q));
        let id = r.hand_over(f.key, f.tag);
        for _ in 0..crate::settlement::QUARANTINE_BACKLOG {
            q.quarantine(QuarantineCopy::new(None, "k".into(), vec![], vec![]));
        }
        let settled = r.by_application(vec![Settle::Reject(id, rejected())], &mut q, true);
        assert_eq!(
            settled,
            ByApplication {
                ack: vec![1],
                rejected: vec![rejected().headers],
                dropped: vec![rejected().headers]
            }
        );
    }

    #[test]
    fn a_released_message_is_given_back_at_the_tick_and_counts_as_new_when_it_comes_again() {
        let mut r = reception();
        let mut q = quarantine_lane();
        let f = fresh(r.delivered(delivery(1, Some("a"), VALID), &mut q));
        let id = r.hand_over(f.key, f.tag);
        assert!(!r.needs_tick());
        let settled = r.by_application(vec![Settle::Release(id)], &mut q, true);
        assert!(settled.ack.is_empty());
        assert!(r.needs_tick());
        // Pinned until given back: a coalesced ack must not cover it.
        assert_eq!(r.ack_plan(vec![2]).single, vec![2]);
        assert_eq!(r.give_back(), vec![1]);
        assert_eq!(r.ack_plan(vec![2]).multiple_upto, Some(2));
        assert!(matches!(
            r.delivered(delivery(3, Some("a"), VALID), &mut q),
            Received::Fresh(_)
        ));
    }

    #[test]
    fn a_released_message_is_not_given_back_while_the_inbox_is_closed() {
        let mut r = reception();
        let mut q = quarantine_lane();
        let f = fresh(r.delivered(delivery(1, Some("a"), VALID), &mut q));
        let id = r.hand_over(f.key, f.tag);
        let _ = r.by_application(vec![Settle::Release(id)], &mut q, false);
        assert!(r.give_back().is_empty());
    }

    #[test]
    fn on_close_only_what_the_application_acknowledged_is_acknowledged() {
        let mut r = reception();
        let mut q = quarantine_lane();
        let ids: Vec<u64> = (1..=3)
            .map(|tag| {
                let f = fresh(r.delivered(delivery(tag, Some(&tag.to_string()), VALID), &mut q));
                r.hand_over(f.key, f.tag)
            })
            .collect();
        let tags = r.closing(vec![
            Settle::Ack(ids[0]),
            Settle::Release(ids[1]),
            Settle::Reject(ids[2], rejected()),
        ]);
        assert_eq!(tags, vec![1]);
    }

    #[test]
    fn a_lost_consumer_is_consumed_again_shortly_and_its_held_messages_wait_for_redelivery() {
        let mut r = reception();
        let mut q = quarantine_lane();
        let now = Instant::now();
        assert!(!r.consumer_lost(now), "never consumed: nothing lost");
        r.consumer_opened();
        let f = fresh(r.delivered(delivery(5, Some("a"), VALID), &mut q));
        let id = r.hand_over(f.key, f.tag);
        assert!(r.consumer_lost(now));
        assert!(!r.consumer_lost(now), "lost once");
        assert!(!r.is_consuming());
        assert!(!r.consume_due(now));
        assert!(r.consume_due(now + CONSUME_AGAIN));
        // Its tag died with the channel: the application's ack has nothing to acknowledge,
        // and the redelivery on the next channel becomes the held message's.
        r.consumer_opened();
        assert!(matches!(
            r.delivered(delivery(1, Some("a"), VALID), &mut q),
            Received::Duplicate { ack: None }
        ));
        assert_eq!(
            r.by_application(vec![Settle::Ack(id)], &mut q, true).ack,
            vec![1]
        );
    }

    #[test]
    fn a_failing_consume_backs_off_and_an_opened_consumer_starts_the_backoff_again() {
        let mut r = reception();
        let now = Instant::now();
        let waits: Vec<Duration> = (0..8).map(|_| r.consume_failed(now)).collect();
        // ±50 % jitter around 1, 2, 4 … 30 s.
        assert!(waits[0] <= Duration::from_millis(1500), "{waits:?}");
        assert!(waits[7] >= Duration::from_secs(15), "{waits:?}");
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(45)));
        assert!(r.needs_tick());
        assert!(r.consume_due(now + Duration::from_secs(45)));
        r.consumer_opened();
        assert!(!r.needs_tick());
        assert!(r.consume_failed(now) <= Duration::from_millis(1500));
    }

    #[test]
    fn a_new_connection_consumes_again_from_the_shortest_wait() {
        let mut r = reception();
        let now = Instant::now();
        for _ in 0..8 {
            r.consume_failed(now);
        }
        r.new_connection();
        assert!(
            !r.needs_tick(),
            "nothing due before the session's first attempt"
        );
        assert!(r.consume_failed(now) <= Duration::from_millis(1500));
    }
}
