//! eBADGE bus client library: the conventions of D3.2.3 section 5.3 in one module, connection
//! profiles, and a [`Client`] that sends and receives typed messages with a reliability layer the
//! caller does not see (reconnects, publisher confirms, outbox, dedupe, quarantine).

mod backoff;
pub mod client;
mod client_state;
mod config;
pub mod connect;
mod consumer;
pub mod conventions;
pub mod counters;
pub mod dedupe;
mod events;
pub mod handler;
mod held;
mod incoming;
pub mod metrics;
mod observed;
pub mod outbox;
pub mod profile;
mod publisher;
mod reception;
mod session;
mod settlement;
pub mod tap;
mod verdict;

pub use client::{
    ActivationOutcome, Client, ClientConfig, Closed, Inbox, Incoming, RequestError, SendError,
};
pub use connect::{ConnectError, connect};
pub use conventions::EntityName;
pub use counters::CounterSnapshot;
pub use handler::{Handled, Handler};
pub use outbox::{OutboxSync, Undelivered};
pub use profile::Profile;

/// The data model (D3.1.3): every message type, [`model::Message`], validation. Re-exported so an
/// HEH or VPP needs one dependency.
///
/// ```
/// use ebadge_bus::model::Message;
/// let m = Message::decode(r#"{"msg":"get_capabilities"}"#).unwrap();
/// assert_eq!(m.type_name(), "get_capabilities");
/// ```
pub use ebadge_model as model;
/// A time with its offset, as every message carries it.
pub use ebadge_model::Time;
/// The `time` crate that [`Time`] converts from and to (`OffsetDateTime`, `Duration`).
pub use time;
