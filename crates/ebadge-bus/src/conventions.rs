//! The bus conventions of D3.2.3 section 5.3, made exact: entity names, exchange and queue names,
//! routing keys, permissions and queue policies. The one place they are written down: the client,
//! provisioning, audit and the docs all use these functions.
//!
//! ```
//! use ebadge_bus::conventions::{EntityName, pair_exchange, routing_key, inbox_queue};
//!
//! let heh = EntityName::from_mac("B8:27:EB:EA:02:C1")?;
//! let op = EntityName::new("ts")?;
//! assert_eq!(heh.as_str(), "heh-b827ebea02c1");
//! assert_eq!(pair_exchange(&heh, &op), "heh-b827ebea02c1-to-ts");
//! assert_eq!(inbox_queue(&op), "private-ts-inbox");
//! assert_eq!(routing_key("report", Some("heh-42"))?, "report.heh-42");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

/// The naming rule, as printed in every error about a bad name.
pub const ENTITY_NAME_RULE: &str = "an entity name is 1-63 characters of a-z, 0-9 and '-', \
     starts with a letter, never contains '-to-', never starts with 'to-' or 'private-', never \
     ends with '-to', and is neither 'private' nor the management account's name 'ebadge-admin'";

/// The management API account of provisioning and audit. Reserved: no entity may take this name,
/// or provisioning would rewrite that account and `pki issue` would mint a certificate for it.
pub const MANAGEMENT_USER: &str = "ebadge-admin";

/// The user tag that marks an HEH on the broker. RabbitMQ gives it no rights; it tells the
/// audit, which needs no registry, that this entity's inbox is classic on a cluster by design.
pub const HEH_TAG: &str = "heh";

/// Message TTL of every queue (D3.2.3 6.2.4: messages older than 15 minutes are useless).
pub const MESSAGE_TTL_MS: u64 = 900_000;

/// Default bound on the number of messages in one queue. Past it the broker refuses new messages
/// (`reject-publish`), so a publisher with confirms keeps them instead of the broker dropping the
/// oldest silently.
pub const DEFAULT_MAX_LENGTH: u64 = 1_000_000;

/// Largest message body the bus takes, in bytes: the brokers are configured with it
/// (`max_message_size`), and a client refuses a larger message in `send` rather than have the
/// broker close its channel over it. eBADGE messages are a few kilobytes; the bound limits
/// what one peer can make a node hold. RabbitMQ's own default is 128 MiB (3.x) or 16 MiB (4.x).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Name of the policy that applies the TTL and length bound to every queue.
pub const QUEUE_POLICY: &str = "ebadge-queues";

/// Name of the policy of quorum queues on RabbitMQ 4.0 and later: the bounds of [`QUEUE_POLICY`]
/// and no limit on how often a message may come back unacknowledged. 4.0 counts those returns
/// (a consumer's channel or connection lost while it held the message) and after 20 drops the
/// message, silently when no dead-letter exchange is set: a VPP whose link drops 20 times while
/// it holds an activation would lose it. A policy applies to a queue only if the queue's type
/// takes every key, so `delivery-limit` needs a policy of its own that applies to quorum queues
/// only (`apply-to: quorum_queues`, which 3.10 does not know; 3.10 sets no limit).
pub const QUORUM_POLICY: &str = "ebadge-quorum";

/// Name of the policy of the quarantine queues: they keep what they hold longer than the
/// 15-minute TTL (an operator needs time to look), bounded by length instead.
pub const QUARANTINE_POLICY: &str = "ebadge-quarantine";

/// The pattern of [`QUARANTINE_POLICY`]: every `private-<name>-quarantine`.
pub const QUARANTINE_PATTERN: &str = "^private-.*-quarantine$";

/// How long a quarantined message is kept: 7 days.
pub const QUARANTINE_TTL_MS: u64 = 7 * 24 * 3_600_000;

/// Most messages one quarantine holds; past it the broker refuses copies: the client acknowledges
/// their originals (so they do not hold its prefetch window), tries each copy a few more times
/// with backoff, then drops it with an error log and counts it (`quarantine_dropped`).
pub const QUARANTINE_MAX_LENGTH: u64 = 100_000;

/// A name that is valid as RabbitMQ user, certificate CN and part of exchange names. In a
/// configuration file it is a string, checked as it is read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct EntityName(String);

