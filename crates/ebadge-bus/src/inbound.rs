//! The receiving side's decisions, without I/O: who sent a delivery and whether it is valid
//! ([`verdict`]), and which delivery tags may be acknowledged when ([`Held`]). The session feeds
//! it what the broker and the application do; it answers what to acknowledge.
//!
//! The rule it keeps: a message is acknowledged only when the application has handled it (or when
//! it was a duplicate of one the application handled, or its quarantine copy is confirmed) —
//! across reconnects, where the broker redelivers what the old connection had not acknowledged.

use crate::conventions::{EntityName, parse_pair_exchange};
use ebadge_model::Message;
use std::collections::{BTreeSet, HashMap};

/// Who sent a delivery, and the decoded message; or why it goes to the quarantine.
///
/// The sender is the exchange's (only `<s>` may write to `<s>-to-<r>`: the broker enforces it).
/// Properties are optional, as clients of other stacks publish them: a `user_id`, when present,
/// must name the same sender.
///
/// The exchange's receiver half must be `me` or one of `groups` (the groups `me` is a member
/// of, [`ClientConfig::groups`](crate::ClientConfig::groups)). The broker names in a delivery
/// the exchange the message was *published* to, not the ones it passed through: an entity `r`
/// that may write `r-to-me` and read `s-to-r` can bind the first to the second (RabbitMQ
/// allows it), and `s`'s messages to `r` then reach us through `s-to-r`. Taking the sender
/// from that name alone would credit `s` with messages it never sent us; such a copy is
/// quarantined ([`RejectClass::NotAddressed`]), naming the exchange and who relayed it.
///
/// A message moved by a queue migration (`ebadge provision` changing an inbox's type) arrives
/// through the default exchange, dead-lettered, with its original exchange in the
/// `x-first-death-exchange` header. Any publisher can write that header, so it is believed only
/// together with a `user_id` naming the same sender: the broker checked the `user_id` against
/// the publisher's login when the message was first published. A moved message without one is
/// quarantined (its sender cannot be verified), not lost. Its original exchange must be
/// addressed to us too.
pub(crate) fn verdict(
    me: &EntityName,
    groups: &[EntityName],
    exchange: &str,
    user_id: Option<&str>,
    first_death_exchange: Option<&str>,
    body: &[u8],
) -> Result<(EntityName, Message), (Option<String>, RejectClass, String)> {
    let moved = exchange.is_empty() && first_death_exchange.is_some();
    let original = if moved {
        first_death_exchange.unwrap_or_default()
    } else {
        exchange
    };
    let Some((sender, receiver)) = parse_pair_exchange(original) else {
        return Err((
            user_id.map(str::to_owned),
            RejectClass::UnknownSender,
            format!(
                "arrived through {original:?}, not a pair exchange <sender>-to-<receiver>: the sender is unknown"
            ),
        ));
    };
    let known = Some(sender.as_str().to_owned());
    if receiver != *me && !groups.contains(&receiver) {
        let told = if groups.is_empty() {
            "it was told of no group".to_owned()
        } else {
            let names: Vec<&str> = groups.iter().map(EntityName::as_str).collect();
            format!("its groups are {}", names.join(", "))
        };
        return Err((
            known,
            RejectClass::NotAddressed,
            format!(
                "arrived through {original:?}, addressed to {receiver}, not to {me} ({told}): \
                 relayed by {receiver} (or a member of group {receiver}) through a binding into \
                 one of its pair exchanges, which `ebadge audit` reports and `ebadge provision` \
                 removes; or {me} is a member of group {receiver} and its client was not told \
                 (ClientConfig::groups, `--group`)"
            ),
        ));
    }
    if moved && user_id.is_none() {
        return Err((
            known,
            RejectClass::UnverifiedMove,
            format!(
                "moved by a queue migration from exchange {original:?} without a user_id: its sender cannot be verified"
            ),
        ));
    }
    if let Some(user) = user_id
        && user != sender.as_str()
    {
        return Err((
            known,
            RejectClass::UserIdMismatch,
            format!("user_id {user:?} does not match the sender {sender} of exchange {original:?}"),
        ));
    }
    match Message::decode_slice(body) {
        Ok(message) => Ok((sender, message)),
        Err(e) => Err((known, RejectClass::InvalidMessage, e.to_string())),
    }
}

