//! The audit's rules: [`check`] is a pure function of a [`Snapshot`] (no I/O, no clock), so that
//! every rule is tested on a fixture without a broker (see the tests below). One function per
//! rule; each says which convention it guards and why.

use super::handles::file_handle_reservations;
use super::snapshot::Snapshot;
use crate::state::{Item, Release, State};
use ebadge_bus::EntityName;
use ebadge_bus::conventions::{
    HEH_TAG, MESSAGE_TTL_MS, QUARANTINE_MAX_LENGTH, QUARANTINE_TTL_MS, QUORUM_POLICY, inbox_queue,
    incoming_exchange, is_relay_binding, is_valid_entity_name, parse_pair_exchange, permissions,
    receiver_of_binding,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One breach of the conventions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Violation {
    /// Short kind, stable for scripts: `guest`, `password-user`, `plain-listener`, `tls`,
    /// `auth-mechanism`, `permissions`, `queue-ttl`, `queue-length`, `queue-overflow`,
    /// `queue-delivery-limit`, `queue-type`, `queue-replication`, `queue-placement`,
    /// `file-handles`, `binding`, `relay-binding`, `exchange-type`, `default-exchange`,
    /// `user-name`, `layout`.
    pub kind: &'static str,
    /// What exactly, and what to do.
    pub detail: String,
}

/// Every [`Violation::kind`], in a fixed order: the metrics name each, with 0 when none.
pub const KINDS: [&str; 20] = [
    "guest",
    "password-user",
    "plain-listener",
    "tls",
    "auth-mechanism",
    "permissions",
    "queue-ttl",
    "queue-length",
    "queue-overflow",
    "queue-delivery-limit",
    "queue-type",
    "queue-replication",
    "queue-placement",
    "file-handles",
    "binding",
    "relay-binding",
    "exchange-type",
    "default-exchange",
    "user-name",
    "layout",
];

/// Every breach of the conventions that `snapshot` shows, sorted, each once. An empty list means
/// the broker conforms.
pub fn check(snapshot: &Snapshot) -> Vec<Violation> {
    let live = &snapshot.live;
    let admin = snapshot.admin.as_str();
    let users = users(live);
    let groups = groups_of(live, &users);
    let hehs = hehs(&users);
    let mut found = Found::default();
    tls_listeners(&snapshot.overview, &mut found);
    plain_listeners(&snapshot.overview, &mut found);
    auth_mechanisms(&snapshot.nodes, &mut found);
    guest_account(&users, &mut found);
    password_users(&users, admin, &mut found);
    user_names(&users, admin, &mut found);
    entity_permissions(live, admin, &groups, &mut found);
    default_exchange_writers(live, admin, &mut found);
    default_exchange_bindings(live, &mut found);
    exchange_types(live, &mut found);
    relay_bindings(live, &mut found);
    foreign_bindings(live, &users, &groups, &mut found);
    heh_layout(live, &hehs, &mut found);
    file_handles(snapshot, &mut found);
    queue_placement(snapshot, &mut found);
    queues(snapshot, &hehs, &mut found);
    found.into_sorted()
}

/// What the rules found so far. The rules add to one list rather than each returning its own
/// so that `check` reads as the list of rules.
#[derive(Default)]
struct Found(Vec<Violation>);

impl Found {
    /// Named `v` so that `every_kind_a_rule_reports_is_in_kinds` finds every kind reported.
    fn v(&mut self, kind: &'static str, detail: String) {
        self.0.push(Violation { kind, detail });
    }

    /// Sorted, so that two audits of one broker compare line by line (the rules run in no
    /// particular order of resources); each once, however many ways a rule met it.
    fn into_sorted(mut self) -> Vec<Violation> {
        self.0.sort();
        self.0.dedup();
        self.0
    }
}

/// A user as the rules see it.
struct User<'a> {
    has_password: bool,
    tags: &'a str,
}

/// The users by name: several rules look users up, and the owner of a private resource is found
/// among their names.
type Users<'a> = BTreeMap<&'a str, User<'a>>;

/// Per entity, the `(sender, group)` exchanges it reads as a group member.
type Groups = BTreeMap<String, Vec<(EntityName, EntityName)>>;

/// [`Users`] of the live state.
fn users(live: &State) -> Users<'_> {
    live.values()
        .filter_map(|i| match i {
            Item::User {
                name,
                has_password,
                tags,
            } => Some((
                name.as_str(),
                User {
                    has_password: *has_password,
                    tags,
                },
            )),
            _ => None,
        })
        .collect()
}

/// Group membership from the live bindings, so that the audit needs no registry: a group
/// exchange is `S-to-G` where G is not a user, and its members are the entities it is bound
/// into.
fn groups_of(live: &State, users: &Users) -> Groups {
    let mut groups = Groups::new();
    for item in live.values() {
        if let Item::Binding {
            source,
            destination,
            ..
        } = item
            && let Some((s, g)) = source.split_once("-to-")
            && !users.contains_key(g)
            && let Some(member) = receiver_of_binding(destination)
            && let (Ok(s), Ok(g)) = (EntityName::new(s), EntityName::new(g))
        {
            groups.entry(member.to_string()).or_default().push((s, g));
        }
    }
    groups
}

/// The HEHs, by the tag provisioning gives their users: they read in one hop and keep classic
/// inboxes, which two rules must not report.
fn hehs(users: &Users) -> Vec<EntityName> {
    users
        .iter()
        .filter(|(_, u)| u.tags.split(',').any(|t| t == HEH_TAG))
        .filter_map(|(n, _)| EntityName::new(n).ok())
        .collect()
}

