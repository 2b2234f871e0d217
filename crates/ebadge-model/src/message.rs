//! [`Message`]: one enum over the 33 message types plus extension types, tagged by `msg`, with the
//! strict decoder ([`Message::decode`]) and the encoder ([`Message::encode`]).

use std::fmt;

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::field::{
    FieldError, FieldPath, ObjectReader, Segment, check_case_collisions, json_type,
};
use crate::heh::*;
use crate::market::*;
use crate::names::{HehId, Id, is_extension_name, is_valid_name};
use crate::strict_json::StrictValue;

/// The two levels of D3.1.3: between HEHs and their controlling entity (section 5), and between
/// market actors (section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// HEH ↔ HEH operator or VPP.
    Heh,
    /// BSP ↔ TSO ↔ super-TSO.
    Market,
}

/// Why a message is not a valid eBADGE message: the message type (when known), the field, and the
/// reason.
///
/// ```
/// use ebadge_model::Message;
/// let err = Message::decode(r#"{"msg":"load_price","from":"2013-07-27T23:10:00","to":"2013-07-28T00:30:00Z","price":0.1}"#)
///     .unwrap_err();
/// assert_eq!(err.msg_type.as_deref(), Some("load_price"));
/// assert_eq!(err.field().as_deref(), Some("from"));
/// assert!(err.to_string().contains("no offset"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidMessage {
    /// The message type, when the message got far enough to tell.
    pub msg_type: Option<String>,
    /// The field the problem is in; empty for the message as a whole.
    pub path: FieldPath,
    /// What is wrong.
    pub reason: String,
}

impl InvalidMessage {
    fn new(msg_type: Option<&str>, error: FieldError) -> Self {
        Self {
            msg_type: msg_type.map(str::to_owned),
            path: error.path,
            reason: error.reason,
        }
    }

    /// The field path as text (`product.start`), or `None` for the message as a whole.
    pub fn field(&self) -> Option<String> {
        (!self.path.is_root()).then(|| self.path.to_string())
    }
}

impl fmt::Display for InvalidMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.msg_type {
            write!(f, "{t}: ")?;
        }
        if !self.path.is_root() {
            write!(f, "field {}: ", self.path)?;
        }
        f.write_str(&self.reason)
    }
}

/// A message of a type outside the core model: `msg` starts with `ext_` (D3.1.3 4.2.5). Its
/// fields are kept as they came.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtensionMessage {
    /// The extension type, e.g. `ext_si_xlab_led_signal`.
    pub msg: String,
    /// Every field but `msg`.
    pub fields: Map<String, Value>,
}

impl ExtensionMessage {
    /// Checks the type name and the field names.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !is_extension_name(&self.msg) {
            return Err(FieldError::at(
                "msg",
                format!(
                    "{:?} is not an extension type (ext_ + [A-Za-z0-9_]*)",
                    self.msg
                ),
            ));
        }
        for name in self.fields.keys() {
            if name == "msg" || !is_valid_name(name) {
                return Err(FieldError::at(
                    name,
                    "not a valid field name: names match [A-Za-z][A-Za-z0-9_]*",
                ));
            }
        }
        check_case_collisions(self.fields.keys().map(String::as_str))
    }
}

