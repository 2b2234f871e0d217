//! Broker state as a set of items (users, permissions, exchanges, queues, bindings, policies):
//! computed from a registry, or read from a live broker's definitions, so the two can be diffed.

use crate::mgmt::{AdminClient, ApiError, RawApi};
use crate::registry::{QueueType, Registry};
use ebadge_bus::EntityName;
use ebadge_bus::conventions::{
    HEH_TAG, QUARANTINE_MAX_LENGTH, QUARANTINE_PATTERN, QUARANTINE_POLICY, QUARANTINE_TTL_MS,
    QUEUE_POLICY, QUORUM_POLICY, inbox_queue, incoming_exchange, incoming_side, is_relay_binding,
    pair_exchange, permissions,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;

/// One piece of broker state in vhost `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Item {
    /// A user; `has_password` is false for certificate-only users.
    User {
        /// Username.
        name: String,
        /// Whether a password is set.
        has_password: bool,
        /// Tags, sorted, comma-separated.
        tags: String,
    },
    /// A user's permissions.
    Permission {
        /// Username.
        user: String,
        /// Configure regex.
        configure: String,
        /// Write regex.
        write: String,
        /// Read regex.
        read: String,
    },
    /// An exchange.
    Exchange {
        /// Name.
        name: String,
        /// `topic`, `direct`, …
        kind: String,
        /// Survives a restart.
        durable: bool,
    },
    /// A queue.
    Queue {
        /// Name.
        name: String,
        /// Survives a restart.
        durable: bool,
        /// `classic` or `quorum`.
        queue_type: String,
    },
    /// A binding.
    Binding {
        /// Source exchange.
        source: String,
        /// Destination exchange or queue.
        destination: String,
        /// `queue` or `exchange`.
        destination_type: String,
        /// Binding key.
        routing_key: String,
    },
    /// A policy.
    Policy {
        /// Name.
        name: String,
        /// Regex over resource names.
        pattern: String,
        /// `queues`, `exchanges` or `all`.
        apply_to: String,
        /// The definition as canonical JSON text.
        definition: String,
        /// Priority.
        priority: i64,
    },
}

impl Item {
    /// Identity of the item: two items with the same key are the same resource (maybe changed).
    /// Keys sort in the order a broker can create the items in: policies before the queues they
    /// apply to (a policy set after 20,000 queues exist updates every one of them), users before
    /// their permissions, exchanges and queues before their bindings.
    pub fn key(&self) -> (u8, String) {
        match self {
            Item::Policy { name, .. } => (0, name.clone()),
            Item::User { name, .. } => (1, name.clone()),
            Item::Permission { user, .. } => (2, user.clone()),
            Item::Exchange { name, .. } => Item::exchange_key(name),
            Item::Queue { name, .. } => Item::queue_key(name),
            Item::Binding {
                source,
                destination,
                destination_type,
                routing_key,
            } => (
                5,
                format!("{source}|{destination_type}|{destination}|{routing_key}"),
            ),
        }
    }

    /// The key of the exchange named `name`.
    pub fn exchange_key(name: &str) -> (u8, String) {
        (3, name.to_owned())
    }

    /// The key of the queue named `name`.
    pub fn queue_key(name: &str) -> (u8, String) {
        (4, name.to_owned())
    }

    /// Whether provisioning owns this kind of resource and may delete it when the registry no
    /// longer implies it. Entities' own private resources (taps, extra queues), the built-in
    /// `amq.*` exchanges and the administrator are never touched.
    pub fn is_managed(&self, admin: &str) -> bool {
        let private = |n: &str, suffix: &str| n.starts_with("private-") && n.ends_with(suffix);
        // Quarantines are the entities' own: their clients make them on first use, and what
        // they hold waits for an operator, so provisioning never deletes one.
        let managed_exchange = |n: &str| n.contains("-to-") || private(n, "-in");
        match self {
            Item::User { name, .. } => name != admin,
            Item::Permission { user, .. } => user != admin,
            Item::Exchange { name, .. } => managed_exchange(name),
            Item::Queue { name, .. } => private(name, "-inbox"),
            // A binding into a pair exchange relays (see `is_relay_destination`): never one of
            // ours, whoever made it and whatever its key, and always provisioning's to remove.
            Item::Binding {
                destination,
                destination_type,
                ..
            } if is_relay_binding(destination_type, destination) => true,
            Item::Binding {
                source,
                destination,
                routing_key,
                ..
            } => {
                managed_exchange(source)
                    && routing_key == "#"
                    && ["-in", "-inbox"].iter().any(|s| destination.ends_with(s))
            }
            Item::Policy { name, .. } => name.starts_with("ebadge-"),
        }
    }