/// AMQPS listeners must require, verify and check against the CRL a client certificate: the
/// certificate is an entity's only credential, and a revoked one must stop working.
fn tls_listeners(overview: &Value, found: &mut Found) {
    for l in overview["listeners"].as_array().into_iter().flatten() {
        if l["protocol"] != "amqp/ssl" {
            continue;
        }
        let node = l["node"].as_str().unwrap_or("?");
        let opts = &l["socket_opts"];
        for (key, want) in [
            ("verify", Value::from("verify_peer")),
            ("fail_if_no_peer_cert", Value::from(true)),
            ("crl_check", Value::from("peer")),
        ] {
            if opts[key] != want {
                found.v(
                    "tls",
                    format!(
                        "the AMQPS listener of {node} has {key} = {}: it must be {want} (client certificates required, verified, checked against the CRL; see deploy/rabbitmq/advanced.config)",
                        opts[key]
                    ),
                );
            }
        }
    }
}

/// A plain listener lets anyone on the network read and log in in the clear: TLS only
/// (D3.2.3 6.1).
fn plain_listeners(overview: &Value, found: &mut Found) {
    for l in overview["listeners"].as_array().into_iter().flatten() {
        let protocol = l["protocol"].as_str().unwrap_or("");
        if matches!(protocol, "amqp" | "stomp" | "mqtt") {
            found.v(
                "plain-listener",
                format!(
                    "plain {protocol} listener on port {} of {}: set listeners.tcp = none (TLS only, D3.2.3 6.1)",
                    l["port"],
                    l["node"].as_str().unwrap_or("?")
                ),
            );
        }
    }
}

/// Logins by certificate only: any other mechanism a node offers is a way in that the PKI and
/// its revocation list do not govern.
fn auth_mechanisms(nodes: &Value, found: &mut Found) {
    for node in nodes.as_array().into_iter().flatten() {
        for mechanism in node["auth_mechanisms"].as_array().into_iter().flatten() {
            let name = mechanism["name"].as_str().unwrap_or("?");
            if mechanism["enabled"] == true && name != "EXTERNAL" {
                found.v(
                    "auth-mechanism",
                    format!(
                        "node {} offers the {name} login: only EXTERNAL (client certificates) may be enabled (auth_mechanisms.1 = EXTERNAL)",
                        node["name"].as_str().unwrap_or("?")
                    ),
                );
            }
        }
    }
}

/// RabbitMQ seeds `guest` with a well-known password: its existence means the definitions were
/// not loaded at boot.
fn guest_account(users: &Users, found: &mut Found) {
    if users.contains_key("guest") {
        found.v("guest", "user guest exists: delete it (`rabbitmqctl delete_user guest`); load definitions at boot so it is never seeded".into());
    }
}

/// Entities log in with certificates only, so a password is a credential the PKI cannot revoke;
/// and only the administrator may administer, since an administrator can grant itself anything.
fn password_users(users: &Users, admin: &str, found: &mut Found) {
    for (name, user) in users {
        if *name == admin {
            continue;
        }
        // The guest user is reported as such.
        if user.has_password && *name != "guest" {
            found.v(
                "password-user",
                format!(
                    "user {name} has a password: entities log in with certificates only; re-provision it (users are created without password)"
                ),
            );
        }
        if user.tags.contains("administrator") {
            found.v(
                "password-user",
                format!("user {name} is an administrator: only {admin} may be"),
            );
        }
    }
}

/// Every resource name is made from an entity name, and the permissions are only as tight as
/// the names are regular (see `ENTITY_NAME_RULE`): a user with another name is not ours.
fn user_names(users: &Users, admin: &str, found: &mut Found) {
    for name in users.keys() {
        if *name != admin && *name != "guest" && !is_valid_entity_name(name) {
            found.v(
                "user-name",
                format!("user {name} is not a valid entity name"),
            );
        }
    }
}

/// An entity's permissions must be exactly the conventional ones for its groups (D3.2.3 5.3):
/// anything wider lets it write as, or read for, someone else.
fn entity_permissions(live: &State, admin: &str, groups: &Groups, found: &mut Found) {
    for item in live.values() {
        let Item::Permission {
            user,
            configure,
            write,
            read,
        } = item
        else {
            continue;
        };
        // The administrator's are its own; a user named otherwise has a user-name violation.
        if user == admin {
            continue;
        }
        let Ok(name) = EntityName::new(user) else {
            continue;
        };
        let mut its_groups = groups.get(user.as_str()).cloned().unwrap_or_default();
        its_groups.sort();
        its_groups.dedup();
        let want = permissions(&name, &its_groups);
        if (configure, write, read) != (&want.configure, &want.write, &want.read) {
            found.v(
                "permissions",
                format!(
                    "user {user} has configure {configure:?} write {write:?} read {read:?}; the convention is configure {:?} write {:?} read {:?}",
                    want.configure, want.write, want.read
                ),
            );
        }
    }
}

/// A message published to the default exchange goes straight to the queue it names, past the
/// pair exchanges that tell a receiver who sent it: no one but the administrator may write it.
fn default_exchange_writers(live: &State, admin: &str, found: &mut Found) {
    let default_exchange = ["amq.default", ""];
    for item in live.values() {
        if let Item::Permission { user, write, .. } = item
            && user != admin
            && regex::Regex::new(write)
                .is_ok_and(|r| default_exchange.iter().any(|d| r.is_match(d)))
        {
            found.v(
                "default-exchange",
                format!("user {user} may publish to the default exchange (write {write:?})"),
            );
        }
    }
}