impl TryFrom<String> for EntityName {
    type Error = NameError;
    fn try_from(name: String) -> Result<Self, NameError> {
        Self::new(&name)
    }
}

/// A name that breaks [`ENTITY_NAME_RULE`] or a routing key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The entity name breaks the rule.
    #[error("{name:?} is not a valid entity name: {ENTITY_NAME_RULE}")]
    Entity {
        /// The refused name.
        name: String,
    },
    /// Not a MAC address of six hex octets.
    #[error("{0:?} is not a MAC address (six hex octets, e.g. B8:27:EB:EA:02:C1)")]
    Mac(String),
    /// The routing key would be longer than AMQP allows or contain a separator.
    #[error(
        "routing key {0:?} is invalid: at most 255 bytes, and heh_id must not contain '.', '*', '#' or whitespace"
    )]
    RoutingKey(String),
}

impl EntityName {
    /// Checks `name` against [`ENTITY_NAME_RULE`].
    pub fn new(name: &str) -> Result<Self, NameError> {
        if is_valid_entity_name(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(NameError::Entity { name: name.into() })
        }
    }

    /// The HEH name for a MAC address: `heh-<12 lowercase hex>`.
    pub fn from_mac(mac: &str) -> Result<Self, NameError> {
        let hex: String = mac.chars().filter(|c| !matches!(c, ':' | '-')).collect();
        if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(NameError::Mac(mac.into()));
        }
        Self::new(&format!("heh-{}", hex.to_ascii_lowercase()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the private namespaces of `self` and `other` overlap: `a` and `a-b` would both
    /// own `private-a-b-…`, and `a`'s write right on `a-to-…` would cover `a-to-x`'s exchanges.
    /// A registry must not hold two such names.
    pub fn overlaps(&self, other: &EntityName) -> bool {
        let (a, b) = (self.as_str(), other.as_str());
        a != b && (b.starts_with(&format!("{a}-")) || a.starts_with(&format!("{b}-")))
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EntityName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Whether `name` follows [`ENTITY_NAME_RULE`].
pub fn is_valid_entity_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        // With these four, the first "-to-" of `<a>-to-<b>` is always the separator: a pair
        // exchange names exactly one (sender, receiver), and no regex of one entity reaches
        // another's exchanges (see the property test in tests/names.rs).
        && !name.contains("-to-")
        && !name.starts_with("to-")
        && !name.ends_with("-to")
        && !name.starts_with("private-")
        && name != "private"
        && name != MANAGEMENT_USER
}

/// The sender and receiver (entity or group) of a pair exchange `<sender>-to-<receiver>`; `None`
/// for any other exchange. Only the sender may publish to it (the broker enforces the write
/// permission), so this is who a message came from, whatever its properties say.
///
/// ```
/// use ebadge_bus::conventions::parse_pair_exchange;
/// let (sender, receiver) = parse_pair_exchange("heh-b827ebea02c1-to-ts").unwrap();
/// assert_eq!((sender.as_str(), receiver.as_str()), ("heh-b827ebea02c1", "ts"));
/// assert!(parse_pair_exchange("private-ts-in").is_none());
/// assert!(parse_pair_exchange("amq.topic").is_none());
/// ```
pub fn parse_pair_exchange(exchange: &str) -> Option<(EntityName, EntityName)> {
    let (sender, receiver) = exchange.split_once("-to-")?;
    Some((
        EntityName::new(sender).ok()?,
        EntityName::new(receiver).ok()?,
    ))
}

/// Whether a binding into the exchange `destination` is a relay: `destination` is outside every
/// private namespace and named `<writer>-to-…`, so it is a pair or group exchange (the only
/// non-private exchanges an entity may write, and so bind into). No binding the conventions
/// imply goes into one. Such a binding copies what was published to its source into
/// `destination`, and its receivers get it with the source's name as the exchange, which names
/// another receiver (`ts-to-vpp` reaching `mkt`): provisioning removes these, the audit reports
/// them, and receivers quarantine what comes through them.
///
/// ```
/// use ebadge_bus::conventions::{is_relay_binding, is_relay_destination};
/// assert!(is_relay_destination("vpp-to-mkt"));
/// assert!(!is_relay_destination("private-mkt-in"));
/// assert!(!is_relay_destination("private-vpp-to-mkt"));
/// assert!(!is_relay_destination("amq.topic"));
/// assert!(is_relay_binding("exchange", "vpp-to-mkt"));
/// assert!(!is_relay_binding("queue", "vpp-to-mkt"));
/// ```
pub fn is_relay_destination(destination: &str) -> bool {
    !destination.starts_with("private-") && destination.contains("-to-")
}

/// Whether a binding to `destination` of type `destination_type` (RabbitMQ's `exchange` or
/// `queue`) is a relay: into an exchange that [`is_relay_destination`].
pub fn is_relay_binding(destination_type: &str, destination: &str) -> bool {
    destination_type == "exchange" && is_relay_destination(destination)
}

/// The exchange a sender publishes to for one receiver (or one group): `<sender>-to-<receiver>`.
pub fn pair_exchange(sender: &EntityName, receiver: &EntityName) -> String {
    format!("{sender}-to-{receiver}")
}

/// The prefix of everything an entity owns: `private-<name>-`.
pub fn private_prefix(name: &EntityName) -> String {
    format!("private-{name}-")
}

/// The names whose private namespace `resource` would lie in: what follows `private-`, cut
/// before each `-` (names may hold `-`: `private-heh-a-in` is `heh`'s or `heh-a`'s), shortest
/// first. None for a resource outside every namespace.
///
/// ```
/// use ebadge_bus::conventions::possible_owners;
/// assert_eq!(possible_owners("private-heh-a-in").collect::<Vec<_>>(), ["heh", "heh-a"]);
/// assert_eq!(possible_owners("ts-to-heh-a").count(), 0);
/// ```
pub fn possible_owners(resource: &str) -> impl Iterator<Item = &str> {
    let rest = resource.strip_prefix("private-").unwrap_or("");
    rest.match_indices('-').map(move |(i, _)| &rest[..i])
}

/// The incoming exchange of a back-end entity (operator, VPP, market party), bound to every
/// exchange it may read: the one place all its incoming traffic passes, where its taps and its
/// own routing (D3.2.3 5.3.3: "route just the energy measurements to a database writer") bind
/// once instead of once per sender. HEHs have none (see [`incoming_side`]).
pub fn incoming_exchange(name: &EntityName) -> String {
    format!("private-{name}-in")
}

/// The entity's durable inbox queue.
pub fn inbox_queue(name: &EntityName) -> String {
    format!("private-{name}-inbox")
}

/// What the exchanges an entity reads (its pair exchanges and group exchanges) are bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncomingSide {
    /// An HEH: straight to its inbox queue, one routing hop. A fleet of 20,000 HEHs has 20,000
    /// exchanges and 20,000 bindings fewer to provision and recover (docs/benchmarks.md, "Fleet
    /// scale on the cluster"); an HEH reads from one or two senders, so its tap binds to those.
    Inbox(String),
    /// Any other entity: to its [`incoming_exchange`], which is bound to its inbox.
    Exchange(String),
}

impl IncomingSide {
    /// The name of the queue or exchange.
    pub fn name(&self) -> &str {
        match self {
            IncomingSide::Inbox(n) | IncomingSide::Exchange(n) => n,
        }
    }

    /// The binding's destination type in RabbitMQ's terms: `queue` or `exchange`.
    pub fn destination_type(&self) -> &'static str {
        match self {
            IncomingSide::Inbox(_) => "queue",
            IncomingSide::Exchange(_) => "exchange",
        }
    }
}

/// Where the exchanges `name` reads are bound, by whether it is an HEH.
///
/// ```
/// use ebadge_bus::conventions::{EntityName, IncomingSide, incoming_side};
/// let heh = EntityName::new("heh-a")?;
/// let vpp = EntityName::new("vpp")?;
/// assert_eq!(incoming_side(&heh, true), IncomingSide::Inbox("private-heh-a-inbox".into()));
/// assert_eq!(incoming_side(&vpp, false), IncomingSide::Exchange("private-vpp-in".into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn incoming_side(name: &EntityName, heh: bool) -> IncomingSide {
    if heh {
        IncomingSide::Inbox(inbox_queue(name))
    } else {
        IncomingSide::Exchange(incoming_exchange(name))
    }
}

