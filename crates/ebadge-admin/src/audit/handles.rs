//! Node file handles: what each node's queues reserve and its sockets use, against its limit.
//! RabbitMQ stops answering new connections on a node past it, and the management API does
//! not show the reservations, so they are counted here from the queue listing. The audit
//! reports nodes near their limit; the benchmarks check there is room before a fleet connects.

use crate::mgmt::{ApiError, RawApi};
use serde_json::Value;
use std::collections::BTreeMap;

/// One node's file handles as its queues reserve them and its sockets use them (see
/// [`node_handles`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHandles {
    /// Erlang node name.
    pub node: String,
    /// The node's limit (`fd_total`).
    pub limit: u64,
    /// Reserved by quorum queue replicas on it.
    pub quorum: u64,
    /// Reserved by its classic queues, counted as if each had taken a message.
    pub classic: u64,
    /// Sockets open.
    pub sockets: u64,
}

impl NodeHandles {
    /// Reserved and open together.
    pub fn used(&self) -> u64 {
        self.quorum + self.classic + self.sockets
    }

    /// What is left for new connections.
    pub fn free(&self) -> u64 {
        self.limit.saturating_sub(self.used())
    }
}

/// The columns of `/api/queues` that [`node_handles`] reads, and the audit's queue rules with
/// it (name, arguments, durability): asking for these alone keeps the answer small on a broker
/// of 20,000 queues, whose full listing carries every queue's statistics.
pub const QUEUE_COLUMNS: &str = "queues?columns=name,vhost,arguments,durable,type,node,members";

/// Each node's file handles, from `/api/nodes` and `/api/queues` (columns [`QUEUE_COLUMNS`]).
/// RabbitMQ 3.10 reserves file handles for every quorum queue replica (2 + cluster size where
/// it leads, 2 where it follows) and for every classic queue (version 2) that has taken a
/// message (2, kept after its consumer is gone: 2,013 reserved on a node of 1,000 HEH inboxes
/// after one activation each), and counts sockets against the same limit; once reservations
/// pass it, the node queues every new connection after the TLS handshake and never answers it
/// (seen with 5,000 quorum HEH inboxes led by one node: 25,005 reserved of 19,903; and on a
/// local cluster of 20,000 HEHs after one burst, where reconnecting HEHs hung). The management
/// API shows only the process's descriptors, not the reservations, so they are counted from
/// the queues, every classic queue as if it had taken a message (one activation to the fleet
/// does that). Nodes without a limit in `/api/nodes` (stopped ones) are left out.
pub fn node_handles(nodes: &Value, queues: &Value) -> Vec<NodeHandles> {
    // Per node: (reserved by quorum replicas, reserved by classic queues).
    let mut reserved: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for q in queues.as_array().into_iter().flatten() {
        if q["type"] == "classic" {
            if let Some(node) = q["node"].as_str() {
                reserved.entry(node).or_default().1 += 2;
            }
            continue;
        }
        if q["type"] != "quorum" {
            continue;
        }
        let members: Vec<&str> = q["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let leader = q["node"].as_str().unwrap_or("");
        for member in &members {
            let handles = if *member == leader {
                2 + members.len() as u64
            } else {
                2
            };
            reserved.entry(member).or_default().0 += handles;
        }
    }
    nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|node| {
            let name = node["name"].as_str().unwrap_or("?");
            let limit = node["fd_total"].as_u64()?;
            let (quorum, classic) = reserved.get(name).copied().unwrap_or_default();
            Some(NodeHandles {
                node: name.to_owned(),
                limit,
                quorum,
                classic,
                sockets: node["sockets_used"].as_u64().unwrap_or(0),
            })
        })
        .collect()
}

/// [`node_handles`] of a live broker.
pub async fn read_node_handles(http: &RawApi) -> Result<Vec<NodeHandles>, ApiError> {
    let nodes = http.get("nodes").await?;
    let queues = http.get(QUEUE_COLUMNS).await?;
    Ok(node_handles(&nodes, &queues))
}

/// Nodes whose file-handle reservations and sockets come near their limit ([`node_handles`]):
/// reported from 80 % of it.
pub(super) fn file_handle_reservations(nodes: &Value, queues: &Value) -> Vec<String> {
    node_handles(nodes, queues)
        .into_iter()
        .filter(|n| n.limit > 0 && n.used() * 5 > n.limit * 4)
        .map(|n| {
            let NodeHandles {
                node,
                limit,
                quorum,
                classic,
                sockets,
            } = n;
            format!(
                "node {node}: quorum queues reserve {quorum} file handles, classic queues {classic} \
                 (2 each once they have taken a message) and {sockets} sockets are open, of its limit of {limit}; \
                 past the limit it stops answering new connections: raise its open-file limit (LimitNOFILE), \
                 spread queue leaders (`rabbitmq-queues rebalance all`) or keep HEH inboxes classic (registry queue_type \"auto\")"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_reserve_file_handles_by_role_and_type() {
        let nodes = serde_json::json!([
            {"name": "a", "fd_total": 1000, "sockets_used": 10},
            {"name": "b", "fd_total": 1000, "sockets_used": 10},
        ]);
        let queues = |n: usize, leader: &str, classic_on_b: usize| {
            let q = serde_json::json!({"type": "quorum", "node": leader, "members": ["a", "b"]});
            let classic = serde_json::json!({"type": "classic", "node": "b"});
            Value::Array(
                std::iter::repeat_n(q, n)
                    .chain(std::iter::repeat_n(classic, classic_on_b))
                    .collect(),
            )
        };
        // 190 led on a: 4 each = 760, + 10 sockets = 770 of 1000 — under 80 %; b follows
        // (380) and holds 100 classic queues (200): 590.
        assert_eq!(
            file_handle_reservations(&nodes, &queues(190, "a", 100)),
            Vec::<String>::new()
        );
        let found = file_handle_reservations(&nodes, &queues(200, "a", 100));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "node a: quorum queues reserve 800 file handles, classic queues 0 (2 each once they have taken a message) and 10 sockets"
            ),
            "{found:?}"
        );
        // What is left for new connections: a has 1000 - 800 - 10; b is past its limit.
        let free: Vec<(String, u64)> = node_handles(&nodes, &queues(200, "a", 320))
            .into_iter()
            .map(|n| (n.node.clone(), n.free()))
            .collect();
        assert_eq!(free, [("a".to_owned(), 190), ("b".to_owned(), 0)]);
        // 220 classic queues more on b: 380 + 640 + 10 = 1030.
        let found = file_handle_reservations(&nodes, &queues(190, "a", 320));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .starts_with("node b: quorum queues reserve 380 file handles, classic queues 640"),
            "{found:?}"
        );
    }
}
