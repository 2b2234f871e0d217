//! The hidden `bench` subcommands: the benchmarks' other processes (the child side of the line
//! protocol in `ebadge_sim::bench::children`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use ebadge_bus::Profile;
use ebadge_sim::bench::{burst, children, footprint};

use crate::output::{self, Status};

/// The roles a benchmark starts in processes of their own.
#[derive(Subcommand)]
pub enum ChildRole {
    /// (Used by `heh`: the HEH's side, in its own process.)
    #[command(hide = true)]
    HehChild {
        /// Seconds of sending.
        #[arg(long)]
        seconds: u64,
        /// Reports per second.
        #[arg(long)]
        rate: u64,
        /// Connection profile (pointing at the counting proxy).
        #[arg(long)]
        profile: PathBuf,
    },
    /// (Used by `activations --processes`: part of the fleet, in its own process. Prints
    /// "ready KIB_PER_HEH" once connected, and stops when its standard input closes.)
    #[command(hide = true)]
    FleetChild {
        /// Index of the first HEH.
        #[arg(long)]
        first: usize,
        /// How many.
        #[arg(long)]
        count: usize,
        /// Connection profile.
        #[arg(long)]
        profile: PathBuf,
        /// Connect the HEHs here, round robin, instead of the profile's address (repeatable:
        /// a local cluster's nodes).
        #[arg(long = "url")]
        urls: Vec<String>,
        /// Raw amqprs HEHs (the ceiling's) instead of our client's.
        #[arg(long)]
        raw: bool,
    },
    /// (Used by `heh --agent`: the agent's device, printing stamped reports.)
    #[command(hide = true)]
    Device {
        /// Reports per second.
        #[arg(long)]
        rate: u64,
        /// Reports in all, then it waits to be stopped.
        #[arg(long)]
        count: u64,
    },
    /// (A VPP for `activations --vpp-command`: our Rust VPP in a process of its own, told what
    /// to do by the environment; prints its figures as JSON.)
    #[command(hide = true)]
    VppChild,
    /// (Used by `ingest`: the VPP's side, in its own process.)
    #[command(hide = true)]
    Consume {
        /// Messages to wait for.
        #[arg(long)]
        count: u64,
        /// Raw amqprs instead of our client.
        #[arg(long)]
        raw: bool,
        /// Connection profile.
        #[arg(long)]
        profile: PathBuf,
    },
}

/// Runs a child role (`heh-child` runs on its own runtime: [`heh_child`]).
pub async fn run(role: ChildRole) -> Result<()> {
    match role {
        ChildRole::HehChild { .. } => unreachable!("run on its own small runtime by main"),
        ChildRole::Device { rate, count } => footprint::device(rate, count).await,
        ChildRole::VppChild => output::json(&burst::vpp_child().await?)?,
        ChildRole::Consume {
            count,
            raw,
            profile,
        } => {
            let report = children::consumer_child(&Profile::load(&profile)?, count, raw).await?;
            output::json(&report)?;
        }
        ChildRole::FleetChild {
            first,
            count,
            profile,
            urls,
            raw,
        } => children::fleet_child(&Profile::load(&profile)?, first, count, &urls, raw).await?,
    }
    Ok(())
}

/// The HEH side of `bench heh`, on a current-thread runtime as small firmware would run it.
pub fn heh_child(seconds: u64, rate: u64, profile: &std::path::Path) -> Result<Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let profile = Profile::load(profile)?;
    let report = runtime.block_on(footprint::library(&profile, seconds, rate))?;
    output::json(&report)?;
    Ok(Status::Ok)
}
