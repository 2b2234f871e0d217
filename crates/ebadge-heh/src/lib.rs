//! The HEH agent (`ebadge-heh`): connects an HEH's device to the eBADGE bus. It links the client
//! library and nothing of the operator's or the simulators' side.
//!
//! - [`config`]: the one TOML file (bus profile, names, outbox, device, failsafe);
//! - [`device`]: the [`Device`](device::Device) trait, what the agent drives;
//! - [`agent`]: passes messages between the bus and a device, and keeps activations failsafe;
//! - [`failsafe`]: the failsafe's rules, without I/O;
//! - [`command`]: the device as an external program speaking JSON lines;
//! - [`store`]: what the failsafe remembers across restarts, beside the outbox.

pub mod agent;
pub mod command;
pub mod config;
pub mod device;
pub mod failsafe;
pub mod store;
