//! Who sent a delivery and whether it is valid ([`verdict`]), and the classes of refusal
//! ([`RejectClass`], a metrics label): the first decision of the receiving side
//! ([`crate::reception`]), without I/O.

use crate::conventions::{EntityName, parse_pair_exchange};
use ebadge_model::Message;

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
    /// relayed by a binding into a pair exchange (`ebadge audit` finds such bindings).
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

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
}