/// The entity whose incoming side `destination` is (its incoming exchange or its inbox), for
/// reading a live broker's bindings.
///
/// ```
/// use ebadge_bus::conventions::receiver_of_binding;
/// assert_eq!(receiver_of_binding("private-heh-a-inbox").unwrap().as_str(), "heh-a");
/// assert_eq!(receiver_of_binding("private-vpp-in").unwrap().as_str(), "vpp");
/// assert!(receiver_of_binding("private-vpp-tap-1").is_none());
/// ```
pub fn receiver_of_binding(destination: &str) -> Option<EntityName> {
    let rest = destination.strip_prefix("private-")?;
    let name = rest
        .strip_suffix("-inbox")
        .or_else(|| rest.strip_suffix("-in"))?;
    EntityName::new(name).ok()
}

/// Where the entity's client dead-letters messages it could not accept, with the reason.
pub fn quarantine_queue(name: &EntityName) -> String {
    format!("private-{name}-quarantine")
}

/// Header naming why a message was quarantined.
pub const QUARANTINE_REASON_HEADER: &str = "x-ebadge-reason";
/// Header naming who sent a quarantined message (its user_id, or `unknown`).
pub const QUARANTINE_FROM_HEADER: &str = "x-ebadge-from";

/// Longest header value the client writes. A quarantine reason quotes what a peer sent (a
/// 200-KB field of an invalid message, an application's exception text), and RabbitMQ closes a
/// connection whose content header is larger than its `frame_max` (128 KiB by default): a long
/// reason would cut the receiver off, again at every reconnect.
pub const MAX_HEADER_VALUE_BYTES: usize = 1024;

