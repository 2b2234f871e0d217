//! How one JSON value becomes one Rust field and back: the [`Field`] trait, the field path used in
//! error messages, and [`ObjectReader`], which takes a JSON object apart field by field.
//!
//! Decoding goes through [`serde_json::Value`] rather than a derived `Deserialize` because the
//! rules are ours, not serde's: `ext_` fields are collected instead of refused, every other unknown
//! field is refused by name, absent and `null` mean the same for optional fields, integers may be
//! written as `60.0`, and every error names the field it happened in.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

use crate::syntax::{is_extension_name, is_valid_name};

/// One step of a path into a JSON document: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// Where in a message a problem is, written like `product.start` or `values["total.p"][2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The empty path: the message itself.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// A path from its segments, outermost first.
    pub fn from_segments(segments: Vec<Segment>) -> Self {
        Self(segments)
    }

    /// A path of one object key.
    pub fn key(name: impl Into<String>) -> Self {
        Self(vec![Segment::Key(name.into())])
    }

    /// True when the path points at the message itself.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path with `outer` put in front: errors are made deep inside and gain their prefix on the
    /// way out.
    pub fn within(mut self, outer: Segment) -> Self {
        self.0.insert(0, outer);
        self
    }

    /// The path's segments, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if is_valid_name(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Segment::Key(k) => write!(f, "[{}]", Value::String(k.clone()))?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A problem with one field: where it is and what is wrong. The message type is added by the
/// caller, which knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field the problem is in; empty for a problem with the whole message.
    pub path: FieldPath,
    /// What is wrong, in words a person can act on.
    pub reason: String,
}

impl FieldError {
    /// A problem with the value at hand (the caller prefixes the path).
    pub fn here(reason: impl Into<String>) -> Self {
        Self {
            path: FieldPath::root(),
            reason: reason.into(),
        }
    }

    /// A problem with the named field of the object at hand.
    pub fn at(field: &str, reason: impl Into<String>) -> Self {
        Self {
            path: FieldPath::key(field),
            reason: reason.into(),
        }
    }

    /// The same error, one level deeper.
    pub fn within(mut self, outer: Segment) -> Self {
        self.path = self.path.within(outer);
        self
    }

    fn within_key(self, key: &str) -> Self {
        self.within(Segment::Key(key.to_owned()))
    }
}

impl std::error::Error for FieldError {}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            f.write_str(&self.reason)
        } else {
            write!(f, "field {}: {}", self.path, self.reason)
        }
    }
}

/// The JSON type of a value, for "expected a number, found a string" messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The error for a value of the wrong JSON type.
pub fn wrong_type(expected: &str, found: &Value) -> FieldError {
    FieldError::here(format!("expected {expected}, found {}", json_type(found)))
}

/// A type that can be one field of an eBADGE message.
///
/// Implemented for the scalars, the checked name and time types, lists, signal maps and the nested
/// objects; the message macros build every message out of these.
pub trait Field: Sized {
    /// Decodes the field from its JSON value, checking everything that can be checked locally.
    fn from_json(value: Value) -> Result<Self, FieldError>;

    /// Writes the field as JSON.
    fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;

    /// Checks a value built in Rust (decoded values are checked by `from_json`), e.g. that a float
    /// is finite: serde_json would write a NaN as `null`.
    fn check(&self) -> Result<(), FieldError> {
        Ok(())
    }

    /// The JSON Schema (2020-12) of the field's value.
    fn schema() -> Value;
}

/// Lets any [`Field`] be handed to serde.
pub struct AsJson<'a, T>(pub &'a T);

impl<T: Field> Serialize for AsJson<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.write(serializer)
    }
}