/// A binding from the default exchange routes by queue name, not through a pair exchange, so
/// what arrives by it has no verified sender.
fn default_exchange_bindings(live: &State, found: &mut Found) {
    for item in live.values() {
        if let Item::Binding {
            source,
            destination,
            ..
        } = item
            && source.is_empty()
        {
            found.v(
                "default-exchange",
                format!("{destination} is bound from the default exchange"),
            );
        }
    }
}

/// Outside private namespaces every exchange is a topic exchange: the permissions and routing
/// keys of the conventions assume it, and another type routes differently from what they allow.
fn exchange_types(live: &State, found: &mut Found) {
    for item in live.values() {
        if let Item::Exchange { name, kind, .. } = item {
            let builtin = name.is_empty() || name.starts_with("amq.");
            if !builtin && !name.starts_with("private-") && kind != "topic" {
                found.v(
                    "exchange-type",
                    format!(
                        "exchange {name} is {kind}: outside private namespaces every exchange is a topic exchange"
                    ),
                );
            }
        }
    }
}

/// A binding into a pair exchange, whatever its source (see `is_relay_destination`), delivers
/// messages under the name of a sender that did not send them: the receiver would trust them.
fn relay_bindings(live: &State, found: &mut Found) {
    for item in live.values() {
        let Item::Binding {
            source,
            destination,
            destination_type,
            routing_key,
        } = item
        else {
            continue;
        };
        if !is_relay_binding(destination_type, destination) {
            continue;
        }
        let (writer, receiver) = destination.split_once("-to-").unwrap_or_default();
        let from = if source.is_empty() {
            "the default exchange"
        } else {
            source.as_str()
        };
        found.v(
            "relay-binding",
            format!(
                "{from} is bound to the pair exchange {destination} [{routing_key}]: what is published to {from} reaches {receiver} as if its sender had sent it there (a relayed sender); only {writer} may write {destination}, so {writer} made it. No binding may go into a pair exchange: run `ebadge provision` (it removes it) and ask why {writer} relays"
            ),
        );
    }
}

/// A binding into an entity's private namespace from an exchange that entity may not read (a
/// pair exchange addressed to someone else, a group it is not in) lets it read around its
/// permissions. Bindings between an entity's own resources, and from what it reads (taps), are
/// its business.
fn foreign_bindings(live: &State, users: &Users, groups: &Groups, found: &mut Found) {
    for item in live.values() {
        let Item::Binding {
            source,
            destination,
            destination_type,
            ..
        } = item
        else {
            continue;
        };
        // Relays and the default exchange have rules of their own.
        if is_relay_binding(destination_type, destination) || source.is_empty() {
            continue;
        }
        // The owner of the destination: the longest user name `n` with `private-n-` as prefix.
        let Some(owner) = users
            .keys()
            .filter(|n| destination.starts_with(&format!("private-{n}-")))
            .max_by_key(|n| n.len())
        else {
            continue;
        };
        let own = source.starts_with(&format!("private-{owner}-"));
        let addressed = parse_pair_exchange(source).is_some_and(|(_, r)| r.as_str() == *owner);
        let member = groups
            .get(*owner)
            .is_some_and(|groups| groups.iter().any(|(s, g)| format!("{s}-to-{g}") == *source));
        if !(own || addressed || member) {
            found.v(
                "binding",
                format!(
                    "{source} is bound to {destination}: {owner} may not read {source}; delete the binding (`ebadge provision` removes the ones it manages)"
                ),
            );
        }
    }
}

/// An HEH reads in one hop: an incoming exchange of its own is an older provisioning's, and
/// costs the broker an exchange and a binding per HEH for nothing.
fn heh_layout(live: &State, hehs: &[EntityName], found: &mut Found) {
    for heh in hehs {
        let old = incoming_exchange(heh);
        if live.contains_key(&Item::exchange_key(&old)) {
            found.v(
                "layout",
                format!(
                    "{old} exists: an HEH's pair and group exchanges are bound straight to its inbox (one hop); run `ebadge provision` to move the bindings (no queued message is touched) and delete it"
                ),
            );
        }
    }
}

/// A node past its file-handle limit stops answering new connections (see
/// [`super::handles::node_handles`]): reported before it gets there.
fn file_handles(snapshot: &Snapshot, found: &mut Found) {
    for detail in file_handle_reservations(&snapshot.nodes, &snapshot.queues) {
        found.v("file-handles", detail);
    }
}

/// The number of nodes in the cluster: replication and placement matter only on more than one.
fn cluster_nodes(snapshot: &Snapshot) -> usize {
    snapshot.nodes.as_array().map_or(0, Vec::len)
}

/// Where each durable queue's leader (or classic master) runs: the node does the work, so
/// leaders crowded on one node make it the cluster's bottleneck (see [`lopsided`]).
fn queue_placement(snapshot: &Snapshot, found: &mut Found) {
    if cluster_nodes(snapshot) <= 1 {
        return;
    }
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for node in snapshot.nodes.as_array().into_iter().flatten() {
        per_node.insert(node["name"].as_str().unwrap_or("?").to_owned(), 0);
    }
    for q in snapshot.queues.as_array().into_iter().flatten() {
        if q["durable"] == true
            && let Some(node) = q["node"].as_str()
        {
            *per_node.entry(node.to_owned()).or_default() += 1;
        }
    }
    if let Some(detail) = lopsided(&per_node) {
        found.v("queue-placement", detail);
    }
}

