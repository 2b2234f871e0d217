//! The benchmarks of `ebadge bench`: the three performance figures of D3.2.3 2.1 (ingest at a
//! VPP, a burst of activations answered by an HEH fleet, the footprint of one HEH), each beside
//! its ceiling or its peer.
//!
//! - [`figures`]: the three figures, one call each, on a broker made ready by [`prepare`]: what
//!   `ebadge bench ingest|activations|heh` runs and prints;
//! - [`ingest`], [`burst`]: the drivers of the first two through our client (publishers and the
//!   consuming VPP; our VPP, or a VPP command, against a connected fleet);
//! - [`ceiling`]: the same traffic through raw amqprs, without our layer: what ours is compared
//!   with;
//! - [`footprint`]: one HEH (our library, the agent, pika or any command) measured in a process
//!   of its own;
//! - [`children`]: the processes a benchmark starts (this program again) and their line
//!   protocol;
//! - [`measure`]: CPU, memory and latency figures, the wait for a quiet broker, and a measured
//!   client's metrics.
//!
//! This module holds what they all share: the benchmark's entities and registry, its broker, its
//! errors and its stamped report.

pub mod burst;
pub mod ceiling;
pub mod children;
pub mod figures;
pub mod footprint;
pub mod ingest;
pub mod measure;

use crate::local_bus::LocalBus;
use ebadge_admin::registry::{Builder, QueueType};
use ebadge_bus::EntityName;
use ebadge_model::Message;

/// The benchmark VPP.
pub const BENCH_VPP: &str = "bench-vpp";

/// Why a benchmark could not run, saying what failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The fleet, or one of the benchmark's processes, failed.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    /// A participant could not connect.
    #[error("{who} could not connect: {source}")]
    Connect {
        /// The entity.
        who: String,
        /// Why.
        source: ebadge_bus::ConnectError,
    },
    /// The broker refused a step of a raw (amqprs) participant.
    #[error("{what}: {source}")]
    Broker {
        /// What was being done.
        what: &'static str,
        /// The broker's answer.
        source: amqprs::error::Error,
    },
    /// Our client refused a message.
    #[error("sending: {0}")]
    Send(#[from] ebadge_bus::SendError),
    /// The local broker or the benchmark registry could not be made ready.
    #[error(transparent)]
    Local(#[from] ebadge_admin::local::LocalError),
    /// The registry of the benchmark is invalid (a bug).
    #[error(transparent)]
    Registry(#[from] ebadge_admin::registry::RegistryError),
    /// The management API failed.
    #[error(transparent)]
    Api(#[from] ebadge_admin::mgmt::ApiError),
}

fn broker(what: &'static str) -> impl FnOnce(amqprs::error::Error) -> BenchError {
    move |source| BenchError::Broker { what, source }
}

fn connect_error(who: &str) -> impl FnOnce(ebadge_bus::ConnectError) -> BenchError + '_ {
    move |source| BenchError::Connect {
        who: who.to_owned(),
        source,
    }
}

/// The benchmark VPP's name.
pub fn bench_vpp() -> EntityName {
    EntityName::new(BENCH_VPP).expect("BENCH_VPP is a valid name")
}

/// Benchmark HEH `i` (`heh-0b0000xxxxxx`).
pub fn bench_heh(i: usize) -> EntityName {
    EntityName::new(&format!("heh-0b0000{i:06x}")).expect("bench HEH names follow the rule")
}

/// The registry of the benchmarks: one VPP controlling `hehs` HEHs.
pub fn registry(hehs: usize, queue_type: QueueType) -> Builder {
    (0..hehs).fold(
        Builder::new()
            .comment("Written by `ebadge bench`.")
            .queue_type(queue_type)
            .entity(BENCH_VPP, None),
        |registry, i| registry.heh(bench_heh(i).as_str(), BENCH_VPP),
    )
}

/// Brings the local broker in `dir` up and adds the benchmark registry (`hehs` HEHs and their
/// VPP, inboxes of `queue_type`) with certificates, as the demo prepares its own
/// ([`crate::local_bus::prepare`]); `progress` gets (done, total) broker items while
/// provisioning runs.
pub async fn prepare(
    dir: &std::path::Path,
    hehs: usize,
    queue_type: QueueType,
    progress: impl FnMut(usize, usize),
) -> Result<LocalBus, BenchError> {
    let registry = registry(hehs, queue_type).build()?;
    Ok(crate::local_bus::prepare(dir, &registry, progress).await?)
}

/// A report body carrying its send time (ns since the epoch) in an extension field.
pub fn stamped_report(sent_ns: u64) -> Message {
    Message::decode(&format!(
        r#"{{"msg":"report","from":"2013-07-21T10:00:00Z","to":"2013-07-21T10:01:00Z","resolution":60,"values":{{"total.p":[1.73]}},"heh_id":null,"ext_bench_sent_ns":{sent_ns}}}"#
    ))
    .expect("the benchmark report is valid")
}