impl Field for f64 {
    fn from_json(value: Value) -> Result<Self, FieldError> {
        match &value {
            // serde_json refuses NaN, the infinities and out-of-range literals while parsing, so
            // any number that arrives here is finite.
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| FieldError::here("number out of range")),
            other => Err(wrong_type("a number", other)),
        }
    }

    fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Whole numbers are written without ".0", as the spec's own examples do ("quantity":15):
        // peers in JavaScript and Python read both, and it keeps re-encoded vectors identical.
        const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
        if self.fract() == 0.0 && self.abs() < EXACT {
            serializer.serialize_i64(*self as i64)
        } else {
            serializer.serialize_f64(*self)
        }
    }

    fn check(&self) -> Result<(), FieldError> {
        if self.is_finite() {
            Ok(())
        } else {
            Err(FieldError::here(format!(
                "{self} is not a JSON number (NaN and the infinities are never sent)"
            )))
        }
    }

    fn schema() -> Value {
        serde_json::json!({"type": "number"})
    }
}

/// Reads an integer field. JSON has only one number type, so `60.0` is accepted as 60; `60.5` is not.
fn integer_from_json(value: &Value, min: i64, max: i64) -> Result<i64, FieldError> {
    let Value::Number(n) = value else {
        return Err(wrong_type("an integer", value));
    };
    let int = match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => i,
        (None, Some(f)) if f.fract() == 0.0 && f >= min as f64 && f <= max as f64 => f as i64,
        _ => {
            return Err(FieldError::here(format!(
                "expected an integer from {min} to {max}, found {n}"
            )));
        }
    };
    if int < min || int > max {
        return Err(FieldError::here(format!(
            "expected an integer from {min} to {max}, found {int}"
        )));
    }
    Ok(int)
}

macro_rules! integer_field {
    ($t:ty) => {
        impl Field for $t {
            fn from_json(value: Value) -> Result<Self, FieldError> {
                let int = integer_from_json(&value, <$t>::MIN as i64, <$t>::MAX as i64)?;
                Ok(int as $t)
            }
            fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_i64(*self as i64)
            }
            fn schema() -> Value {
                serde_json::json!({"type": "integer", "minimum": <$t>::MIN, "maximum": <$t>::MAX})
            }
        }
    };
}
integer_field!(i64);
integer_field!(u32);

impl Field for bool {
    fn from_json(value: Value) -> Result<Self, FieldError> {
        match value {
            Value::Bool(b) => Ok(b),
            other => Err(wrong_type("true or false", &other)),
        }
    }
    fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(*self)
    }
    fn schema() -> Value {
        serde_json::json!({"type": "boolean"})
    }
}

impl Field for String {
    fn from_json(value: Value) -> Result<Self, FieldError> {
        match value {
            Value::String(s) => Ok(s),
            other => Err(wrong_type("a string", &other)),
        }
    }
    fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self)
    }
    fn schema() -> Value {
        serde_json::json!({"type": "string"})
    }
}

impl<T: Field> Field for Vec<T> {
    fn from_json(value: Value) -> Result<Self, FieldError> {
        match value {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| T::from_json(item).map_err(|e| e.within(Segment::Index(i))))
                .collect(),
            other => Err(wrong_type("an array", &other)),
        }
    }
    fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for item in self {
            seq.serialize_element(&AsJson(item))?;
        }
        seq.end()
    }
    fn check(&self) -> Result<(), FieldError> {
        for (i, item) in self.iter().enumerate() {
            item.check().map_err(|e| e.within(Segment::Index(i)))?;
        }
        Ok(())
    }
    fn schema() -> Value {
        serde_json::json!({"type": "array", "items": T::schema()})
    }
}

/// A map key with its own rules (a signal name, say).
pub trait FieldKey: Sized + Ord {
    /// Checks and converts an object key.
    fn from_key(key: String) -> Result<Self, FieldError>;
    /// The key as written in JSON.
    fn as_key(&self) -> &str;
    /// The JSON Schema of the key (used as `propertyNames`).
    fn key_schema() -> Value;
}

