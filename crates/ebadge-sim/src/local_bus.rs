//! A local bus made ready for a simulation: what the demo ([`crate::demo::prepare`]) and the
//! benchmarks ([`crate::bench::prepare`]) both run first. One function, so that each starts the
//! broker once and provisions it as the other does (a broker shared by both keeps the other's
//! entities).

use ebadge_admin::broker::{BrokerStatus, LocalBroker};
use ebadge_admin::local::{self, LocalError};
use ebadge_admin::profile::Management;
use ebadge_admin::provision::Plan;
use ebadge_admin::registry::Registry;
use ebadge_bus::Profile;
use std::path::{Path, PathBuf};

/// A local broker up, a registry's entities provisioned on it and their certificates issued.
#[derive(Debug)]
pub struct LocalBus {
    /// The profile every entity connects with.
    pub profile: Profile,
    /// Its file, for processes of their own (benchmark children, external clients).
    pub profile_path: PathBuf,
    /// The administrator's account on the management API.
    pub management: Management,
    /// What provisioning did (empty when the broker already had the registry).
    pub plan: Plan,
    /// Client certificates issued (entities that had one keep it).
    pub issued: usize,
    /// The broker once it was up: its address, its nodes.
    pub status: BrokerStatus,
    /// Whether the broker was running already (nothing was started).
    pub was_running: bool,
}

impl LocalBus {
    /// Broker items provisioning added or changed (0 when the broker already had the registry).
    pub fn provisioned(&self) -> usize {
        self.plan.add.len() + self.plan.change.len()
    }

    /// Each node's own address, on a local cluster (empty on one node): fleet processes connect
    /// straight to them, as haproxy holds fewer connections than a big fleet.
    pub fn node_urls(&self) -> Vec<String> {
        if self.status.nodes.len() > 1 {
            self.status
                .nodes
                .iter()
                .map(|n| n.amqps_url.clone())
                .collect()
        } else {
            Vec::new()
        }
    }

    /// The nodes' process ids (whose CPU a benchmark accounts to the broker).
    pub fn node_pids(&self) -> Vec<u32> {
        self.status.nodes.iter().filter_map(|n| n.pid).collect()
    }
}

/// Brings the local broker in `dir` up (if it is not running), provisions `registry` on it,
/// keeping what other registries made there, and issues the missing certificates; `progress`
/// gets (done, total) broker items while provisioning runs.
pub async fn prepare(
    dir: &Path,
    registry: &Registry,
    progress: impl FnMut(usize, usize),
) -> Result<LocalBus, LocalError> {
    let broker = LocalBroker::new(dir);
    // Asked before: `local::provision` starts the broker only when it is down, and does not say
    // which it found.
    let was_running = broker.state()?.is_some() && broker.status()?.running;
    let ready = local::provision(
        &broker,
        &Default::default(),
        registry,
        local::Others::Keep,
        progress,
    )
    .await?;
    Ok(LocalBus {
        profile: ready.profile,
        profile_path: broker.profile_path(),
        management: ready.management,
        plan: ready.plan,
        issued: ready.issued,
        status: broker.status()?,
        was_running,
    })
}
