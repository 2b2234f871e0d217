//! eBADGE bus client library: the conventions of D3.2.3 section 5.3 in one module, connection
//! profiles, and a [`Client`] that sends and receives typed messages with a reliability layer the
//! caller does not see (reconnects, publisher confirms, outbox, dedupe, quarantine).

pub mod client;
pub mod connect;
mod consumer;
pub mod conventions;
pub mod counters;
pub mod dedupe;
mod events;
pub mod handler;
mod inbound;
pub mod outbox;
pub mod profile;
mod publisher;
mod session;

pub use client::{
    ActivationOutcome, Client, ClientConfig, Inbox, Incoming, RequestError, SendError,
};
pub use connect::{ConnectError, connect};
pub use conventions::EntityName;
pub use counters::CounterSnapshot;
pub use handler::{Handled, Handler};
pub use outbox::{OutboxSync, Undelivered};
pub use profile::Profile;
