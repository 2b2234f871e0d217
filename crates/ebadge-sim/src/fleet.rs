//! A fleet of simulated HEHs in one process: each with its own TLS connection and certificate.

use crate::heh::{HehSpec, SimHeh};
use ebadge_bus::{Client, ClientConfig, ConnectError, FirstConnection, Profile};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// How long one HEH of a fleet keeps trying to connect before the fleet gives up.
pub const CONNECT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// File descriptors a process needs beyond one per connection (runtime, files, logs).
pub const FD_RESERVE: u64 = 200;

/// A fleet that cannot start, saying why and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// More connections than this process may open.
    #[error(
        "a fleet of {count} HEHs needs {needed} open files, but this process may open at most {limit} \
         (hard limit `ulimit -Hn`; on this machine it cannot be raised). Split the fleet over several \
         processes: {processes} fleets of {per_process}"
    )]
    TooManyFiles {
        /// HEHs asked for.
        count: usize,
        /// Files needed.
        needed: u64,
        /// The limit.
        limit: u64,
        /// Suggested fleet size per process.
        per_process: u64,
        /// Suggested number of processes.
        processes: u64,
    },
    /// A simulator process failed.
    #[error("{0}")]
    Process(String),
    /// An HEH could not connect.
    #[error("HEH {name}: {source}")]
    Connect {
        /// The HEH.
        name: String,
        /// Why.
        source: ConnectError,
    },
}

/// The soft and hard open-file limits of this process (from /proc/self/limits).
pub fn open_file_limits() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut numbers = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    Some((numbers.next()?, numbers.next()?))
}

/// Checks that `count` connections fit under the hard limit (the soft limit is raised by the
/// binary at start).
pub fn check_capacity(count: usize) -> Result<(), FleetError> {
    let needed = count as u64 + FD_RESERVE;
    if let Some((_, hard)) = open_file_limits()
        && needed > hard
    {
        let per_process = hard.saturating_sub(FD_RESERVE).max(1);
        return Err(FleetError::TooManyFiles {
            count,
            needed,
            limit: hard,
            per_process,
            processes: (count as u64).div_ceil(per_process),
        });
    }
    Ok(())
}

/// Handshakes a fleet process has under way with one node at a time.
///
/// Per node, not per process: with one gate for the process and the HEHs dealt round robin
/// over the nodes, a node that answers a little more slowly holds more of the gate's places
/// (each of its handshakes takes longer), so more handshakes wait on it, so it answers more
/// slowly still, until its handshakes pass the client's 15-s timeout and are made again. Seen
/// at 20,000 HEHs over three nodes: one node at 14–16 s a handshake, the others at 0.2–5 s, and
/// the fleet failed. Eight per node and process keeps each node's queue of handshakes short
/// (four processes: 32 a node) and the node busy; a short queue also lets haproxy's health
/// check through in time.
pub const HANDSHAKES_PER_NODE: usize = 8;

/// One gate per profile (node), [`HANDSHAKES_PER_NODE`] places each for a benchmark fleet: HEH
/// `i` connects with profile `i % n` through gate `i % n`.
#[derive(Clone)]
pub struct NodeGates(Vec<Arc<Semaphore>>);

impl NodeGates {
    /// Gates for `nodes` profiles (at least one), `per_node` places each.
    pub fn new(nodes: usize, per_node: usize) -> Self {
        Self(
            (0..nodes.max(1))
                .map(|_| Arc::new(Semaphore::new(per_node.max(1))))
                .collect(),
        )
    }

    /// The gate of HEH `index`.
    pub fn of(&self, index: usize) -> Arc<Semaphore> {
        self.0[index % self.0.len()].clone()
    }
}

/// A running fleet.
pub struct Fleet {
    /// The HEHs' clients, in the order of their specs.
    pub clients: Vec<Client>,
}