impl<K: FieldKey, V: Field> Field for BTreeMap<K, V> {
    fn from_json(value: Value) -> Result<Self, FieldError> {
        let Value::Object(map) = value else {
            return Err(wrong_type("an object", &value));
        };
        let mut out = BTreeMap::new();
        for (key, item) in map {
            let within = Segment::Key(key.clone());
            let k = K::from_key(key).map_err(|e| e.within(within.clone()))?;
            let v = V::from_json(item).map_err(|e| e.within(within))?;
            out.insert(k, v);
        }
        Ok(out)
    }
    fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            map.serialize_entry(k.as_key(), &AsJson(v))?;
        }
        map.end()
    }
    fn check(&self) -> Result<(), FieldError> {
        for (k, v) in self {
            v.check()
                .map_err(|e| e.within(Segment::Key(k.as_key().to_owned())))?;
        }
        Ok(())
    }
    fn schema() -> Value {
        serde_json::json!({
            "type": "object",
            "propertyNames": K::key_schema(),
            "additionalProperties": V::schema(),
        })
    }
}

/// The `ext_` fields of one JSON object, kept exactly as they came and written back untouched.
pub type Extensions = BTreeMap<String, Value>;

/// Takes one JSON object apart: each `take_*` call removes one known field, and
/// [`ObjectReader::finish`] returns the `ext_` fields that remain or refuses the first unknown one.
#[derive(Debug)]
pub struct ObjectReader {
    map: Map<String, Value>,
}

impl ObjectReader {
    /// Starts reading `value`, which must be a JSON object.
    pub fn new(value: Value) -> Result<Self, FieldError> {
        match value {
            Value::Object(map) => Ok(Self { map }),
            other => Err(wrong_type("an object", &other)),
        }
    }

    /// Starts reading an object already taken apart.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self { map }
    }

    /// A field that must be present and not null.
    pub fn required<T: Field>(&mut self, name: &str) -> Result<T, FieldError> {
        match self.map.remove(name) {
            None => Err(FieldError::at(name, "missing (this field is required)")),
            Some(Value::Null) => Err(FieldError::at(name, "is null, but this field is required")),
            Some(v) => T::from_json(v).map_err(|e| e.within_key(name)),
        }
    }

    /// A field that may be absent or null; both read as `None`.
    pub fn optional<T: Field>(&mut self, name: &str) -> Result<Option<T>, FieldError> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => T::from_json(v).map(Some).map_err(|e| e.within_key(name)),
        }
    }

    /// Ends the object: every remaining field must be an extension (`ext_` + the name rule), and no
    /// two may differ only in case (D3.1.3 4.2.3).
    pub fn finish(self) -> Result<Extensions, FieldError> {
        let mut ext = Extensions::new();
        for (name, value) in self.map {
            if !is_extension_name(&name) {
                let reason = if is_valid_name(&name) {
                    "unknown field (extensions must start with \"ext_\")".to_owned()
                } else {
                    "not a valid field name: names match [A-Za-z][A-Za-z0-9_]*".to_owned()
                };
                return Err(FieldError {
                    path: FieldPath::key(name),
                    reason,
                });
            }
            ext.insert(name, value);
        }
        check_case_collisions(ext.keys().map(String::as_str))?;
        Ok(ext)
    }
}

/// Refuses two names that differ only in case (D3.1.3 4.2.3), naming the second one.
pub fn check_case_collisions<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), FieldError> {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if let Some(other) = seen.iter().find(|s| s.eq_ignore_ascii_case(name)) {
            return Err(FieldError::at(
                name,
                format!("differs from field \"{other}\" only in case"),
            ));
        }
        seen.push(name);
    }
    Ok(())
}

/// Writes a set of `ext_` fields into a map being serialized.
pub fn write_extensions<M: SerializeMap>(map: &mut M, ext: &Extensions) -> Result<(), M::Error> {
    for (k, v) in ext {
        map.serialize_entry(k, v)?;
    }
    Ok(())
}

/// Checks extensions built in Rust: names follow the rules, and values hold no non-finite number
/// (impossible in a `serde_json::Value`, so only names need checking).
pub fn check_extensions(ext: &Extensions) -> Result<(), FieldError> {
    for name in ext.keys() {
        if !is_extension_name(name) {
            return Err(FieldError::at(
                name,
                "extension fields must match ext_[A-Za-z0-9_]*",
            ));
        }
    }
    check_case_collisions(ext.keys().map(String::as_str))
}