    /// The item as an entry of a RabbitMQ definitions file: (section, entry).
    pub fn definition(&self) -> (&'static str, Value) {
        match self {
            Item::User { name, tags, .. } => (
                "users",
                // An empty hash: no password, the user can log in with a certificate only.
                json!({"name": name, "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": tags}),
            ),
            Item::Permission {
                user,
                configure,
                write,
                read,
            } => (
                "permissions",
                json!({"user": user, "vhost": "/", "configure": configure, "write": write, "read": read}),
            ),
            Item::Exchange {
                name,
                kind,
                durable,
            } => (
                "exchanges",
                json!({"name": name, "vhost": "/", "type": kind, "durable": durable, "auto_delete": false, "internal": false, "arguments": {}}),
            ),
            Item::Queue {
                name,
                durable,
                queue_type,
            } => (
                "queues",
                json!({"name": name, "vhost": "/", "durable": durable, "auto_delete": false, "arguments": {"x-queue-type": queue_type}}),
            ),
            Item::Binding {
                source,
                destination,
                destination_type,
                routing_key,
            } => (
                "bindings",
                json!({"source": source, "vhost": "/", "destination": destination, "destination_type": destination_type, "routing_key": routing_key, "arguments": {}}),
            ),
            Item::Policy {
                name,
                pattern,
                apply_to,
                definition,
                priority,
            } => (
                "policies",
                json!({"vhost": "/", "name": name, "pattern": pattern, "apply-to": apply_to,
                       "definition": serde_json::from_str::<Value>(definition).unwrap_or(Value::Null), "priority": priority}),
            ),
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::User {
                name, has_password, ..
            } => write!(
                f,
                "user {name}{}",
                if *has_password {
                    " (with password)"
                } else {
                    ""
                }
            ),
            Item::Permission {
                user,
                configure,
                write,
                read,
            } => write!(
                f,
                "permissions {user}: configure {configure} write {write} read {read}"
            ),
            Item::Exchange {
                name,
                kind,
                durable,
            } => write!(
                f,
                "exchange {name} ({kind}{})",
                if *durable { ", durable" } else { "" }
            ),
            Item::Queue {
                name,
                durable,
                queue_type,
            } => write!(
                f,
                "queue {name} ({queue_type}{})",
                if *durable { ", durable" } else { "" }
            ),
            Item::Binding {
                source,
                destination,
                routing_key,
                ..
            } => write!(f, "binding {source} -> {destination} [{routing_key}]"),
            Item::Policy {
                name,
                pattern,
                definition,
                ..
            } => write!(f, "policy {name} on {pattern}: {definition}"),
        }
    }
}

/// A set of items keyed by identity.
pub type State = BTreeMap<(u8, String), Item>;

/// The queue policy's definition for the registry's options.
pub fn queue_policy_definition(ttl_ms: u64, max_length: u64) -> Value {
    json!({"message-ttl": ttl_ms, "max-length": max_length, "overflow": "reject-publish"})
}

/// The queue type of one inbox. `auto` makes the inboxes of VPPs, operators and market
/// parties quorum queues on a cluster (replicated: a node failure loses none of their
/// messages) and keeps HEH inboxes classic, on one node each: a quorum queue costs every node
/// ≈ 430 KiB and 2–5 reserved file handles, and RabbitMQ 3.10 stops accepting connections on
/// a node whose reservations pass its file limit, which a fleet of 5,000 quorum HEH inboxes
/// does (docs/benchmarks.md, "Fleet scale on the cluster"). An HEH inbox holds activations for
/// minutes at most; while its node is down they are refused and kept in the sender's outbox.
///
/// ```
/// use ebadge_admin::registry::QueueType;
/// use ebadge_admin::state::inbox_queue_type;
/// assert_eq!(inbox_queue_type(QueueType::Auto, false, 3), "quorum");
/// assert_eq!(inbox_queue_type(QueueType::Auto, true, 3), "classic");
/// assert_eq!(inbox_queue_type(QueueType::Auto, false, 1), "classic");
/// assert_eq!(inbox_queue_type(QueueType::Quorum, true, 3), "quorum");
/// ```
pub fn inbox_queue_type(option: QueueType, heh: bool, cluster_nodes: usize) -> &'static str {
    match option {
        QueueType::Auto if cluster_nodes > 1 && !heh => "quorum",
        QueueType::Auto | QueueType::Classic => "classic",
        QueueType::Quorum => "quorum",
    }
}

