//! Proptest strategies that generate valid messages of every type (feature `proptest`), for the
//! round-trip tests here and for tests of the crates built on this one.
//!
//! Each type's strategy is generated with its decoder from the same field table; fields get
//! arbitrary values of their type, then the type's [`Rules::repair`](crate::rules::Rules::repair)
//! bends them into shape where a rule spans fields (`to` after `from`, report lengths).

use proptest::collection::btree_map;
use proptest::prelude::*;

pub use crate::arb::{Arb, extensions, json_value};
use crate::message::{ExtensionMessage, Message, MessageType};

/// An extension message: `ext_` type, a few fields with valid names.
pub fn extension_message() -> BoxedStrategy<ExtensionMessage> {
    (
        "ext_[a-z][a-z0-9_]{0,12}",
        btree_map("[a-z][a-z0-9_]{0,8}", json_value(), 0..4),
    )
        .prop_filter("\"msg\" is the type, not a field", |(_, fields)| {
            !fields.contains_key("msg")
        })
        .prop_map(|(msg, fields)| ExtensionMessage {
            msg,
            fields: fields.into_iter().collect(),
        })
        .boxed()
}

/// Valid messages of one core type.
pub fn message_of(t: MessageType) -> BoxedStrategy<Message> {
    arb_message_of(t)
}

/// Declares `arb_message_of`, one arm per message type, from the model's list of types.
macro_rules! arb_message_of {
    ($( $level:ident $variant:ident $text:literal ),+ $(,)?) => {
        fn arb_message_of(t: MessageType) -> BoxedStrategy<Message> {
            match t {
                $( MessageType::$variant => <crate::$variant as Arb>::arb().prop_map(Message::$variant).boxed(), )+
            }
        }
    };
}

crate::for_each_message_type!(arb_message_of);

/// Valid messages of any type, extensions included.
pub fn any_message() -> BoxedStrategy<Message> {
    let mut choices: Vec<BoxedStrategy<Message>> =
        MessageType::ALL.iter().map(|&t| message_of(t)).collect();
    choices.push(extension_message().prop_map(Message::Extension).boxed());
    proptest::strategy::Union::new(choices).boxed()
}