/// A cluster whose queue leaders crowd on one node: that node does the routing, persisting and
/// confirming for most messages while the others idle (and every message crosses nodes). Reported
/// when one node leads more than twice its share of at least 30 queues.
fn lopsided(per_node: &BTreeMap<String, usize>) -> Option<String> {
    let total: usize = per_node.values().sum();
    let nodes = per_node.len();
    if nodes < 2 || total < 30 {
        return None;
    }
    let (node, most) = per_node.iter().max_by_key(|(_, n)| **n)?;
    (*most * nodes > 2 * total).then(|| {
        format!(
            "node {node} leads {most} of the {total} durable queues (a fair share is {}): \
             set queue_master_locator = random and queue_leader_locator = balanced \
             (deploy/rabbitmq/rabbitmq.conf), then `rabbitmq-queues rebalance all`",
            total / nodes
        )
    })
}

/// One row of the queue listing, the fields the queue rules read.
struct Queue<'a> {
    name: &'a str,
    /// `classic`, `quorum` or `stream`.
    kind: &'a str,
    durable: bool,
    arguments: &'a Value,
}

impl<'a> Queue<'a> {
    /// A missing type is `classic`, as RabbitMQ defaults it.
    fn of(row: &'a Value) -> Self {
        Queue {
            name: row["name"].as_str().unwrap_or("?"),
            kind: row["type"].as_str().unwrap_or("classic"),
            durable: row["durable"] == true,
            arguments: &row["arguments"],
        }
    }

    /// Quarantines hold what their entity could not accept until an operator looks: they have
    /// bounds of their own, and stay classic (see `state::inbox_queue_type`).
    fn is_quarantine(&self) -> bool {
        self.name.starts_with("private-") && self.name.ends_with("-quarantine")
    }
}

/// A queue policy of the live state, its pattern compiled once for all queues.
struct QueuePolicy<'a> {
    pattern: regex::Regex,
    apply_to: &'a str,
    priority: i64,
    definition: Value,
}

/// The policies that may apply to queues. The effective policy is computed from them, not read
/// from the queue listing: the listing reports it only after a statistics interval, and the
/// audit runs right after provisioning too.
fn queue_policies(live: &State) -> Vec<QueuePolicy<'_>> {
    live.values()
        .filter_map(|i| match i {
            Item::Policy {
                pattern,
                apply_to,
                definition,
                priority,
                ..
            } if apply_to != "exchanges" => Some(QueuePolicy {
                pattern: regex::Regex::new(pattern).ok()?,
                apply_to,
                priority: *priority,
                definition: serde_json::from_str(definition).ok()?,
            }),
            _ => None,
        })
        .collect()
}

/// The definition of the policy RabbitMQ applies to `queue`: of those whose pattern and
/// `apply-to` match, the one of highest priority.
fn effective_policy<'p>(policies: &'p [QueuePolicy], queue: &Queue) -> Option<&'p Value> {
    policies
        .iter()
        .filter(|p| p.pattern.is_match(queue.name) && applies_to(p.apply_to, queue.kind))
        .max_by_key(|p| p.priority)
        .map(|p| &p.definition)
}

/// Whether a policy with `apply-to` = `apply_to` applies to a queue of type `kind`.
fn applies_to(apply_to: &str, kind: &str) -> bool {
    match apply_to {
        "quorum_queues" => kind == "quorum",
        "classic_queues" => kind == "classic",
        "streams" => kind == "stream",
        _ => true,
    }
}

/// The rules for each queue: replication, type, bounds, overflow and delivery limit.
fn queues(snapshot: &Snapshot, hehs: &[EntityName], found: &mut Found) {
    let cluster_nodes = cluster_nodes(snapshot);
    let heh_inboxes: Vec<String> = hehs.iter().map(inbox_queue).collect();
    let policies = queue_policies(&snapshot.live);
    let release = Release::of_overview(&snapshot.overview);
    for row in snapshot.queues.as_array().into_iter().flatten() {
        let queue = Queue::of(row);
        queue_replication(&queue, cluster_nodes, &heh_inboxes, found);
        if queue.kind == "stream" {
            // A stream has none of the bounds below: reported once, as what it is.
            stream(&queue, found);
            continue;
        }
        let policy = effective_policy(&policies, &queue);
        queue_bounds(&queue, policy, found);
        queue_overflow(&queue, policy, found);
        if queue.kind == "quorum" {
            queue_delivery_limit(&queue, policy, release, found);
        }
    }
}

/// On a cluster, a durable queue that is not replicated dies with its node (D3.2.3 6.2.1).
/// Quarantines and HEH inboxes are classic by design (see `state::inbox_queue_type`): a crash of
/// their node delays them and loses nothing.
fn queue_replication(
    queue: &Queue,
    cluster_nodes: usize,
    heh_inboxes: &[String],
    found: &mut Found,
) {
    let Queue { name, kind, .. } = queue;
    if cluster_nodes > 1
        && queue.durable
        && *kind != "quorum"
        && *kind != "stream"
        && !queue.is_quarantine()
        && !heh_inboxes.iter().any(|h| h == name)
    {
        found.v(
            "queue-replication",
            format!(
                "queue {name} is a {kind} queue on a cluster of {cluster_nodes} nodes: it is lost with its node; \
                 make it a quorum queue (registry queue_type \"auto\" or \"quorum\", then `ebadge provision`)"
            ),
        );
    }
}