/// The RabbitMQ release a desired state is for: they differ in the policies they need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// 3.x (Debian 12 ships 3.10): no limit on a quorum queue's returns; no `quorum_queues`
    /// policies. What `deploy/` boots, as it works on both.
    V3,
    /// 4.0 and later (Debian 13 ships 4.0): a quorum queue drops a message after 20 returns
    /// unless [`QUORUM_POLICY`] says otherwise.
    V4,
}

impl Release {
    /// The release of a version string such as `4.0.5` (from the management API's overview).
    ///
    /// ```
    /// use ebadge_admin::state::Release;
    /// assert_eq!(Release::of("3.10.8"), Release::V3);
    /// assert_eq!(Release::of("4.0.5"), Release::V4);
    /// assert_eq!(Release::of("4.2.0-rc.1"), Release::V4);
    /// ```
    pub fn of(version: &str) -> Release {
        match version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
        {
            Some(major) if major >= 4 => Release::V4,
            _ => Release::V3,
        }
    }

    /// The release named by the management API's `GET /api/overview` answer.
    pub fn of_overview(overview: &Value) -> Release {
        Release::of(overview["rabbitmq_version"].as_str().unwrap_or(""))
    }

    /// The release the broker behind `api` runs. Here rather than on [`RawApi`] so that the
    /// state model depends on the management API and not the other way round.
    pub async fn of_broker(api: &RawApi) -> Result<Release, ApiError> {
        Ok(Release::of_overview(&api.get("overview").await?))
    }
}

/// What the registry implies, by the conventions, for a RabbitMQ 3.x broker of `cluster_nodes`
/// nodes (which decides the queue type when the registry says `auto`).
pub fn desired(registry: &Registry, cluster_nodes: usize) -> State {
    desired_for(registry, cluster_nodes, Release::V3)
}

/// [`desired`] for a broker of `release`.
pub fn desired_for(registry: &Registry, cluster_nodes: usize, release: Release) -> State {
    let mut items = Vec::new();
    let topic = |name: String| Item::Exchange {
        name,
        kind: "topic".into(),
        durable: true,
    };
    let bind = |source: String, destination: String, destination_type: &str| Item::Binding {
        source,
        destination,
        destination_type: destination_type.into(),
        routing_key: "#".into(),
    };
    let is_heh = |name: &EntityName| registry.role(name) == Some("heh");
    let queue = |name: &EntityName| Item::Queue {
        name: inbox_queue(name),
        durable: true,
        queue_type: inbox_queue_type(registry.options.queue_type, is_heh(name), cluster_nodes)
            .into(),
    };
    // A pair or group exchange into `receiver`'s incoming side (one hop for HEHs).
    let into = |exchange: String, receiver: &EntityName| {
        let side = incoming_side(receiver, is_heh(receiver));
        bind(exchange, side.name().to_owned(), side.destination_type())
    };
    for name in registry.entities() {
        let groups: Vec<(EntityName, EntityName)> = registry
            .groups()
            .iter()
            .filter(|g| g.members.contains(name))
            .map(|g| (g.sender.clone(), g.name.clone()))
            .collect();
        let p = permissions(name, &groups);
        items.push(Item::User {
            name: name.to_string(),
            has_password: false,
            tags: if is_heh(name) {
                HEH_TAG.into()
            } else {
                String::new()
            },
        });
        items.push(Item::Permission {
            user: name.to_string(),
            configure: p.configure,
            write: p.write,
            read: p.read,
        });
        items.push(queue(name));
        if !is_heh(name) {
            items.push(topic(incoming_exchange(name)));
            items.push(bind(incoming_exchange(name), inbox_queue(name), "queue"));
        }
    }
    for (a, b) in registry.links() {
        for (from, to) in [(a, b), (b, a)] {
            items.push(topic(pair_exchange(from, to)));
            items.push(into(pair_exchange(from, to), to));
        }
    }
    for g in registry.groups() {
        items.push(topic(pair_exchange(&g.sender, &g.name)));
        for m in &g.members {
            items.push(into(pair_exchange(&g.sender, &g.name), m));
        }
    }
    items.push(Item::Policy {
        name: QUEUE_POLICY.into(),
        pattern: ".*".into(),
        apply_to: "queues".into(),
        definition: queue_policy_definition(
            registry.options.message_ttl_ms,
            registry.options.max_length,
        )
        .to_string(),
        priority: 0,
    });
    items.push(Item::Policy {
        name: QUARANTINE_POLICY.into(),
        pattern: QUARANTINE_PATTERN.into(),
        apply_to: "queues".into(),
        definition: queue_policy_definition(QUARANTINE_TTL_MS, QUARANTINE_MAX_LENGTH).to_string(),
        priority: 1,
    });
    if release == Release::V4 {
        let mut definition =
            queue_policy_definition(registry.options.message_ttl_ms, registry.options.max_length);
        definition["delivery-limit"] = json!(-1);
        items.push(Item::Policy {
            name: QUORUM_POLICY.into(),
            pattern: ".*".into(),
            apply_to: "quorum_queues".into(),
            definition: definition.to_string(),
            priority: 2,
        });
    }
    items.into_iter().map(|i| (i.key(), i)).collect()
}

