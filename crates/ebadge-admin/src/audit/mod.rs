//! Audit: checks a live broker against the conventions of D3.2.3 5.3 and 6.1 and lists every
//! violation. Derives group membership from the live bindings, so it needs no registry.

pub mod handles;

use crate::mgmt::RawApi;
use crate::mgmt::{AdminClient, ApiError};
use crate::profile::Management;
use crate::state::{Item, Release, live_state};
use ebadge_bus::EntityName;
use ebadge_bus::conventions::{
    HEH_TAG, MESSAGE_TTL_MS, QUARANTINE_MAX_LENGTH, QUARANTINE_TTL_MS, QUORUM_POLICY, inbox_queue,
    incoming_exchange, is_relay_binding, is_valid_entity_name, parse_pair_exchange, permissions,
    receiver_of_binding,
};
use handles::{QUEUE_COLUMNS, file_handle_reservations};
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

/// The audit as Prometheus metrics (text format 0.0.4, as node_exporter's textfile collector
/// reads it): violations by kind, when the audit ran, and each certificate's expiry as a Unix
/// time. An expiry, unlike "days left", stays true however old the file gets; the alert
/// computes the days (`ebadge_certificate_expiry_timestamp_seconds - time()`).
///
/// ```
/// use ebadge_admin::audit::{Violation, metrics_text};
/// let found = [Violation { kind: "guest", detail: "the guest user exists".into() }];
/// let text = metrics_text(&found, &[], 1_700_000_000);
/// assert!(text.contains("ebadge_audit_violations{kind=\"guest\"} 1\n"));
/// assert!(text.contains("ebadge_audit_violations{kind=\"tls\"} 0\n"));
/// assert!(text.contains("ebadge_audit_timestamp_seconds 1700000000\n"));
/// ```
pub fn metrics_text(
    violations: &[Violation],
    certificates: &[crate::pki::CertInfo],
    now_unix: i64,
) -> String {
    use std::fmt::Write;
    let mut text = String::from(
        "# HELP ebadge_audit_violations Breaches of the bus conventions the last audit found, by kind.\n\
         # TYPE ebadge_audit_violations gauge\n",
    );
    for kind in KINDS {
        let n = violations.iter().filter(|v| v.kind == kind).count();
        let _ = writeln!(text, "ebadge_audit_violations{{kind=\"{kind}\"}} {n}");
    }
    let _ = write!(
        text,
        "# HELP ebadge_audit_timestamp_seconds When the audit ran (Unix time).\n\
         # TYPE ebadge_audit_timestamp_seconds gauge\n\
         ebadge_audit_timestamp_seconds {now_unix}\n"
    );
    if !certificates.is_empty() {
        text.push_str(
            "# HELP ebadge_certificate_expiry_timestamp_seconds When a certificate of the bus's PKI expires (Unix time).\n\
             # TYPE ebadge_certificate_expiry_timestamp_seconds gauge\n",
        );
    }
    for cert in certificates {
        let role = match cert.name.as_str() {
            "ca" | "server" => cert.name.as_str(),
            _ => "client",
        };
        let _ = writeln!(
            text,
            "ebadge_certificate_expiry_timestamp_seconds{{role=\"{role}\",name=\"{}\"}} {}",
            escape_label(&cert.common_name),
            cert.not_after_unix
        );
    }
    text
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Checks the broker. An empty list means it conforms.
pub async fn audit(
    client: &AdminClient,
    management: &Management,
) -> Result<Vec<Violation>, ApiError> {
    let live = live_state(client).await?;
    let mut violations = Vec::new();
    let mut v = |kind, detail: String| violations.push(Violation { kind, detail });
    let http = RawApi::new(management);

    // Listeners: AMQP over TLS only, client certificates required, verified and checked
    // against the CRL; logins by certificate only.
    let overview = http.get("overview").await?;
    for l in overview["listeners"].as_array().into_iter().flatten() {
        let protocol = l["protocol"].as_str().unwrap_or("");
        if protocol == "amqp/ssl" {
            let node = l["node"].as_str().unwrap_or("?");
            let opts = &l["socket_opts"];
            for (key, want) in [
                ("verify", Value::from("verify_peer")),
                ("fail_if_no_peer_cert", Value::from(true)),
                ("crl_check", Value::from("peer")),
            ] {
                if opts[key] != want {
                    v(
                        "tls",
                        format!(
                            "the AMQPS listener of {node} has {key} = {}: it must be {want} (client certificates required, verified, checked against the CRL; see deploy/rabbitmq/advanced.config)",
                            opts[key]
                        ),
                    );
                }
            }
        }
        if protocol == "amqp" || protocol == "stomp" || protocol == "mqtt" {
            v(
                "plain-listener",
                format!(
                    "plain {protocol} listener on port {} of {}: set listeners.tcp = none (TLS only, D3.2.3 6.1)",
                    l["port"],
                    l["node"].as_str().unwrap_or("?")
                ),
            );
        }
    }

    let users: BTreeMap<&str, &Item> = live
        .values()
        .filter_map(|i| match i {
            Item::User { name, .. } => Some((name.as_str(), i)),
            _ => None,
        })
        .collect();
    // Group exchanges: `S-to-G` where G is not a user; members are the entities bound to it.
    let mut groups_of: BTreeMap<String, Vec<(EntityName, EntityName)>> = BTreeMap::new();
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
            groups_of
                .entry(member.to_string())
                .or_default()
                .push((s, g));
        }
    }

    for (name, item) in &users {
        let Item::User {
            has_password, tags, ..
        } = item
        else {
            continue;
        };
        let admin = *name == management.user;
        if *name == "guest" {
            v("guest", "user guest exists: delete it (`rabbitmqctl delete_user guest`); load definitions at boot so it is never seeded".into());
        } else if *has_password && !admin {
            v(
                "password-user",
                format!(
                    "user {name} has a password: entities log in with certificates only; re-provision it (users are created without password)"
                ),
            );
        }
        if !admin && tags.contains("administrator") {
            v(
                "password-user",
                format!(
                    "user {name} is an administrator: only {} may be",
                    management.user
                ),
            );
        }
        if !admin && *name != "guest" && !is_valid_entity_name(name) {
            v(
                "user-name",
                format!("user {name} is not a valid entity name"),
            );
        }
    }

    let default_exchange = ["amq.default", ""];
    for item in live.values() {
        match item {
            Item::Permission {
                user,
                configure,
                write,
                read,
            } if user != &management.user => {
                if let Ok(name) = EntityName::new(user) {
                    let mut groups = groups_of.get(user.as_str()).cloned().unwrap_or_default();
                    groups.sort();
                    groups.dedup();
                    let want = permissions(&name, &groups);
                    if (configure, write, read) != (&want.configure, &want.write, &want.read) {
                        v(
                            "permissions",
                            format!(
                                "user {user} has configure {configure:?} write {write:?} read {read:?}; the convention is configure {:?} write {:?} read {:?}",
                                want.configure, want.write, want.read
                            ),
                        );
                    }
                }
                if regex::Regex::new(write)
                    .is_ok_and(|r| default_exchange.iter().any(|d| r.is_match(d)))
                {
                    v(
                        "default-exchange",
                        format!(
                            "user {user} may publish to the default exchange (write {write:?})"
                        ),
                    );
                }
            }
            Item::Exchange { name, kind, .. } => {
                let builtin = name.is_empty() || name.starts_with("amq.");
                if !builtin && !name.starts_with("private-") && kind != "topic" {
                    v(
                        "exchange-type",
                        format!(
                            "exchange {name} is {kind}: outside private namespaces every exchange is a topic exchange"
                        ),
                    );
                }
            }
            Item::Binding {
                source,
                destination,
                ..
            } if source.is_empty() => {
                v(
                    "default-exchange",
                    format!("{destination} is bound from the default exchange"),
                );
            }
            _ => {}
        }
    }

    let nodes = http.get("nodes").await?;
    for node in nodes.as_array().into_iter().flatten() {
        for mechanism in node["auth_mechanisms"].as_array().into_iter().flatten() {
            let name = mechanism["name"].as_str().unwrap_or("?");
            if mechanism["enabled"] == true && name != "EXTERNAL" {
                v(
                    "auth-mechanism",
                    format!(
                        "node {} offers the {name} login: only EXTERNAL (client certificates) may be enabled (auth_mechanisms.1 = EXTERNAL)",
                        node["name"].as_str().unwrap_or("?")
                    ),
                );
            }
        }
    }
    audit_bindings(&live, &users, &groups_of, &mut v);
    // On a cluster, a durable queue that is not replicated dies with its node (D3.2.3 6.2.1).
    let cluster_nodes = nodes.as_array().map_or(0, Vec::len);
    let hehs: Vec<EntityName> = users
        .iter()
        .filter(
            |(_, u)| matches!(u, Item::User { tags, .. } if tags.split(',').any(|t| t == HEH_TAG)),
        )
        .filter_map(|(n, _)| EntityName::new(n).ok())
        .collect();
    for heh in &hehs {
        // An HEH reads in one hop: an incoming exchange of its own is an older provisioning's.
        let old = incoming_exchange(heh);
        if live.contains_key(&Item::exchange_key(&old)) {
            v(
                "layout",
                format!(
                    "{old} exists: an HEH's pair and group exchanges are bound straight to its inbox (one hop); run `ebadge provision` to move the bindings (no queued message is touched) and delete it"
                ),
            );
        }
    }
    let heh_inboxes: Vec<String> = hehs.iter().map(inbox_queue).collect();

    // Queues: every one under a TTL of at most 15 minutes (quarantines: their own longer bound)
    // and a length bound. The effective policy is computed from the policies themselves: the
    // queue listing reports it only after a statistics interval. Queue arguments can only lower
    // a policy's TTL and length (RabbitMQ takes the smaller), but an argument's overflow wins
    // over the policy's, and a stream ignores both bounds.
    let policies: Vec<(regex::Regex, &str, i64, Value)> = live
        .values()
        .filter_map(|i| match i {
            Item::Policy {
                pattern,
                apply_to,
                definition,
                priority,
                ..
            } if apply_to != "exchanges" => Some((
                regex::Regex::new(pattern).ok()?,
                apply_to.as_str(),
                *priority,
                serde_json::from_str::<Value>(definition).ok()?,
            )),
            _ => None,
        })
        .collect();
    let release = Release::of_overview(&overview);
    let queues = http.get(QUEUE_COLUMNS).await?;
    for detail in file_handle_reservations(&nodes, &queues) {
        v("file-handles", detail);
    }
    if cluster_nodes > 1 {
        // Where each durable queue's leader (or classic master) runs: the node does the work.
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for node in nodes.as_array().into_iter().flatten() {
            per_node.insert(node["name"].as_str().unwrap_or("?").to_owned(), 0);
        }
        for q in queues.as_array().into_iter().flatten() {
            if q["durable"] == true
                && let Some(node) = q["node"].as_str()
            {
                *per_node.entry(node.to_owned()).or_default() += 1;
            }
        }
        if let Some(detail) = lopsided(&per_node) {
            v("queue-placement", detail);
        }
    }
    for q in queues.as_array().into_iter().flatten() {
        let name = q["name"].as_str().unwrap_or("?");
        let kind = q["type"].as_str().unwrap_or("classic");
        // Quarantines and HEH inboxes are classic by design (see `state::inbox_queue_type`): a
        // crash of their node delays them and loses nothing.
        if cluster_nodes > 1
            && q["durable"] == true
            && kind != "quorum"
            && kind != "stream"
            && !is_quarantine(name)
            && !heh_inboxes.iter().any(|h| h == name)
        {
            v(
                "queue-replication",
                format!(
                    "queue {name} is a {kind} queue on a cluster of {cluster_nodes} nodes: it is lost with its node; \
                     make it a quorum queue (registry queue_type \"auto\" or \"quorum\", then `ebadge provision`)"
                ),
            );
        }
        if kind == "stream" {
            v(
                "queue-type",
                format!(
                    "queue {name} is a stream: streams ignore the TTL and length bounds of D3.2.3 6.2.4; delete it"
                ),
            );
            continue;
        }
        let policy = policies
            .iter()
            .filter(|(re, apply_to, _, _)| re.is_match(name) && applies_to(apply_to, kind))
            .max_by_key(|(_, _, priority, _)| *priority)
            .map(|(_, _, _, definition)| definition);
        let bound = |policy_key: &str, argument: &str| {
            [
                policy.and_then(|d| d[policy_key].as_u64()),
                q["arguments"][argument].as_u64(),
            ]
            .into_iter()
            .flatten()
            .min()
        };
        let (max_ttl, max_length) = if is_quarantine(name) {
            (QUARANTINE_TTL_MS, QUARANTINE_MAX_LENGTH)
        } else {
            (MESSAGE_TTL_MS, u64::MAX)
        };
        let ttl = bound("message-ttl", "x-message-ttl");
        if ttl.is_none_or(|t| t > max_ttl) {
            v(
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
            v(
                "queue-length",
                format!(
                    "queue {name} has no length bound within {max_length}: run `ebadge provision` to set the policy"
                ),
            );
        }
        let overflow = q["arguments"]["x-overflow"]
            .as_str()
            .or_else(|| policy.and_then(|d| d["overflow"].as_str()));
        if overflow != Some("reject-publish") {
            v(
                "queue-overflow",
                format!(
                    "queue {name} overflows with {}: past its bound it must refuse publishes (the sender keeps them), never drop silently",
                    overflow.unwrap_or("drop-head (the default)")
                ),
            );
        }
        if kind == "quorum" {
            let limits: Vec<i64> = [
                policy.and_then(|d| d["delivery-limit"].as_i64()),
                q["arguments"]["x-delivery-limit"].as_i64(),
            ]
            .into_iter()
            .flatten()
            .collect();
            // -1 is 4.0's "no limit"; 3.x has none unless one is set.
            let finite = limits.iter().filter(|l| **l >= 0).min();
            let drops = match (finite, limits.is_empty(), release) {
                (Some(limit), _, _) => Some(format!("drops a message that came back unacknowledged {limit} times (a delivery-limit)")),
                (None, true, Release::V4) => Some("has no delivery-limit: RabbitMQ 4 drops a message that came back unacknowledged 20 times".into()),
                _ => None,
            };
            if let Some(drops) = drops {
                v(
                    "queue-delivery-limit",
                    format!(
                        "quorum queue {name} {drops}; a consumer's lost link must never lose a message: remove any x-delivery-limit argument and run `ebadge provision` (on RabbitMQ 4 it sets the {QUORUM_POLICY} policy)"
                    ),
                );
            }
        }
    }
    violations.sort();
    violations.dedup();
    Ok(violations)
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

fn is_quarantine(queue: &str) -> bool {
    queue.starts_with("private-") && queue.ends_with("-quarantine")
}

/// Bindings the conventions do not imply: into a pair exchange (a relay, whatever its source,
/// see [`is_relay_destination`]); into an entity's private namespace, from an exchange that
/// entity may not read (a pair exchange addressed to someone else, a group it is not in).
/// Bindings between an entity's own resources and from what it reads (taps) are its business.
fn audit_bindings(
    live: &crate::state::State,
    users: &BTreeMap<&str, &Item>,
    groups_of: &BTreeMap<String, Vec<(EntityName, EntityName)>>,
    v: &mut impl FnMut(&'static str, String),
) {
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
        if is_relay_binding(destination_type, destination) {
            let (writer, receiver) = destination.split_once("-to-").unwrap_or_default();
            let from = if source.is_empty() {
                "the default exchange"
            } else {
                source.as_str()
            };
            v(
                "relay-binding",
                format!(
                    "{from} is bound to the pair exchange {destination} [{routing_key}]: what is published to {from} reaches {receiver} as if its sender had sent it there (a relayed sender); only {writer} may write {destination}, so {writer} made it. No binding may go into a pair exchange: run `ebadge provision` (it removes it) and ask why {writer} relays"
                ),
            );
            continue;
        }
        if source.is_empty() {
            continue; // reported as default-exchange
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
        let member = groups_of
            .get(*owner)
            .is_some_and(|groups| groups.iter().any(|(s, g)| format!("{s}-to-{g}") == *source));
        if !(own || addressed || member) {
            v(
                "binding",
                format!(
                    "{source} is bound to {destination}: {owner} may not read {source}; delete the binding (`ebadge provision` removes the ones it manages)"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_the_audit_reports_is_named_in_the_metrics() {
        // The kinds are the first argument of `v(...)` in this file's non-test part.
        let source = include_str!("mod.rs");
        let code = &source[..source.find("mod tests {").unwrap()];
        let used: std::collections::BTreeSet<&str> = code
            .split("v(")
            .skip(1)
            .filter_map(|rest| {
                let rest = rest.trim_start();
                let rest = rest.strip_prefix('"')?;
                Some(&rest[..rest.find('"')?])
            })
            .collect();
        let named: std::collections::BTreeSet<&str> = KINDS.into_iter().collect();
        assert_eq!(
            used, named,
            "KINDS lists exactly the kinds the audit reports"
        );
    }

    #[test]
    fn a_binding_into_a_pair_exchange_is_a_relay_whatever_its_source() {
        let binding = |source: &str, destination: &str, destination_type: &str| Item::Binding {
            source: source.into(),
            destination: destination.into(),
            destination_type: destination_type.into(),
            routing_key: "#".into(),
        };
        let user = |name: &str| Item::User {
            name: name.into(),
            has_password: false,
            tags: String::new(),
        };
        let items = [
            user("ts"),
            user("vpp"),
            user("mkt"),
            // What provisioning makes: no violation.
            binding("ts-to-vpp", "private-vpp-in", "exchange"),
            binding("vpp-to-mkt", "private-mkt-in", "exchange"),
            binding("private-mkt-in", "private-mkt-inbox", "queue"),
            // vpp relays ts's messages, and its own incoming stream, to mkt.
            binding("ts-to-vpp", "vpp-to-mkt", "exchange"),
            binding("private-vpp-in", "vpp-to-mkt", "exchange"),
        ];
        let live: crate::state::State = items.iter().map(|i| (i.key(), i.clone())).collect();
        let users: BTreeMap<&str, &Item> =
            ["ts", "vpp", "mkt"].into_iter().zip(&items[..3]).collect();
        let mut found = Vec::new();
        audit_bindings(&live, &users, &BTreeMap::new(), &mut |kind, detail| {
            found.push((kind, detail))
        });
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|(kind, _)| *kind == "relay-binding"));
        assert!(
            found[1].1.starts_with(
                "ts-to-vpp is bound to the pair exchange vpp-to-mkt [#]: what is published to ts-to-vpp reaches mkt"
            ),
            "{found:?}"
        );
        assert!(found[1].1.contains("so vpp made it"), "{found:?}");
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
