//! The naming rules of D3.1.3 4.2.3 and the checked string types built on them.
//!
//! Every message type and field name matches `[A-Za-z][A-Za-z0-9_]*`; extensions start with `ext_`.
//! Device IDs and signal names follow the same rule because they become keys of the `values`
//! object of a `report`. An `heh_id` becomes a word of an AMQP routing key, so it may not contain
//! the key's separator `.`, its wildcards `*` and `#`, or whitespace.

use std::fmt;

use serde::Serializer;
use serde_json::{Value, json};

use crate::field::{Field, FieldError, FieldKey, wrong_type};
pub use crate::syntax::{EXTENSION_PREFIX, NAME_PATTERN, is_extension_name, is_valid_name};

/// The longest `heh_id` accepted: with the longest message type and a dot it keeps a routing key
/// well under AMQP's 255-byte limit.
pub const MAX_HEH_ID_LEN: usize = 200;

fn name_error(what: &str, name: &str) -> FieldError {
    FieldError::here(format!(
        "{what} {name:?} is not a valid name: names match [A-Za-z][A-Za-z0-9_]*"
    ))
}

/// Declares a checked string type: private inner string, `new` that checks, `as_str`, `Display`,
/// and the [`Field`] impl.
macro_rules! checked_string {
    ($(#[$meta:meta])* $name:ident, $check:path, $schema:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it; the error says which rule it breaks.
            pub fn new(value: impl Into<String>) -> Result<Self, FieldError> {
                let value = value.into();
                $check(&value)?;
                Ok(Self(value))
            }

            /// The string itself.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = FieldError;
            fn try_from(value: &str) -> Result<Self, FieldError> {
                Self::new(value)
            }
        }

        impl Field for $name {
            fn from_json(value: Value) -> Result<Self, FieldError> {
                match value {
                    Value::String(s) => Self::new(s),
                    other => Err(wrong_type("a string", &other)),
                }
            }
            fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
            fn schema() -> Value {
                $schema
            }
        }
    };
}

fn check_name(value: &str) -> Result<(), FieldError> {
    if is_valid_name(value) {
        Ok(())
    } else {
        Err(name_error("name", value))
    }
}

fn check_heh_id(value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::here(
            "heh_id is empty (use null when the message is not about another HEH)",
        ));
    }
    if value.len() > MAX_HEH_ID_LEN {
        return Err(FieldError::here(format!(
            "heh_id is {} characters long; at most {MAX_HEH_ID_LEN}",
            value.len()
        )));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '.' | '*' | '#'))
    {
        return Err(FieldError::here(format!(
            "heh_id {value:?} contains {bad:?}: it becomes a routing-key word, so it is printable ASCII without '.', '*', '#' or spaces"
        )));
    }
    Ok(())
}

fn check_id(value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::here("an ID may not be empty"));
    }
    if value.chars().count() > 255 {
        return Err(FieldError::here(format!(
            "an ID is at most 255 characters; this one is {}",
            value.chars().count()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::here(format!(
            "ID {value:?} contains a control character"
        )));
    }
    Ok(())
}

fn check_signal_name(value: &str) -> Result<(), FieldError> {
    match value.split_once('.') {
        Some((device, signal)) if is_valid_name(device) && is_valid_name(signal) => Ok(()),
        _ => Err(FieldError::here(format!(
            "signal {value:?} is not of the form device.signal, each part matching [A-Za-z][A-Za-z0-9_]* (e.g. \"total.p\")"
        ))),
    }
}

checked_string!(
    /// A device ID or signal name: `[A-Za-z][A-Za-z0-9_]*` (e.g. `ECAR01`, `total`, `p_gen`).
    ///
    /// ```
    /// use ebadge_model::Name;
    /// assert!(Name::new("ECAR01").is_ok());
    /// assert!(Name::new("e-car").is_err());
    /// ```
    Name,
    check_name,
    json!({"type": "string", "pattern": NAME_PATTERN})
);

checked_string!(
    /// The ID of the HEH a message is about (D3.1.3 5.1): 1 to 200 printable ASCII characters
    /// other than `.`, `*` and `#`, since it becomes a routing-key word (`report.<heh_id>`).
    ///
    /// ```
    /// use ebadge_model::HehId;
    /// assert!(HehId::new("1b8d6a00-0296-11e4-9191-0800200c9a66").is_ok());
    /// assert!(HehId::new("heh.42").is_err());
    /// ```
    HehId,
    check_heh_id,
    json!({"type": "string", "pattern": "^[!-\"$-)+-\\-/-~]{1,200}$"})
);

checked_string!(
    /// An identifier chosen by a sender: activation, bid, message and request IDs. The spec's
    /// examples are UUIDs and our builders make UUIDs, but the spec does not require them, so any
    /// non-empty string of at most 255 characters without control characters is accepted.
    Id,
    check_id,
    json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"})
);

checked_string!(
    /// A signal of a device, written `device.signal` (`total.p`, `HeatPump01.q`).
    ///
    /// ```
    /// use ebadge_model::SignalName;
    /// let s = SignalName::new("HeatPump01.q").unwrap();
    /// assert_eq!(s.device(), "HeatPump01");
    /// assert_eq!(s.signal(), "q");
    /// assert!(SignalName::new("total").is_err());
    /// ```
    SignalName,
    check_signal_name,
    json!({"type": "string", "pattern": SIGNAL_PATTERN})
);

/// The pattern of a signal name: two names joined by one dot.
pub const SIGNAL_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_]*\\.[A-Za-z][A-Za-z0-9_]*$";

impl Id {
    /// A new random (version 4) UUID, the form the spec's examples use.
    pub fn new_uuid() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

impl SignalName {
    /// Builds `device.signal` from its two parts.
    pub fn from_parts(device: &Name, signal: &Name) -> Self {
        Self(format!("{device}.{signal}"))
    }

    /// The device part (`total` in `total.p`).
    pub fn device(&self) -> &str {
        self.0.split_once('.').map_or("", |(d, _)| d)
    }

    /// The signal part (`p` in `total.p`).
    pub fn signal(&self) -> &str {
        self.0.split_once('.').map_or("", |(_, s)| s)
    }
}

impl FieldKey for SignalName {
    fn from_key(key: String) -> Result<Self, FieldError> {
        Self::new(key)
    }
    fn as_key(&self) -> &str {
        &self.0
    }
    fn key_schema() -> Value {
        json!({"pattern": SIGNAL_PATTERN})
    }
}

impl From<Name> for String {
    fn from(value: Name) -> Self {
        value.0
    }
}
