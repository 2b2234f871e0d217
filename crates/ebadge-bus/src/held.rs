//! Which delivery tags may be acknowledged when ([`Held`]): the messages the application holds
//! across reconnects, the tags a coalesced ack must not cover, and the plan of one `multiple`
//! ack plus single ones. Part of the receiving side's core ([`crate::reception`]), without I/O.

use std::collections::{BTreeSet, HashMap};

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
