//! Shared by the model's integration tests: the spec's vectors and compiled JSON Schemas.

#![allow(dead_code)] // each test file uses its own part

use std::sync::LazyLock;

use ebadge_model::{MessageType, schema};
use serde_json::Value;

/// The 33 "Raw JSON example" messages of D3.1.3: a copy of the project's `shared/spec/examples.jsonl`
/// kept in the crate so that it tests on its own (`vectors.rs` checks the copy is current).
pub const EXAMPLES: &str = include_str!("../vectors/examples.jsonl");

/// The examples, one per line, in document order.
pub fn examples() -> Vec<&'static str> {
    EXAMPLES.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// The schema of all messages, compiled once.
pub static ALL: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    jsonschema::validator_for(&schema::all_messages_schema()).expect("the schema compiles")
});

/// One compiled schema per message type, in `MessageType::ALL` order.
pub static BY_TYPE: LazyLock<Vec<jsonschema::Validator>> = LazyLock::new(|| {
    MessageType::ALL
        .iter()
        .map(|&t| {
            jsonschema::validator_for(&schema::message_schema(t)).expect("the schema compiles")
        })
        .collect()
});

/// The compiled schema of one type.
pub fn schema_of(t: MessageType) -> &'static jsonschema::Validator {
    &BY_TYPE[MessageType::ALL.iter().position(|&x| x == t).unwrap()]
}

/// The schema's complaints about `value`, as text (empty when valid).
pub fn schema_errors(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}