/// Reads the items of vhost `/` from a definitions document (`GET /api/definitions`).
pub fn from_definitions(defs: &Value) -> State {
    let list = |section: &str| -> Vec<Value> {
        defs.get(section)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let in_vhost = |v: &Value| v.get("vhost").and_then(Value::as_str) == Some("/");
    let mut items = Vec::new();
    for u in list("users") {
        let tags = match u.get("tags") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            Some(Value::String(t)) => t.clone(),
            _ => String::new(),
        };
        items.push(Item::User {
            name: s(&u, "name"),
            has_password: !s(&u, "password_hash").is_empty(),
            tags,
        });
    }
    for p in list("permissions").iter().filter(|v| in_vhost(v)) {
        items.push(Item::Permission {
            user: s(p, "user"),
            configure: s(p, "configure"),
            write: s(p, "write"),
            read: s(p, "read"),
        });
    }
    for e in list("exchanges").iter().filter(|v| in_vhost(v)) {
        items.push(Item::Exchange {
            name: s(e, "name"),
            kind: s(e, "type"),
            durable: e.get("durable").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    for q in list("queues").iter().filter(|v| in_vhost(v)) {
        let queue_type = q
            .pointer("/arguments/x-queue-type")
            .and_then(Value::as_str)
            .unwrap_or("classic");
        items.push(Item::Queue {
            name: s(q, "name"),
            durable: q.get("durable").and_then(Value::as_bool).unwrap_or(false),
            queue_type: queue_type.into(),
        });
    }
    for b in list("bindings").iter().filter(|v| in_vhost(v)) {
        items.push(Item::Binding {
            source: s(b, "source"),
            destination: s(b, "destination"),
            destination_type: s(b, "destination_type"),
            routing_key: s(b, "routing_key"),
        });
    }
    for p in list("policies").iter().filter(|v| in_vhost(v)) {
        items.push(Item::Policy {
            name: s(p, "name"),
            pattern: s(p, "pattern"),
            apply_to: s(p, "apply-to"),
            definition: p
                .get("definition")
                .cloned()
                .unwrap_or(Value::Null)
                .to_string(),
            priority: p.get("priority").and_then(Value::as_i64).unwrap_or(0),
        });
    }
    items.into_iter().map(|i| (i.key(), i)).collect()
}

/// Reads the live state of vhost `/`: the broker's definitions, so that it compares item for
/// item with what [`desired`] makes.
pub async fn live_state(client: &AdminClient) -> Result<State, ApiError> {
    let text = client
        .export_cluster_wide_definitions_as_string()
        .await
        .map_err(|e| ApiError::new("reading definitions", e))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| ApiError::new("reading definitions", e))?;
    Ok(from_definitions(&value))
}

/// A definitions document holding `items` (and vhost `/`), for import or export.
pub fn to_definitions<'a>(items: impl IntoIterator<Item = &'a Item>) -> Value {
    let mut doc = serde_json::Map::new();
    for section in [
        "users",
        "vhosts",
        "permissions",
        "exchanges",
        "queues",
        "bindings",
        "policies",
    ] {
        doc.insert(section.into(), Value::Array(Vec::new()));
    }
    doc["vhosts"] = json!([{"name": "/"}]);
    for item in items {
        let (section, entry) = item.definition();
        doc[section]
            .as_array_mut()
            .expect("sections are arrays")
            .push(entry);
    }
    Value::Object(doc)
}
