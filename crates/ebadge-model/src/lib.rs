//! The eBADGE data model (D3.1.3): every message type as a Rust type, a strict JSON decoder that
//! explains itself, an encoder that writes what the spec's examples write, and JSON Schema.
//!
//! ```
//! use ebadge_model::{Message, MessageType};
//!
//! let text = r#"{"msg":"load_price","from":"2013-07-27T23:10:00.000Z","to":"2013-07-28T00:30:00.000Z","price":0.138}"#;
//! let message = Message::decode(text)?;
//! assert_eq!(message.message_type(), Some(MessageType::LoadPrice));
//! if let Message::LoadPrice(price) = &message {
//!     assert_eq!(price.price, 0.138);
//! }
//! assert_eq!(message.encode()?, text);
//! # Ok::<(), ebadge_model::InvalidMessage>(())
//! ```
//!
//! # What the decoder refuses
//! Each with an [`InvalidMessage`] naming the message type and the field:
//! text that is not JSON or not UTF-8; a key twice in one object; a time without an offset; a
//! missing required field; a wrong JSON type; an unknown field that does not start with `ext_`; an
//! unknown message type that does not start with `ext_`; names that break `[A-Za-z][A-Za-z0-9_]*`;
//! two names that differ only in case; numbers out of `f64` range; and what the spec rules out:
//! `to` before `from`, a resolution of 0 or less, an `interval` neither -1 nor above 0, report arrays
//! of the wrong length, an unknown `mode` or device class, an `heh_id` that could not be a
//! routing-key word, negative capacities or bid quantities, a `response_code` outside 100-599.
//!
//! # What it accepts
//! `ext_` fields on any object (kept and re-encoded untouched), `ext_` message types (kept as
//! [`ExtensionMessage`]), `null` or absence for every optional field, integers written as `60.0`,
//! and the two tolerated errata of the spec's examples (see `docs/errata.md`).
//!
//! # Null and absent
//! The decoder reads an optional field that is absent and one that is `null` alike (`None`). The
//! encoder writes `None` as `null` for the fields whose table gives null a meaning (`heh_id`,
//! `device`, `first_from`, ...) and leaves out the fields the spec calls optional (`device_sn`,
//! `range`, `divisible`, `response_subcode`, `request_id`, and `heh_id` on the contingency messages).
//! With this rule the spec's 33 examples re-encode to the same JSON value.

#[macro_use]
mod macros;

mod builders;
pub mod describe;
mod errata;
pub mod field;
pub mod heh;
pub mod market;
mod message;
pub mod names;
pub mod python;
pub mod rules;
pub mod schema;
mod strict_json;
mod syntax;
mod time;

#[cfg(feature = "proptest")]
mod arb;
#[cfg(feature = "proptest")]
pub mod arbitrary;

pub use field::{Extensions, FieldError, FieldPath};
pub use heh::*;
pub use market::*;
pub use message::{ExtensionMessage, InvalidMessage, Level, Message, MessageType};
pub use names::{HehId, Id, Name, SignalName};
pub use time::{Time, TimeError};

/// The README's Rust example, compiled and run by `cargo test --doc` so it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExample;