macro_rules! messages {
    ($( $level:ident $variant:ident $text:literal ),+ $(,)?) => {
        /// The 33 message types of D3.1.3.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum MessageType {
            $(
                #[doc = concat!("`", $text, "`")]
                $variant,
            )+
        }

        impl MessageType {
            /// All 33, in the order of D3.1.3.
            pub const ALL: &'static [MessageType] = &[ $( MessageType::$variant ),+ ];

            /// The name used in the `msg` field.
            pub fn as_str(self) -> &'static str {
                match self { $( MessageType::$variant => $text, )+ }
            }

            /// The type with this `msg` name.
            ///
            /// ```
            /// use ebadge_model::MessageType;
            /// assert_eq!(MessageType::from_name("report"), Some(MessageType::Report));
            /// assert_eq!(MessageType::from_name("Report"), None);
            /// ```
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $( $text => Some(MessageType::$variant), )+ _ => None }
            }

            /// HEH level or market level.
            pub fn level(self) -> Level {
                match self { $( MessageType::$variant => Level::$level, )+ }
            }

            /// The JSON names of the type's core fields (without `msg`), in the spec's order.
            pub fn fields(self) -> &'static [&'static str] {
                match self { $( MessageType::$variant => $variant::FIELDS, )+ }
            }

            pub(crate) fn schema_parts(self) -> (Map<String, Value>, Vec<&'static str>) {
                match self { $( MessageType::$variant => $variant::schema_parts(), )+ }
            }
        }

        /// One eBADGE message.
        ///
        /// ```
        /// use ebadge_model::Message;
        /// let text = r#"{"msg":"set_smart_mode","mode":"passive","reset":false}"#;
        /// let message = Message::decode(text).unwrap();
        /// assert_eq!(message.type_name(), "set_smart_mode");
        /// assert_eq!(message.encode().unwrap(), text);
        /// ```
        #[derive(Debug, Clone, PartialEq)]
        pub enum Message {
            $(
                #[doc = concat!("`", $text, "`")]
                $variant($variant),
            )+
            /// A message type starting with `ext_`.
            Extension(ExtensionMessage),
        }

        impl Message {
            /// The core type, or `None` for an extension message.
            pub fn message_type(&self) -> Option<MessageType> {
                match self {
                    $( Message::$variant(_) => Some(MessageType::$variant), )+
                    Message::Extension(_) => None,
                }
            }

            /// The `msg` name (of a core or extension type).
            pub fn type_name(&self) -> &str {
                match self {
                    $( Message::$variant(_) => $text, )+
                    Message::Extension(m) => &m.msg,
                }
            }

            /// Checks a message built in Rust against every rule the decoder applies.
            pub fn validate(&self) -> Result<(), InvalidMessage> {
                let result = match self {
                    $( Message::$variant(m) => m.validate(), )+
                    Message::Extension(m) => m.validate(),
                };
                result.map_err(|e| InvalidMessage::new(Some(self.type_name()), e))
            }

            /// The `ext_` fields of a core message (an extension message has only its own fields).
            pub fn extensions(&self) -> Option<&crate::field::Extensions> {
                match self {
                    $( Message::$variant(m) => Some(&m.ext), )+
                    Message::Extension(_) => None,
                }
            }

            fn read_body(t: MessageType, reader: ObjectReader) -> Result<Self, FieldError> {
                match t { $( MessageType::$variant => $variant::read(reader).map(Message::$variant), )+ }
            }

            fn write_body<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
                match self {
                    $( Message::$variant(m) => m.write_fields(map), )+
                    Message::Extension(m) => {
                        for (k, v) in &m.fields {
                            map.serialize_entry(k, v)?;
                        }
                        Ok(())
                    }
                }
            }
        }

        $(
            impl From<$variant> for Message {
                fn from(value: $variant) -> Self {
                    Message::$variant(value)
                }
            }
        )+
    };
}