/// Why a delivery goes to the quarantine, by class: few and fixed, so a metrics label (the
/// reason's text, kept in the quarantined copy's header, says more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectClass {
    /// It did not come through a pair exchange `<sender>-to-<receiver>`.
    UnknownSender,
    /// Moved by a queue migration without a `user_id` to verify its sender by.
    UnverifiedMove,
    /// Its `user_id` names another entity than its exchange's sender.
    UserIdMismatch,
    /// Its body is not a valid eBADGE message (JSON, type, fields, D3.1.3's rules).
    InvalidMessage,
    /// It came through a pair exchange addressed to another entity or a group we are not in:
    /// relayed by a binding into a pair exchange (see [`verdict`]).
    NotAddressed,
    /// Valid, but the application refused it ([`crate::Incoming::reject`]): a handler failed.
    Rejected,
}

impl RejectClass {
    /// Every class, in a fixed order (the index of [`RejectClass::index`]).
    pub const ALL: [RejectClass; 6] = [
        RejectClass::UnknownSender,
        RejectClass::UnverifiedMove,
        RejectClass::UserIdMismatch,
        RejectClass::InvalidMessage,
        RejectClass::NotAddressed,
        RejectClass::Rejected,
    ];

    /// The label value: `unknown_sender`, `unverified_move`, `user_id_mismatch`,
    /// `invalid_message`, `not_addressed`, `rejected_by_application`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectClass::UnknownSender => "unknown_sender",
            RejectClass::UnverifiedMove => "unverified_move",
            RejectClass::UserIdMismatch => "user_id_mismatch",
            RejectClass::InvalidMessage => "invalid_message",
            RejectClass::NotAddressed => "not_addressed",
            RejectClass::Rejected => "rejected_by_application",
        }
    }

    /// Its position in [`RejectClass::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The identity used to drop duplicates: (sender, message_id).
pub(crate) type DedupeKey = (String, String);

/// One message handed towards the application and not acknowledged by it yet.
#[derive(Debug)]
struct HeldMessage {
    key: Option<DedupeKey>,
    /// Its delivery tag on the current connection; `None` after a reconnect until the broker
    /// redelivers it.
    tag: Option<u64>,
}

/// Messages the application holds, and delivery tags that a coalesced (`multiple`) ack must not
/// cover.
#[derive(Debug, Default)]
pub(crate) struct Held {
    next_id: u64,
    by_id: HashMap<u64, HeldMessage>,
    by_key: HashMap<DedupeKey, u64>,
    /// Tags of this connection not to acknowledge yet: held messages and quarantined ones whose
    /// copy is not confirmed.
    pinned: BTreeSet<u64>,
}

/// What to send the broker: one `multiple` ack up to a tag, then single acks.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AckPlan {
    pub(crate) multiple_upto: Option<u64>,
    pub(crate) single: Vec<u64>,
}

impl Held {
    /// A new connection: the old tags are void; held messages wait for their redelivery.
    pub(crate) fn new_connection(&mut self) {
        self.pinned.clear();
        for held in self.by_id.values_mut() {
            held.tag = None;
        }
    }

