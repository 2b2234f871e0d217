//! Audit: checks a live broker against the conventions of D3.2.3 5.3 and 6.1 and lists every
//! violation. Derives group membership from the live bindings, so it needs no registry.

use crate::mgmt::RawApi;
use crate::provision::{AdminClient, ApiError, live_state};
use crate::state::Item;
use ebadge_bus::EntityName;
use ebadge_bus::conventions::{MESSAGE_TTL_MS, is_valid_entity_name, permissions};
use ebadge_bus::profile::Management;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One breach of the conventions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Violation {
    /// Short kind, stable for scripts: `guest`, `password-user`, `plain-listener`, `permissions`,
    /// `queue-ttl`, `queue-replication`, `exchange-type`, `default-exchange`, `user-name`.
    pub kind: &'static str,
    /// What exactly, and what to do.
    pub detail: String,
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

    // Listeners: AMQP over TLS only.
    let overview = http.get("overview").await?;
    for l in overview["listeners"].as_array().into_iter().flatten() {
        let protocol = l["protocol"].as_str().unwrap_or("");
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
            && let Some(member) = destination
                .strip_prefix("private-")
                .and_then(|d| d.strip_suffix("-in"))
            && let (Ok(s), Ok(g)) = (EntityName::new(s), EntityName::new(g))
        {
            groups_of.entry(member.to_owned()).or_default().push((s, g));
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

    // Queues: every one under a TTL of at most 15 minutes. The effective policy is computed from
    // the policies themselves: the queue listing reports it only after a statistics interval.
    let policies: Vec<(regex::Regex, i64, Option<u64>)> = live
        .values()
        .filter_map(|i| match i {
            Item::Policy {
                pattern,
                apply_to,
                definition,
                priority,
                ..
            } if apply_to == "queues" || apply_to == "all" => {
                let ttl = serde_json::from_str::<Value>(definition).ok()?["message-ttl"].as_u64();
                Some((regex::Regex::new(pattern).ok()?, *priority, ttl))
            }
            _ => None,
        })
        .collect();
    // On a cluster, a durable queue that is not replicated dies with its node (D3.2.3 6.2.1).
    let cluster_nodes = http.nodes().await?.len();
    for q in http
        .get("queues?columns=name,vhost,arguments,durable,type")
        .await?
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = q["name"].as_str().unwrap_or("?");
        let kind = q["type"].as_str().unwrap_or("classic");
        if cluster_nodes > 1 && q["durable"] == true && kind != "quorum" {
            v(
                "queue-replication",
                format!(
                    "queue {name} is a {kind} queue on a cluster of {cluster_nodes} nodes: it is lost with its node; \
                     make it a quorum queue (registry queue_type \"auto\" or \"quorum\", then `ebadge provision`)"
                ),
            );
        }
        let policy_ttl = policies
            .iter()
            .filter(|(re, _, _)| re.is_match(name))
            .max_by_key(|(_, priority, _)| *priority)
            .and_then(|(_, _, ttl)| *ttl);
        let ttl = [policy_ttl, q["arguments"]["x-message-ttl"].as_u64()]
            .into_iter()
            .flatten()
            .min();
        if ttl.is_none_or(|t| t > MESSAGE_TTL_MS) {
            v(
                "queue-ttl",
                format!(
                    "queue {name} has message TTL {}: every queue needs at most {MESSAGE_TTL_MS} ms (D3.2.3 6.2.4); run `ebadge provision` to set the policy",
                    ttl.map(|t| format!("{t} ms"))
                        .unwrap_or_else(|| "none".into())
                ),
            );
        }
    }
    violations.sort();
    violations.dedup();
    Ok(violations)
}