/// A stream ignores the TTL and length bounds, so nothing it holds ever expires.
fn stream(queue: &Queue, found: &mut Found) {
    found.v(
        "queue-type",
        format!(
            "queue {} is a stream: streams ignore the TTL and length bounds of D3.2.3 6.2.4; delete it",
            queue.name
        ),
    );
}

/// Every queue under a TTL of at most 15 minutes (quarantines: their own longer bound) and a
/// length bound (D3.2.3 6.2.4), so that what no one reads cannot pile up. A queue argument can
/// only lower the policy's bound (RabbitMQ takes the smaller).
fn queue_bounds(queue: &Queue, policy: Option<&Value>, found: &mut Found) {
    let name = queue.name;
    let bound = |policy_key: &str, argument: &str| {
        [
            policy.and_then(|d| d[policy_key].as_u64()),
            queue.arguments[argument].as_u64(),
        ]
        .into_iter()
        .flatten()
        .min()
    };
    let (max_ttl, max_length) = if queue.is_quarantine() {
        (QUARANTINE_TTL_MS, QUARANTINE_MAX_LENGTH)
    } else {
        (MESSAGE_TTL_MS, u64::MAX)
    };
    let ttl = bound("message-ttl", "x-message-ttl");
    if ttl.is_none_or(|t| t > max_ttl) {
        found.v(
            "queue-ttl",
            format!(
                "queue {name} has message TTL {}: it needs at most {max_ttl} ms (D3.2.3 6.2.4); run `ebadge provision` to set the policy",
                ttl.map(|t| format!("{t} ms"))
                    .unwrap_or_else(|| "none".into())
            ),
        );
    }
    let length = bound("max-length", "x-max-length");
    if length.is_none_or(|l| l > max_length) {
        found.v(
            "queue-length",
            format!(
                "queue {name} has no length bound within {max_length}: run `ebadge provision` to set the policy"
            ),
        );
    }
}

/// Past its bound a queue must refuse publishes, so that the sender keeps the message in its
/// outbox; the default (drop the oldest) loses it silently. Unlike the bounds, a queue
/// argument's overflow wins over the policy's.
fn queue_overflow(queue: &Queue, policy: Option<&Value>, found: &mut Found) {
    let overflow = queue.arguments["x-overflow"]
        .as_str()
        .or_else(|| policy.and_then(|d| d["overflow"].as_str()));
    if overflow != Some("reject-publish") {
        found.v(
            "queue-overflow",
            format!(
                "queue {} overflows with {}: past its bound it must refuse publishes (the sender keeps them), never drop silently",
                queue.name,
                overflow.unwrap_or("drop-head (the default)")
            ),
        );
    }
}

