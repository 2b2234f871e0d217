//! eBADGE bus client library: a [`Client`] that sends and receives the typed messages of
//! D3.1.3 over the bus of D3.2.3, with a reliability layer the caller does not see (reconnects,
//! publisher confirms, an outbox, dedupe, quarantine of invalid input).
//!
//! What a VPP or HEH author needs is at the crate root: [`Client`] with its [`ClientConfig`]
//! (one [`Client::connect`]; waiting for the broker is [`ClientConfig::first_connection`]),
//! what it sends and receives ([`Incoming`], [`Inbox`], a [`Handler`] for
//! [`Client::serve`]), its outcomes and errors, the connection [`Profile`] and the data model
//! ([`model`], [`Time`]). Four modules hold the rest: [`conventions`] (the bus's names, D3.2.3
//! 5.3), [`metrics`] (Prometheus), [`tap`] (a live copy of an entity's incoming stream) and
//! [`amqp`] (a raw amqprs connection as an entity).
//!
//! ```no_run
//! use ebadge_bus::model::Message;
//! use ebadge_bus::{Client, ClientConfig, EntityName, Profile};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let profile = Profile::load(&Profile::locate(None))?;
//! let vpp = Client::connect(ClientConfig::new(profile, EntityName::new("vpp")?)).await?;
//! let heh = EntityName::new("heh-b827ebea02c1")?;
//! let ask = Message::decode(r#"{"msg":"get_capabilities"}"#)?;
//! vpp.send_confirmed(&heh, &ask).await?;
//! let mut inbox = vpp.inbox().expect("a new client has its inbox");
//! if let Some(incoming) = inbox.next().await {
//!     println!("{} sent {}", incoming.from, incoming.message.to_json());
//!     incoming.ack();
//! }
//! # Ok(()) }
//! ```

pub mod amqp;
mod backoff;
mod client;
mod client_state;
mod config;
mod consumer;
pub mod conventions;
mod counters;
mod dedupe;
mod events;
mod handler;
mod held;
mod incoming;
pub mod metrics;
mod observed;
/// The outbox: crate-private; public only with the `internals` feature, for its benchmark
/// (`benches/outbox.rs`).
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod outbox;
#[cfg(not(feature = "internals"))]
mod outbox;
mod profile;
mod publisher;
mod reception;
mod session;
mod settlement;
pub mod tap;
mod verdict;

pub use amqp::ConnectError;
pub use client::{ActivationOutcome, Client, Closed, RequestError, SendError};
pub use config::{ClientConfig, FirstConnection};
pub use conventions::EntityName;
pub use counters::CounterSnapshot;
pub use handler::{Handled, Handler};
pub use incoming::{Inbox, Incoming};
pub use outbox::{OutboxSync, Undelivered};
pub use profile::{Profile, ProfileError};

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