impl Fleet {
    /// Connects every HEH (at most `parallel` handshakes at once with each profile's node),
    /// starts its handler and sends its announcements. HEH `i` connects with
    /// `profiles[i % profiles.len()]`: one profile, or one per node of a local cluster to spread
    /// the fleet evenly over them. `progress` is called with the number connected so far.
    pub async fn start(
        profiles: &[Profile],
        specs: Vec<HehSpec>,
        parallel: usize,
        progress: impl Fn(usize) + Send + Sync + 'static,
    ) -> Result<Fleet, FleetError> {
        check_capacity(specs.len())?;
        let gates = NodeGates::new(profiles.len(), parallel);
        let progress = Arc::new(progress);
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for (index, spec) in specs.into_iter().enumerate() {
            let (gate, profile, progress, done) = (
                gates.of(index),
                profiles[index % profiles.len()].clone(),
                progress.clone(),
                done.clone(),
            );
            tasks.spawn(async move {
                let _permit = gate.acquire().await.expect("the gate stays open");
                let mut config = ClientConfig::new(profile, spec.name.clone());
                // A small HEH needs a small buffer: the default is sized for a VPP.
                config.outbox_cap = 10_000;
                config.prefetch = 50;
                config.inbox_capacity = 100;
                // A fleet connecting at once meets a busy broker: retry like real HEHs do.
                config.first_connection = FirstConnection::WaitUpTo(CONNECT_PATIENCE);
                let client =
                    Client::connect(config)
                        .await
                        .map_err(|source| FleetError::Connect {
                            name: spec.name.to_string(),
                            source,
                        })?;
                let heh = SimHeh::new(spec);
                let _ = heh.announce(&client);
                let serving = client.clone();
                tokio::spawn(async move { heh.serve(&serving).await });
                progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
                Ok::<_, FleetError>((index, client))
            });
        }
        let mut clients = Vec::new();
        while let Some(result) = tasks.join_next().await {
            clients.push(result.expect("an HEH task does not panic")?);
        }
        clients.sort_by_key(|(i, _)| *i);
        Ok(Fleet {
            clients: clients.into_iter().map(|(_, c)| c).collect(),
        })
    }

    /// Closes every connection (after their sends are confirmed, up to `timeout`).
    pub async fn close(&self, timeout: std::time::Duration) {
        let mut tasks = tokio::task::JoinSet::new();
        for c in &self.clients {
            let c = c.clone();
            tasks.spawn(async move { c.close(timeout).await });
        }
        while tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_whose_handshakes_hang_takes_no_place_from_the_other_nodes() {
        let gates = NodeGates::new(3, 2);
        // Node 0's handshakes never end: HEHs 0 and 3 hold its places.
        let held: Vec<_> = [0, 3]
            .iter()
            .map(|i| gates.of(*i).try_acquire_owned().unwrap())
            .collect();
        assert!(gates.of(6).try_acquire_owned().is_err(), "node 0 is full");
        for heh in [1, 2, 4, 5] {
            assert!(
                gates.of(heh).try_acquire_owned().is_ok(),
                "HEH {heh} (node {}) still gets a place",
                heh % 3
            );
        }
        drop(held);
        assert!(gates.of(6).try_acquire_owned().is_ok());
    }

    #[test]
    fn a_fleet_over_the_open_file_limit_is_refused_with_the_split_to_use() {
        assert!(check_capacity(10).is_ok());
        let Some((_, hard)) = open_file_limits() else {
            // "unlimited": nothing to refuse.
            assert!(check_capacity(1_000_000).is_ok());
            return;
        };
        let count = hard as usize + 1;
        let error = check_capacity(count).unwrap_err();
        let FleetError::TooManyFiles {
            per_process,
            processes,
            limit,
            ..
        } = &error
        else {
            panic!("{error}");
        };
        assert_eq!(*limit, hard);
        assert!(per_process * processes >= count as u64, "{error}");
        assert!(
            error.to_string().contains(&format!("at most {hard}"))
                && error.to_string().contains("processes"),
            "{error}"
        );
    }
}
