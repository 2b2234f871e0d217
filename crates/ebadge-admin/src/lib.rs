//! eBADGE bus operator tooling: PKI, the local broker supervisor, the registry, provisioning,
//! audit and revocation.

pub mod broker;
pub mod pki;
