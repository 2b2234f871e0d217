//! JSON Schema (2020-12) for every message type, generated from the same field tables as the
//! decoder, so the two cannot drift apart.
//!
//! A schema checks the shape of a message: types, required fields, name and time patterns, enums,
//! ranges, and that unknown fields start with `ext_`. A few rules of the model are beyond JSON
//! Schema and are checked only by the decoder: `to` not before `from`, the length of report value
//! arrays, names that differ only in case, duplicate keys, and entries listed twice.
//!
//! ```
//! use ebadge_model::{MessageType, schema};
//! let s = schema::message_schema(MessageType::SetSmartMode);
//! assert_eq!(s["properties"]["mode"]["enum"][1], "passive");
//! ```

use serde_json::{Map, Value, json};

use crate::message::MessageType;
use crate::names::NAME_PATTERN;

/// The JSON Schema dialect used.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The pattern of extension field names.
pub const EXTENSION_FIELD_PATTERN: &str = "^ext_[A-Za-z0-9_]+$";

/// Adds keywords to a field's schema; for a nullable field, to its non-null branch.
pub fn refine(schema: &mut Value, extra: Value) {
    let target = match schema.get_mut("anyOf") {
        Some(Value::Array(branches)) => &mut branches[0],
        _ => schema,
    };
    if let (Value::Object(target), Value::Object(extra)) = (target, extra) {
        target.extend(extra);
    }
}

/// The schema of an object with the given core fields, `ext_` fields allowed, nothing else.
pub fn object_schema(
    msg: Option<&str>,
    (mut properties, required): (Map<String, Value>, Vec<&str>),
) -> Value {
    let mut required: Vec<Value> = required.into_iter().map(Value::from).collect();
    if let Some(msg) = msg {
        properties.insert("msg".into(), json!({"const": msg}));
        required.insert(0, "msg".into());
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "patternProperties": {EXTENSION_FIELD_PATTERN: true},
        "additionalProperties": false,
    })
}

fn type_schema(t: MessageType) -> Value {
    let mut schema = object_schema(Some(t.as_str()), t.schema_parts());
    crate::errata::widen_schema(t.as_str(), &mut schema);
    schema["title"] = Value::from(t.as_str());
    schema
}

/// The schema of one message type, as a standalone document.
pub fn message_schema(t: MessageType) -> Value {
    let mut schema = type_schema(t);
    schema["$schema"] = Value::from(DIALECT);
    schema["$id"] = Value::from(format!("urn:ebadge:message:{t}"));
    schema
}

/// The schema of an extension message: `msg` starts with `ext_`, field names follow the name rule.
pub fn extension_schema() -> Value {
    json!({
        "title": "extension message",
        "type": "object",
        "properties": {"msg": {"type": "string", "pattern": EXTENSION_FIELD_PATTERN}},
        "required": ["msg"],
        "propertyNames": {"pattern": NAME_PATTERN},
    })
}

/// One schema for every message: exactly one of the 33 types, or an extension message.
pub fn all_messages_schema() -> Value {
    let mut defs = Map::new();
    let mut one_of = Vec::new();
    for &t in MessageType::ALL {
        defs.insert(t.as_str().into(), type_schema(t));
        one_of.push(json!({"$ref": format!("#/$defs/{t}")}));
    }
    defs.insert("extension".into(), extension_schema());
    one_of.push(json!({"$ref": "#/$defs/extension"}));
    json!({
        "$schema": DIALECT,
        "$id": "urn:ebadge:message",
        "title": "eBADGE message (D3.1.3)",
        "oneOf": one_of,
        "$defs": defs,
    })
}