/// A quorum queue with a delivery limit drops a message that came back unacknowledged that many
/// times, as it does each time a consumer's link breaks: a lost link must never lose a message.
/// RabbitMQ 4 sets a limit of 20 unless a policy or argument says -1.
fn queue_delivery_limit(
    queue: &Queue,
    policy: Option<&Value>,
    release: Release,
    found: &mut Found,
) {
    let limits: Vec<i64> = [
        policy.and_then(|d| d["delivery-limit"].as_i64()),
        queue.arguments["x-delivery-limit"].as_i64(),
    ]
    .into_iter()
    .flatten()
    .collect();
    // -1 is 4.0's "no limit"; 3.x has none unless one is set.
    let finite = limits.iter().filter(|l| **l >= 0).min();
    let drops = match (finite, limits.is_empty(), release) {
        (Some(limit), _, _) => Some(format!(
            "drops a message that came back unacknowledged {limit} times (a delivery-limit)"
        )),
        (None, true, Release::V4) => Some(
            "has no delivery-limit: RabbitMQ 4 drops a message that came back unacknowledged 20 times"
                .into(),
        ),
        _ => None,
    };
    if let Some(drops) = drops {
        found.v(
            "queue-delivery-limit",
            format!(
                "quorum queue {} {drops}; a consumer's lost link must never lose a message: remove any x-delivery-limit argument and run `ebadge provision` (on RabbitMQ 4 it sets the {QUORUM_POLICY} policy)",
                queue.name
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::state::desired_for;
    use ebadge_bus::conventions::{QUARANTINE_POLICY, QUEUE_POLICY};
    use serde_json::json;
    use std::collections::BTreeSet;

    const ADMIN: &str = "ebadge-admin";

    /// Operator `ts`, VPP `vpp` linked to it, and `ts`'s HEH `heh-a`, also in the group `hehs`.
    const REGISTRY: &str = r#"
        [[entity]]
        name = "ts"
        [[entity]]
        name = "vpp"
        [[heh]]
        name = "heh-a"
        operator = "ts"
        [[link]]
        between = ["vpp", "ts"]
        [[group]]
        name = "hehs"
        sender = "ts"
        members = ["heh-a"]
    "#;

    fn node_name(i: usize) -> String {
        format!("rabbit@n{}", i + 1)
    }

    /// A row of `/api/queues` as [`super::super::handles::QUEUE_COLUMNS`] asks for it.
    fn queue_row(name: &str, kind: &str, leader: &str, nodes: usize) -> Value {
        let mut row = json!({
            "name": name, "vhost": "/", "durable": true, "type": kind, "node": leader,
            "arguments": {"x-queue-type": kind},
        });
        if kind == "quorum" {
            row["members"] = (0..nodes).map(node_name).collect();
        }
        row
    }

    /// A broker of `nodes` nodes running `release`, as provisioning leaves it for [`REGISTRY`],
    /// with the administrator and heh-a's quarantine (its client makes it): what the audit
    /// passes. Queue leaders take turns on the nodes.
    fn broker(nodes: usize, release: Release) -> Snapshot {
        let registry = Registry::parse(REGISTRY).unwrap();
        let mut live = desired_for(&registry, nodes, release);
        for item in [
            Item::User {
                name: ADMIN.into(),
                has_password: true,
                tags: "administrator".into(),
            },
            Item::Permission {
                user: ADMIN.into(),
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            },
            Item::Queue {
                name: "private-heh-a-quarantine".into(),
                durable: true,
                queue_type: "classic".into(),
            },
        ] {
            live.insert(item.key(), item);
        }
        let queues = live
            .values()
            .filter_map(|i| match i {
                Item::Queue {
                    name, queue_type, ..
                } => Some((name, queue_type)),
                _ => None,
            })
            .enumerate()
            .map(|(i, (name, kind))| queue_row(name, kind, &node_name(i % nodes), nodes))
            .collect();
        let listeners: Vec<Value> = (0..nodes)
            .flat_map(|i| {
                let node = node_name(i);
                [
                    json!({"node": node, "protocol": "amqp/ssl", "port": 5671, "socket_opts":
                        {"verify": "verify_peer", "fail_if_no_peer_cert": true, "crl_check": "peer"}}),
                    json!({"node": node, "protocol": "http", "port": 15672, "socket_opts": {}}),
                    json!({"node": node, "protocol": "clustering", "port": 25672, "socket_opts": {}}),
                ]
            })
            .collect();
        let version = match release {
            Release::V3 => "3.10.8",
            Release::V4 => "4.0.5",
        };
        Snapshot {
            admin: ADMIN.into(),
            live,
            overview: json!({"rabbitmq_version": version, "listeners": listeners}),
            nodes: (0..nodes)
                .map(|i| {
                    json!({
                        "name": node_name(i), "running": true, "fd_total": 65536, "sockets_used": 20,
                        "auth_mechanisms": [
                            {"name": "EXTERNAL", "enabled": true},
                            {"name": "PLAIN", "enabled": false},
                            {"name": "AMQPLAIN", "enabled": false},
                        ],
                    })
                })
                .collect(),
            queues,
        }
    }

    /// The fixture every other starts from: a three-node RabbitMQ 4 cluster, so that the
    /// cluster-only rules (replication, placement) and 4's delivery limit are in play.
    fn clean() -> Snapshot {
        broker(3, Release::V4)
    }

    fn put(s: &mut Snapshot, item: Item) {
        s.live.insert(item.key(), item);
    }

    fn user(name: &str, has_password: bool, tags: &str) -> Item {
        Item::User {
            name: name.into(),
            has_password,
            tags: tags.into(),
        }
    }

    fn binding(source: &str, destination: &str, destination_type: &str) -> Item {
        Item::Binding {
            source: source.into(),
            destination: destination.into(),
            destination_type: destination_type.into(),
            routing_key: "#".into(),
        }
    }

    fn exchange(name: &str, kind: &str) -> Item {
        Item::Exchange {
            name: name.into(),
            kind: kind.into(),
            durable: true,
        }
    }

    /// Changes one permission of `user` (which has some).
    fn edit_permission(s: &mut Snapshot, user: &str, edit: impl FnOnce(&mut String, &mut String)) {
        let Some(Item::Permission { write, read, .. }) = s.live.get_mut(&(2, user.to_owned()))
        else {
            panic!("{user} has no permissions");
        };
        edit(write, read);
    }

    /// Changes the definition of the policy `name`.
    fn edit_policy(s: &mut Snapshot, name: &str, edit: impl FnOnce(&mut Value)) {
        let Some(Item::Policy { definition, .. }) = s.live.get_mut(&(0, name.to_owned())) else {
            panic!("no policy {name}");
        };
        let mut parsed: Value = serde_json::from_str(definition).unwrap();
        edit(&mut parsed);
        *definition = parsed.to_string();
    }

    fn queue<'a>(s: &'a mut Snapshot, name: &str) -> &'a mut Value {
        s.queues
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|q| q["name"] == name)
            .unwrap_or_else(|| panic!("no queue {name}"))
    }

    fn add_queue(s: &mut Snapshot, name: &str, kind: &str, leader: &str) {
        let row = queue_row(name, kind, leader, 3);
        s.queues.as_array_mut().unwrap().push(row);
    }

    fn node<'a>(s: &'a mut Snapshot, name: &str) -> &'a mut Value {
        s.nodes
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|n| n["name"] == name)
            .unwrap()
    }

    /// The smallest change to [`clean`] that breaks one rule.
    struct Fixture {
        /// What changed.
        what: &'static str,
        /// The kinds `check` must report, no more, no fewer: one, but for a change that two
        /// rules see (and none, for a change that must stay clean).
        kinds: &'static [&'static str],
        /// Said by one of the violations: the rule reports what was changed, not something else.
        mentions: &'static str,
        change: fn(&mut Snapshot),
    }

    fn fixtures() -> Vec<Fixture> {
        vec![
            Fixture {
                what: "the guest user exists",
                kinds: &["guest"],
                mentions: "user guest exists",
                change: |s| put(s, user("guest", true, "")),
            },
            Fixture {
                what: "an entity has a password",
                kinds: &["password-user"],
                mentions: "user ts has a password",
                change: |s| put(s, user("ts", true, "")),
            },
            Fixture {
                what: "an entity is an administrator",
                kinds: &["password-user"],
                mentions: "user vpp is an administrator: only ebadge-admin may be",
                change: |s| put(s, user("vpp", false, "administrator")),
            },
            Fixture {
                what: "a plain AMQP listener",
                kinds: &["plain-listener"],
                mentions: "plain amqp listener on port 5672 of rabbit@n2",
                change: |s| {
                    let listener = json!({"node": "rabbit@n2", "protocol": "amqp", "port": 5672});
                    s.overview["listeners"]
                        .as_array_mut()
                        .unwrap()
                        .push(listener);
                },
            },
            Fixture {
                what: "an AMQPS listener that does not check the CRL",
                kinds: &["tls"],
                mentions: "the AMQPS listener of rabbit@n1 has crl_check = \"none\"",
                change: |s| s.overview["listeners"][0]["socket_opts"]["crl_check"] = json!("none"),
            },
            Fixture {
                what: "a node offers PLAIN logins",
                kinds: &["auth-mechanism"],
                mentions: "node rabbit@n3 offers the PLAIN login",
                change: |s| node(s, "rabbit@n3")["auth_mechanisms"][1]["enabled"] = json!(true),
            },
            Fixture {
                what: "an entity may read more than the convention's",
                kinds: &["permissions"],
                mentions: "user vpp has configure",
                change: |s| edit_permission(s, "vpp", |_, read| *read = "^.*$".into()),
            },
            Fixture {
                what: "an entity may write the default exchange (and so more than the convention's)",
                kinds: &["default-exchange", "permissions"],
                mentions: "user vpp may publish to the default exchange",
                change: |s| edit_permission(s, "vpp", |write, _| *write = ".*".into()),
            },
            Fixture {
                what: "an inbox bound from the default exchange",
                kinds: &["default-exchange"],
                mentions: "private-ts-inbox is bound from the default exchange",
                change: |s| put(s, binding("", "private-ts-inbox", "queue")),
            },
            Fixture {
                what: "a fanout exchange outside private namespaces",
                kinds: &["exchange-type"],
                mentions: "exchange ts-events is fanout",
                change: |s| put(s, exchange("ts-events", "fanout")),
            },
            Fixture {
                what: "vpp relays what ts sends it back to ts",
                kinds: &["relay-binding"],
                mentions: "ts-to-vpp is bound to the pair exchange vpp-to-ts [#]: what is published to ts-to-vpp reaches ts",
                change: |s| put(s, binding("ts-to-vpp", "vpp-to-ts", "exchange")),
            },
            Fixture {
                what: "heh-a's inbox bound to what ts sends vpp",
                kinds: &["binding"],
                mentions: "ts-to-vpp is bound to private-heh-a-inbox: heh-a may not read ts-to-vpp",
                change: |s| put(s, binding("ts-to-vpp", "private-heh-a-inbox", "queue")),
            },
            Fixture {
                what: "an HEH keeps the incoming exchange of two hops",
                kinds: &["layout"],
                mentions: "private-heh-a-in exists",
                change: |s| put(s, exchange("private-heh-a-in", "topic")),
            },
            Fixture {
                what: "a user whose name is not an entity name",
                kinds: &["user-name"],
                mentions: "user Legacy_App is not a valid entity name",
                change: |s| put(s, user("Legacy_App", false, "")),
            },
            Fixture {
                what: "a node's sockets near its file-handle limit",
                kinds: &["file-handles"],
                mentions: "node rabbit@n2: quorum queues reserve",
                change: |s| node(s, "rabbit@n2")["sockets_used"] = json!(60_000),
            },
            Fixture {
                what: "30 more queues, all led by one node",
                kinds: &["queue-placement"],
                mentions: "node rabbit@n1 leads",
                change: |s| {
                    for i in 0..30 {
                        add_queue(s, &format!("private-ts-tap-{i}"), "quorum", "rabbit@n1");
                    }
                },
            },
            Fixture {
                what: "a classic queue of an entity's own on a cluster",
                kinds: &["queue-replication"],
                mentions: "queue private-ts-archive is a classic queue on a cluster of 3 nodes",
                change: |s| add_queue(s, "private-ts-archive", "classic", "rabbit@n2"),
            },
            Fixture {
                what: "a stream",
                kinds: &["queue-type"],
                mentions: "queue private-ts-log is a stream",
                change: |s| add_queue(s, "private-ts-log", "stream", "rabbit@n2"),
            },
            Fixture {
                what: "the queue policy's TTL is an hour",
                kinds: &["queue-ttl"],
                mentions: "queue private-heh-a-inbox has message TTL 3600000 ms",
                change: |s| edit_policy(s, QUEUE_POLICY, |d| d["message-ttl"] = json!(3_600_000)),
            },
            Fixture {
                what: "the quarantine policy's TTL is past its own bound",
                kinds: &["queue-ttl"],
                mentions: "queue private-heh-a-quarantine has message TTL",
                change: |s| {
                    let ttl = QUARANTINE_TTL_MS + 1;
                    edit_policy(s, QUARANTINE_POLICY, |d| d["message-ttl"] = json!(ttl));
                },
            },
            Fixture {
                what: "the queue policy has no TTL, but the queue an argument within the bound",
                kinds: &[],
                mentions: "",
                change: |s| {
                    edit_policy(s, QUEUE_POLICY, |d| {
                        d.as_object_mut().unwrap().remove("message-ttl");
                    });
                    queue(s, "private-heh-a-inbox")["arguments"]["x-message-ttl"] = json!(60_000);
                },
            },
            Fixture {
                what: "the queue policy has no length bound",
                kinds: &["queue-length"],
                mentions: "queue private-heh-a-inbox has no length bound",
                change: |s| {
                    edit_policy(s, QUEUE_POLICY, |d| {
                        d.as_object_mut().unwrap().remove("max-length");
                    })
                },
            },
            Fixture {
                what: "a queue argument drops the oldest message past the bound",
                kinds: &["queue-overflow"],
                mentions: "queue private-ts-inbox overflows with drop-head",
                change: |s| {
                    queue(s, "private-ts-inbox")["arguments"]["x-overflow"] = json!("drop-head");
                },
            },
            Fixture {
                what: "a quorum queue with a delivery limit argument",
                kinds: &["queue-delivery-limit"],
                mentions: "quorum queue private-ts-inbox drops a message that came back unacknowledged 5 times",
                change: |s| {
                    queue(s, "private-ts-inbox")["arguments"]["x-delivery-limit"] = json!(5);
                },
            },
            Fixture {
                what: "RabbitMQ 4 without the quorum policy",
                kinds: &["queue-delivery-limit"],
                mentions: "quorum queue private-ts-inbox has no delivery-limit",
                change: |s| {
                    s.live.remove(&(0, QUORUM_POLICY.to_owned()));
                },
            },
            Fixture {
                what: "RabbitMQ 3 without the quorum policy",
                kinds: &[],
                mentions: "",
                change: |s| {
                    s.live.remove(&(0, QUORUM_POLICY.to_owned()));
                    s.overview["rabbitmq_version"] = json!("3.10.8");
                },
            },
        ]
    }

    #[test]
    fn a_provisioned_broker_conforms() {
        assert_eq!(check(&clean()), []);
        // One node: classic queues are all it has, and none is lost with a node.
        assert_eq!(check(&broker(1, Release::V3)), []);
    }

    #[test]
    fn each_fixture_breaks_exactly_its_rule() {
        // Every fixture is tried before failing, so that one run names every broken rule.
        let mut failures = Vec::new();
        for fixture in fixtures() {
            let mut snapshot = clean();
            (fixture.change)(&mut snapshot);
            let found = check(&snapshot);
            let kinds: BTreeSet<&str> = found.iter().map(|v| v.kind).collect();
            let want: BTreeSet<&str> = fixture.kinds.iter().copied().collect();
            let said = fixture.kinds.is_empty()
                || found.iter().any(|v| v.detail.contains(fixture.mentions));
            if kinds != want || !said {
                failures.push(format!(
                    "{}: want {want:?} saying {:?}, found {found:#?}",
                    fixture.what, fixture.mentions
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_kind_has_a_fixture_of_its_own() {
        let fixtures = fixtures();
        for kind in KINDS {
            assert!(
                fixtures.iter().any(|f| f.kinds == [kind]),
                "no fixture breaks {kind} alone"
            );
        }
    }

    #[test]
    fn every_kind_a_rule_reports_is_in_kinds() {
        // The kinds are the first argument of `found.v(...)` in this file's non-test part.
        let source = include_str!("check.rs");
        let code = &source[..source.find("mod tests {").unwrap()];
        let used: BTreeSet<&str> = code
            .split("v(")
            .skip(1)
            .filter_map(|rest| {
                let rest = rest.trim_start();
                let rest = rest.strip_prefix('"')?;
                Some(&rest[..rest.find('"')?])
            })
            .collect();
        let named: BTreeSet<&str> = KINDS.into_iter().collect();
        assert_eq!(
            used, named,
            "KINDS lists exactly the kinds the audit reports"
        );
    }

    #[test]
    fn a_binding_into_a_pair_exchange_is_a_relay_whatever_its_source() {
        let items = [
            user("ts", false, ""),
            user("vpp", false, ""),
            user("mkt", false, ""),
            // What provisioning makes: no violation.
            binding("ts-to-vpp", "private-vpp-in", "exchange"),
            binding("vpp-to-mkt", "private-mkt-in", "exchange"),
            binding("private-mkt-in", "private-mkt-inbox", "queue"),
            // vpp relays ts's messages, and its own incoming stream, to mkt.
            binding("ts-to-vpp", "vpp-to-mkt", "exchange"),
            binding("private-vpp-in", "vpp-to-mkt", "exchange"),
        ];
        let live: State = items.iter().map(|i| (i.key(), i.clone())).collect();
        let mut found = Found::default();
        relay_bindings(&live, &mut found);
        foreign_bindings(&live, &users(&live), &Groups::new(), &mut found);
        let found = found.0;
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|v| v.kind == "relay-binding"));
        assert!(
            found[1].detail.starts_with(
                "ts-to-vpp is bound to the pair exchange vpp-to-mkt [#]: what is published to ts-to-vpp reaches mkt"
            ),
            "{found:?}"
        );
        assert!(found[1].detail.contains("so vpp made it"), "{found:?}");
    }

    #[test]
    fn a_node_leading_more_than_twice_its_share_is_lopsided() {
        let counts = |c: &[usize]| -> BTreeMap<String, usize> {
            c.iter()
                .enumerate()
                .map(|(i, n)| (format!("n{i}"), *n))
                .collect()
        };
        assert_eq!(lopsided(&counts(&[40, 40, 40])), None);
        assert_eq!(
            lopsided(&counts(&[60, 30, 30])),
            None,
            "1.5 times its share"
        );
        assert_eq!(lopsided(&counts(&[20, 0, 0])), None, "too few to judge");
        let detail = lopsided(&counts(&[100, 10, 10])).unwrap();
        assert!(
            detail.starts_with("node n0 leads 100 of the 120"),
            "{detail}"
        );
    }
}