/// `value` cut to [`MAX_HEADER_VALUE_BYTES`] on a character boundary, saying how much was cut.
///
/// ```
/// use ebadge_bus::conventions::{MAX_HEADER_VALUE_BYTES, bounded_header_value};
/// assert_eq!(bounded_header_value("short"), "short");
/// let long = "é".repeat(1000); // 2,000 bytes
/// let cut = bounded_header_value(&long);
/// assert!(cut.len() <= MAX_HEADER_VALUE_BYTES && cut.ends_with("… (1008 bytes cut)"));
/// ```
pub fn bounded_header_value(value: &str) -> std::borrow::Cow<'_, str> {
    if value.len() <= MAX_HEADER_VALUE_BYTES {
        return value.into();
    }
    // Room for the note: "… (NNNNNNNNN bytes cut)".
    let mut end = MAX_HEADER_VALUE_BYTES - 32;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &value[..end], value.len() - end).into()
}

/// A temporary tap queue of the entity (`private-<name>-tap-<id>`): in its private namespace, so
/// the entity may declare it and bind it to what it reads.
pub fn tap_queue(name: &EntityName, id: &str) -> String {
    format!("private-{name}-tap-{id}")
}

/// A new `message_id`, the key receivers drop duplicates by: 128 random bits (as many as a v4
/// UUID has) in URL-safe base64 without padding, 22 characters. A UUID's usual text would be 36:
/// every message would carry 14 bytes more, which an HEH pays on its link 10 times a second. The
/// bits come from a per-thread generator seeded from the system's randomness once, so a message
/// costs no system call for them; ids need to be unique, not secret.
///
/// Our messages carry two properties beside it: persistent delivery, and `user_id` (the
/// sender; RabbitMQ refuses one that is not the logged-in user). The message type is the
/// routing key's first word and the body is always JSON, so `type` and `content_type` are not
/// sent; nor is a `timestamp`, which nothing reads. Receivers require no property at all: a
/// peer that sends bare properties (the seed's library) is heard.
///
/// ```
/// let id = ebadge_bus::conventions::new_message_id();
/// assert_eq!(id.len(), 22);
/// assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
/// assert_ne!(id, ebadge_bus::conventions::new_message_id());
/// ```
pub fn new_message_id() -> String {
    const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    thread_local! {
        // Seeded from the OS, not from the clock: two HEHs booted alike must not share ids.
        static IDS: std::cell::RefCell<fastrand::Rng> =
            std::cell::RefCell::new(fastrand::Rng::with_seed(uuid::Uuid::new_v4().as_u64_pair().0));
    }
    let bits = IDS.with(|ids| ids.borrow_mut().u128(..));
    // 22 six-bit digits cover 132 bits: the top digit holds the first four.
    (0..22)
        .rev()
        .map(|digit| URL_SAFE[((bits >> (digit * 6)) & 63) as usize] as char)
        .collect()
}

