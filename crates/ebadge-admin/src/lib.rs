//! eBADGE bus operator tooling: PKI, the local broker supervisor, the registry, provisioning,
//! audit and revocation; [`local`] puts a local broker, a registry and certificates together.

pub mod audit;
pub mod broker;
pub mod crl;
mod files;
pub mod haproxy;
pub mod local;
pub mod mgmt;
pub mod migrate;
pub mod pki;
pub mod profile;
pub mod provision;
pub mod registry;
pub mod revoke;
pub mod state;
