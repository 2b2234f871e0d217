//! eBADGE bus: the conventions of D3.2.3 section 5.3 in one module, connection profiles, and
//! connecting as an entity. The typed client and its reliability layer come with issue #4.

pub mod connect;
pub mod conventions;
pub mod outbox;
pub mod profile;

pub use connect::{ConnectError, connect};
pub use conventions::EntityName;
pub use profile::Profile;