crate::for_each_message_type!(messages);

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Message {
    /// Decodes and checks one message from JSON text.
    ///
    /// Strict: see the crate documentation for everything that is refused. The error names the
    /// message type and the field.
    pub fn decode(text: &str) -> Result<Self, InvalidMessage> {
        Self::decode_slice(text.as_bytes())
    }

    /// Decodes and checks one message from JSON bytes (an AMQP body); invalid UTF-8 is refused.
    pub fn decode_slice(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let json_error = |path: FieldPath, error: &serde_json::Error| InvalidMessage {
            msg_type: sniff_type(bytes),
            path,
            reason: format!("not valid JSON: {error}"),
        };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let StrictValue(value) = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| json_error(convert_path(e.path()), e.inner()))?;
        de.end().map_err(|e| json_error(FieldPath::root(), &e))?;
        Self::decode_value(value)
    }

    /// Decodes and checks a message already parsed into a JSON value. Unlike the text decoders it
    /// cannot see duplicate keys, which `serde_json` has already merged.
    pub fn decode_value(value: Value) -> Result<Self, InvalidMessage> {
        let Value::Object(mut map) = value else {
            let reason = format!("a message is a JSON object, found {}", json_type(&value));
            return Err(InvalidMessage::new(None, FieldError::here(reason)));
        };
        let msg = match map.remove("msg") {
            Some(Value::String(s)) => s,
            Some(other) => {
                let reason = format!(
                    "expected the message type as a string, found {}",
                    json_type(&other)
                );
                return Err(InvalidMessage::new(None, FieldError::at("msg", reason)));
            }
            None => {
                return Err(InvalidMessage::new(
                    None,
                    FieldError::at("msg", "missing: every message names its type in \"msg\""),
                ));
            }
        };
        if let Some(t) = MessageType::from_name(&msg) {
            crate::errata::apply(&msg, &mut map);
            return Self::read_body(t, ObjectReader::from_map(map))
                .map_err(|e| InvalidMessage::new(Some(&msg), e));
        }
        if is_extension_name(&msg) {
            let ext = ExtensionMessage { msg, fields: map };
            ext.validate()
                .map_err(|e| InvalidMessage::new(Some(&ext.msg), e))?;
            return Ok(Message::Extension(ext));
        }
        let reason = if is_valid_name(&msg) {
            format!("unknown message type {msg:?} (extension types start with \"ext_\")")
        } else {
            format!("{msg:?} is not a valid message type: names match [A-Za-z][A-Za-z0-9_]*")
        };
        Err(InvalidMessage::new(None, FieldError::at("msg", reason)))
    }

    /// Checks the message, then writes it as compact JSON.
    pub fn encode(&self) -> Result<String, InvalidMessage> {
        self.validate()?;
        Ok(self.to_json())
    }

    /// Writes the message as compact JSON without checking it first. For messages that were
    /// decoded or validated already; a NaN would be written as `null`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a message always serializes")
    }

    /// Like [`Message::to_json`], as bytes (an AMQP body).
    pub fn to_json_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a message always serializes")
    }

    /// The message as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a message always serializes")
    }

    /// The HEH the message is about, when it carries a non-null `heh_id` (it becomes the second
    /// word of the routing key).
    pub fn heh_id(&self) -> Option<&HehId> {
        match self {
            Message::GetReport(m) => m.heh_id.as_ref(),
            Message::GetPeriodicReport(m) => m.heh_id.as_ref(),
            Message::Report(m) => m.heh_id.as_ref(),
            Message::Activate(m) => m.heh_id.as_ref(),
            Message::GetActivationCapacity(m) => m.heh_id.as_ref(),
            Message::ActivationCapacity(m) => m.heh_id.as_ref(),
            Message::ContingencyActivate(m) => m.heh_id.as_ref(),
            Message::ContingencyEnd(m) => m.heh_id.as_ref(),
            _ => None,
        }
    }

    /// The `msg_id` of a market message that needs a `response` (D3.1.3 6.1.2); `None` for every
    /// other message, including `response` itself.
    pub fn msg_id(&self) -> Option<&Id> {
        match self {
            Message::BalancingReserveBid(m) => Some(&m.msg_id),
            Message::BidAccepted(m) => Some(&m.msg_id),
            Message::BalancingEnergyBid(m) => Some(&m.msg_id),
            Message::ActivateBid(m) => Some(&m.msg_id),
            Message::RequestBalancing(m) => Some(&m.msg_id),
            Message::BalancingUnachievable(m) => Some(&m.msg_id),
            _ => None,
        }
    }

    /// True when the receiver must answer with a `response`.
    pub fn requires_response(&self) -> bool {
        self.msg_id().is_some()
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("msg", self.type_name())?;
        self.write_body(&mut map)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Message {
    /// Deserializes with the same checks as [`Message::decode`] (duplicate keys are caught when the
    /// deserializer is `serde_json`'s).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let StrictValue(value) = StrictValue::deserialize(deserializer)?;
        Message::decode_value(value).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Message {
    type Err = InvalidMessage;
    fn from_str(s: &str) -> Result<Self, InvalidMessage> {
        Message::decode(s)
    }
}

fn convert_path(path: &serde_path_to_error::Path) -> FieldPath {
    let segments = path.iter().filter_map(|segment| match segment {
        serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
        serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
        _ => None,
    });
    FieldPath::from_segments(segments.collect())
}

/// Finds `"msg": "<name>"` in text that did not parse, so that even a JSON error can say which
/// message type it was in.
fn sniff_type(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.find("\"msg\"")? + 5;
    let rest = text[start..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let name = &rest[..rest.find('"')?];
    (is_valid_name(name)).then(|| name.to_owned())
}