    /// Hands a delivery to the application: its handle id.
    pub(crate) fn hold(&mut self, key: Option<DedupeKey>, tag: u64) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        if let Some(key) = &key {
            self.by_key.insert(key.clone(), id);
        }
        self.by_id.insert(
            id,
            HeldMessage {
                key,
                tag: Some(tag),
            },
        );
        self.pinned.insert(tag);
        id
    }

    /// A duplicate arrived with `tag`. If the application still holds the message, the new tag
    /// is its own (acknowledged when the application acknowledges): true. Otherwise the
    /// application is done with it and the duplicate may be acknowledged: false.
    pub(crate) fn redelivered(&mut self, key: &DedupeKey, tag: u64) -> bool {
        let Some(held) = self.by_key.get(key).and_then(|id| self.by_id.get_mut(id)) else {
            return false;
        };
        if held.tag.is_some() {
            // A republished copy on the same connection: the held delivery keeps its own tag,
            // this one may go.
            return false;
        }
        held.tag = Some(tag);
        self.pinned.insert(tag);
        true
    }

    /// Keeps `tag` out of coalesced acks (a quarantined message until its copy is confirmed).
    pub(crate) fn pin(&mut self, tag: u64) {
        self.pinned.insert(tag);
    }

    /// The application is done with handle `id` (acknowledged or dropped it): its dedupe key,
    /// and the tag to acknowledge or give back now, if it has one on this connection.
    pub(crate) fn release(&mut self, id: u64) -> (Option<DedupeKey>, Option<u64>) {
        let Some(held) = self.by_id.remove(&id) else {
            return (None, None);
        };
        if let Some(key) = &held.key
            && self.by_key.get(key) == Some(&id)
        {
            self.by_key.remove(key);
        }
        if let Some(tag) = held.tag {
            self.pinned.remove(&tag);
        }
        (held.key, held.tag)
    }

    /// Unpins `tag` (its quarantine copy is confirmed) and returns it.
    pub(crate) fn unpin(&mut self, tag: u64) -> u64 {
        self.pinned.remove(&tag);
        tag
    }

    /// How many messages the application holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Coalesces `tags` to acknowledge: every tag below the oldest pinned one goes in one
    /// `multiple` ack; the rest one by one.
    pub(crate) fn plan(&self, mut tags: Vec<u64>) -> AckPlan {
        let floor = self.pinned.first().copied().unwrap_or(u64::MAX);
        tags.sort_unstable();
        tags.dedup();
        let below = tags.partition_point(|t| *t < floor);
        AckPlan {
            multiple_upto: below.checked_sub(1).map(|i| tags[i]),
            single: tags.split_off(below),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> DedupeKey {
        ("heh-1".into(), id.into())
    }

    fn name(s: &str) -> EntityName {
        EntityName::new(s).unwrap()
    }

    /// [`verdict`] for receiver `ts`, in no group.
    fn verdict(
        exchange: &str,
        user_id: Option<&str>,
        first_death_exchange: Option<&str>,
        body: &[u8],
    ) -> Result<(EntityName, Message), (Option<String>, RejectClass, String)> {
        super::verdict(
            &name("ts"),
            &[],
            exchange,
            user_id,
            first_death_exchange,
            body,
        )
    }

    #[test]
    fn the_sender_comes_from_the_exchange_and_properties_are_optional() {
        let body = br#"{"msg":"get_capabilities"}"#;
        let (from, message) = verdict("heh-1-to-ts", None, None, body).unwrap();
        assert_eq!(from.as_str(), "heh-1");
        assert_eq!(message.type_name(), "get_capabilities");
        assert!(verdict("heh-1-to-ts", Some("heh-1"), None, body).is_ok());

        let (who, class, reason) = verdict("heh-1-to-ts", Some("heh-2"), None, body).unwrap_err();
        assert_eq!(class, RejectClass::UserIdMismatch);
        assert_eq!(who.as_deref(), Some("heh-1"));
        assert!(reason.contains("does not match"), "{reason}");
        let (who, class, reason) = verdict("private-ts-in", Some("ts"), None, body).unwrap_err();
        assert_eq!(class, RejectClass::UnknownSender);
        assert_eq!(who.as_deref(), Some("ts"));
        assert!(reason.contains("not a pair exchange"), "{reason}");
        let (_, class, reason) = verdict("heh-1-to-ts", None, None, b"{").unwrap_err();
        assert_eq!(class, RejectClass::InvalidMessage);
        assert!(!reason.is_empty());
    }

    #[test]
    fn a_message_through_an_exchange_addressed_to_another_is_quarantined_as_relayed() {
        let body = br#"{"msg":"get_capabilities"}"#;
        let (mkt, groups) = (name("mkt"), [name("bsps")]);
        let verdict = |exchange: &str, user_id: Option<&str>, moved: Option<&str>| {
            super::verdict(&mkt, &groups, exchange, user_id, moved, body)
        };
        // Addressed to us, or to a group we are in: heard, from the exchange's sender.
        assert_eq!(
            verdict("ts-to-mkt", Some("ts"), None).unwrap().0,
            name("ts")
        );
        assert_eq!(verdict("tso-to-bsps", None, None).unwrap().0, name("tso"));
        // vpp bound vpp-to-mkt to ts-to-vpp: ts's message to vpp reaches us, user_id and all.
        let (who, class, reason) = verdict("ts-to-vpp", Some("ts"), None).unwrap_err();
        assert_eq!(class, RejectClass::NotAddressed);
        assert_eq!(who.as_deref(), Some("ts"));
        assert!(
            reason.starts_with(
                "arrived through \"ts-to-vpp\", addressed to vpp, not to mkt (its groups are bsps): relayed by vpp"
            ),
            "{reason}"
        );
        // A group we are not in, and the same through a queue migration.
        let (_, class, _) = verdict("tso-to-brps", None, None).unwrap_err();
        assert_eq!(class, RejectClass::NotAddressed);
        let (_, class, _) = verdict("", Some("ts"), Some("ts-to-vpp")).unwrap_err();
        assert_eq!(class, RejectClass::NotAddressed);
        assert!(verdict("", Some("ts"), Some("ts-to-mkt")).is_ok());
        // Without groups, a group message is refused with the hint.
        let (_, class, reason) =
            super::verdict(&mkt, &[], "tso-to-bsps", None, None, body).unwrap_err();
        assert_eq!(class, RejectClass::NotAddressed);
        assert!(reason.contains("(it was told of no group)"), "{reason}");
        assert!(reason.contains("ClientConfig::groups"), "{reason}");
    }

    #[test]
    fn every_reject_class_has_its_index_and_a_distinct_label() {
        for (i, class) in RejectClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i);
        }
        let labels: BTreeSet<&str> = RejectClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(labels.len(), RejectClass::ALL.len());
    }

    #[test]
    fn a_moved_message_is_believed_only_with_a_matching_user_id() {
        let body = br#"{"msg":"get_capabilities"}"#;
        let moved = Some("heh-1-to-ts");
        let (from, _) = verdict("", Some("heh-1"), moved, body).unwrap();
        assert_eq!(from.as_str(), "heh-1");
        let (who, class, reason) = verdict("", None, moved, body).unwrap_err();
        assert_eq!(class, RejectClass::UnverifiedMove);
        assert_eq!(who.as_deref(), Some("heh-1"));
        assert!(reason.contains("cannot be verified"), "{reason}");
        // A forged header: the broker-checked user_id names someone else.
        let (_, _, reason) = verdict("", Some("heh-2"), moved, body).unwrap_err();
        assert!(reason.contains("does not match"), "{reason}");
        // Only a delivery through the default exchange counts as moved.
        assert!(verdict("heh-2-to-ts", Some("heh-2"), moved, body).is_ok());
        let (_, _, reason) = verdict("", Some("ts"), None, body).unwrap_err();
        assert!(reason.contains("not a pair exchange"), "{reason}");
    }

    #[test]
    fn a_held_message_is_acknowledged_only_when_the_application_releases_it() {
        let mut held = Held::default();
        let a = held.hold(Some(key("a")), 1);
        let b = held.hold(Some(key("b")), 2);
        // Tags 3..=5 were duplicates or answers: acknowledged, but not past the held ones.
        assert_eq!(
            held.plan(vec![5, 3, 4]),
            AckPlan {
                multiple_upto: None,
                single: vec![3, 4, 5]
            }
        );
        assert_eq!(held.release(a).1, Some(1));
        assert_eq!(
            held.plan(vec![1]),
            AckPlan {
                multiple_upto: Some(1),
                single: vec![]
            }
        );
        assert_eq!(held.release(b).1, Some(2));
        assert_eq!(held.release(b).1, None, "released once");
    }

    #[test]
    fn after_a_reconnect_the_redelivery_of_a_held_message_waits_for_the_application() {
        let mut held = Held::default();
        let a = held.hold(Some(key("a")), 7);
        assert!(
            !held.redelivered(&key("a"), 8),
            "a copy on the same connection is acked"
        );
        held.new_connection();
        // The broker redelivers it with a new tag: the application still holds it.
        assert!(held.redelivered(&key("a"), 2));
        // Another duplicate of a message the application already acknowledged: ack it.
        assert!(!held.redelivered(&key("z"), 3));
        assert_eq!(
            held.plan(vec![3]).single,
            vec![3],
            "not coalesced past tag 2"
        );
        // The application acks: the new tag goes, never the stale 7.
        assert_eq!(held.release(a).1, Some(2));
        assert_eq!(held.len(), 0);
    }

    #[test]
    fn a_message_acknowledged_between_connections_is_acknowledged_on_its_redelivery() {
        let mut held = Held::default();
        let a = held.hold(Some(key("a")), 7);
        held.new_connection();
        assert_eq!(held.release(a).1, None, "no tag on this connection yet");
        assert!(!held.redelivered(&key("a"), 1), "the duplicate is acked");
    }

    #[test]
    fn pinned_quarantine_tags_stop_coalescing_until_unpinned() {
        let mut held = Held::default();
        held.pin(4);
        assert_eq!(held.plan(vec![2, 6]).multiple_upto, Some(2));
        assert_eq!(held.plan(vec![2, 6]).single, vec![6]);
        let tag = held.unpin(4);
        assert_eq!(held.plan(vec![tag, 6]).multiple_upto, Some(6));
    }

    #[test]
    fn messages_without_id_are_held_by_handle_only() {
        let mut held = Held::default();
        let a = held.hold(None, 1);
        held.new_connection();
        let again = held.hold(None, 1);
        assert_ne!(a, again);
        assert_eq!(held.release(a).1, None);
        assert_eq!(held.release(again).1, Some(1));
    }
}