/// The routing key of a message: its type, then `.<heh_id>` when it names an HEH.
pub fn routing_key(msg_type: &str, heh_id: Option<&str>) -> Result<String, NameError> {
    let key = match heh_id {
        Some(heh) => format!("{msg_type}.{heh}"),
        None => msg_type.to_owned(),
    };
    let bad_heh = heh_id.is_some_and(|h| {
        h.is_empty()
            || h.chars()
                .any(|c| matches!(c, '.' | '*' | '#') || c.is_whitespace())
    });
    if key.len() > 255 || bad_heh || msg_type.is_empty() {
        return Err(NameError::RoutingKey(key));
    }
    Ok(key)
}

/// The three permission regexes of one entity (vhost `/`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permissions {
    /// Which resources the entity may declare or delete: only its private namespace.
    pub configure: String,
    /// Where it may publish (and bind to): its own pair exchanges and its private namespace.
    pub write: String,
    /// What it may consume or bind from: exchanges addressed to it, the group exchanges it is a
    /// member of, and its private namespace.
    ///
    /// Together with `write` on its own pair exchanges, this lets an entity bind one of those
    /// to an exchange addressed to it: a relay ([`is_relay_destination`]), which RabbitMQ's
    /// permissions cannot tell from a publish (`exchange.bind` needs write on the destination,
    /// read on the source, as publishing and tapping do). The read right stays: D3.2.3 5.3.2
    /// prescribes `.*-to-<name>`, and an HEH's taps bind straight to the pair and group
    /// exchanges addressed to it (it has no incoming exchange). Relays are stopped after the
    /// fact instead: receivers quarantine what comes through an exchange not addressed to them,
    /// the audit reports the binding, provisioning and revocation remove it.
    pub read: String,
}

/// The permissions of `name`, given the `(sender, group)` exchanges it may read as a group member.
///
/// ```
/// use ebadge_bus::conventions::{EntityName, permissions};
/// let tso = EntityName::new("tso")?;
/// let group = EntityName::new("bsps")?;
/// let p = permissions(&EntityName::new("bsp1")?, &[(tso, group)]);
/// assert_eq!(p.configure, "^private-bsp1-.*$");
/// assert_eq!(p.write, "^(bsp1-to-.*|private-bsp1-.*)$");
/// assert_eq!(p.read, "^((?!private-).*-to-bsp1|tso-to-bsps|private-bsp1-.*)$");
/// # Ok::<(), ebadge_bus::conventions::NameError>(())
/// ```
pub fn permissions(name: &EntityName, groups: &[(EntityName, EntityName)]) -> Permissions {
    // `(?!private-)`: another entity's private queue named `private-x-…-to-<name>` is not ours
    // to read. RabbitMQ matches permissions with Erlang's PCRE, which has lookahead.
    let mut read = vec![format!("(?!private-).*-to-{name}")];
    read.extend(groups.iter().map(|(s, g)| pair_exchange(s, g)));
    read.push(format!("private-{name}-.*"));
    Permissions {
        configure: format!("^private-{name}-.*$"),
        write: format!("^({name}-to-.*|private-{name}-.*)$"),
        read: format!("^({})$", read.join("|")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for good in ["ts", "heh-b827ebea02c1", "vpp-1", &"a".repeat(63)] {
            assert!(EntityName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Ts",
            "1ts",
            "heh_1",
            "a-to-b",
            "to-a",
            "a-to",
            "private",
            "ebadge-admin",
            "private-x",
            "a.b",
            &"a".repeat(64),
        ] {
            let err = EntityName::new(bad).unwrap_err().to_string();
            assert!(err.contains("1-63 characters"), "{bad}: {err}");
        }
        assert!(EntityName::from_mac("B8:27:EB:EA:02").is_err());
    }

    #[test]
    fn overlapping_namespaces_are_detected() {
        let n = |s| EntityName::new(s).unwrap();
        assert!(n("a").overlaps(&n("a-b")));
        assert!(n("a-b-c").overlaps(&n("a")));
        assert!(!n("ab").overlaps(&n("a")));
        assert!(!n("a").overlaps(&n("a")));
    }

    #[test]
    fn routing_keys_refuse_separators_and_length() {
        assert_eq!(routing_key("report", None).unwrap(), "report");
        for heh in ["a.b", "a*", "#", "a b", ""] {
            assert!(routing_key("report", Some(heh)).is_err(), "{heh}");
        }
        assert!(routing_key("report", Some(&"h".repeat(250))).is_err());
    }
}
