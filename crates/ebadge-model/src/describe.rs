//! The model's field tables as data: the message types, the nested objects and the string enums
//! with their fields, kinds, Rust types and doc comments, read from the same declarations as the
//! decoder, the encoder and the schema. Code in other languages is generated from them (the
//! Python classes, [`crate::python`]), so it cannot drift from the Rust model.
//!
//! ```
//! use ebadge_model::{describe, MessageType};
//! let table = describe::message(MessageType::Activate);
//! assert_eq!(table.name, "Activate");
//! assert_eq!(table.fields[2].json, "from");
//! assert_eq!(table.fields[2].ty, "Time");
//! ```

use crate::heh::*;
use crate::market::*;
use crate::message::MessageType;

/// One field of a table.
#[derive(Debug, Clone, Copy)]
pub struct FieldInfo {
    /// Its JSON name.
    pub json: &'static str,
    /// `req` (present, not null), `null` (may be null, written as null) or `opt` (may be left
    /// out).
    pub kind: &'static str,
    /// Its Rust type as written in the table (`Vec < SignalName >`, spaces and all).
    pub ty: &'static str,
    /// Its doc comment, as the attribute tokens (`#[doc = " ..."]`); see [`doc_text`].
    pub doc: &'static str,
}

/// The field table of a message type or a nested object.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The Rust type's name (`GetReport`).
    pub name: &'static str,
    /// Its doc comment as attribute tokens; see [`doc_text`].
    pub doc: &'static str,
    /// Its core fields, in the spec's order.
    pub fields: &'static [FieldInfo],
}

/// The table of a message type.
pub fn message(t: MessageType) -> &'static Table {
    macro_rules! table_of {
        ($( $level:ident $variant:ident $name:literal ),+ $(,)?) => {
            match t { $( MessageType::$variant => &$variant::TABLE, )+ }
        };
    }
    crate::for_each_message_type!(table_of)
}

/// The nested object types (the values of fields), by Rust name.
pub const NESTED: &[&Table] = &[
    &EnergyEvent::TABLE,
    &StatusEvent::TABLE,
    &SignalInfo::TABLE,
    &Product::TABLE,
];

/// The closed string sets, by Rust name, with their values in the spec's order.
pub fn enums() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        (
            "SmartMode",
            SmartMode::ALL.iter().map(|m| m.as_str()).collect(),
        ),
        (
            "DeviceClass",
            DeviceClass::ALL.iter().map(|c| c.as_str()).collect(),
        ),
    ]
}

/// The text of doc attribute tokens (`#[doc = r" ..."]`, as `stringify!` writes them): the lines
/// joined with newlines, each without the one space `///` leaves.
///
/// ```
/// use ebadge_model::describe::doc_text;
/// assert_eq!(doc_text(r##"#[doc = r#" Start of the "period"."#] #[doc =
/// r" Second."]"##), "Start of the \"period\".\nSecond.");
/// assert_eq!(doc_text(r#"#[doc = " An \"escaped\" one."]"#), "An \"escaped\" one.");
/// ```
pub fn doc_text(tokens: &str) -> String {
    let mut lines = Vec::new();
    let mut rest = tokens;
    while let Some(start) = rest.find("doc =") {
        let body = rest[start + 5..].trim_start();
        let (line, used) = match body.strip_prefix('r') {
            Some(raw) => {
                let hashes = raw.len() - raw.trim_start_matches('#').len();
                let close = format!("\"{}", "#".repeat(hashes));
                let text = &raw[hashes + 1..];
                let end = text.find(&close).unwrap_or(text.len());
                (text[..end].to_owned(), 1 + hashes + 1 + end + close.len())
            }
            None => {
                let mut line = String::new();
                let mut chars = body.char_indices().skip(1);
                let mut used = body.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '"' => {
                            used = i + 1;
                            break;
                        }
                        '\\' => match chars.next().map(|(_, e)| e) {
                            Some('n') => line.push('\n'),
                            Some(e) => line.push(e),
                            None => {}
                        },
                        c => line.push(c),
                    }
                }
                (line, used)
            }
        };
        lines.push(line.strip_prefix(' ').unwrap_or(&line).to_owned());
        rest = &body[used.min(body.len())..];
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_type_has_its_table_and_every_doc_reads_as_text() {
        for &t in MessageType::ALL {
            let table = message(t);
            assert!(!doc_text(table.doc).is_empty(), "{}", table.name);
            for field in table.fields {
                assert!(!doc_text(field.doc).contains("#[doc"), "{}", field.json);
            }
        }
        let report = message(MessageType::Report);
        assert!(doc_text(report.doc).starts_with("`report` (D3.1.3 5.2.3)"));
    }
}
