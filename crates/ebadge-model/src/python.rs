//! The Python classes of the `ebadge` package (`python/ebadge/messages.py`), generated from the
//! field tables ([`crate::describe`]): one class per message type and nested object, with a
//! keyword constructor, typed attributes with their docs, and the handler base class with one
//! `on_<type>` method per type. A test keeps the committed file equal to [`module`].

use std::fmt::Write;

use crate::describe::{self, FieldInfo, NESTED, Table, doc_text};
use crate::message::{Level, MessageType};

/// Python's keywords: a field with one of these names is `<name>_` in Python (`from_`).
const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// The Python attribute name of a JSON field.
pub fn attribute(json: &str) -> String {
    if KEYWORDS.contains(&json) {
        format!("{json}_")
    } else {
        json.to_owned()
    }
}

/// A Rust field type, read: its Python annotation and its converter expression (`None` when
/// the JSON value is the Python value).
struct PyType {
    annotation: String,
    converter: Option<String>,
}

fn py_type(ty: &str) -> PyType {
    let ty = ty.replace(' ', "");
    let plain = |a: &str| PyType {
        annotation: a.to_owned(),
        converter: None,
    };
    if let Some(inner) = ty.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>')) {
        let inner = py_type(inner);
        return PyType {
            annotation: format!("List[{}]", inner.annotation),
            converter: inner.converter.map(|c| format!("seq({c})")),
        };
    }
    if let Some(inner) = ty
        .strip_prefix("BTreeMap<")
        .and_then(|t| t.strip_suffix('>'))
    {
        let (key, value) = inner
            .split_once(',')
            .expect("a map has a key and a value type");
        assert_eq!(py_type(key).annotation, "str", "map keys are names");
        let value = py_type(value);
        return PyType {
            annotation: format!("Dict[str, {}]", value.annotation),
            converter: value.converter.map(|c| format!("mapping({c})")),
        };
    }
    match ty.as_str() {
        "Time" => PyType {
            annotation: "datetime.datetime".into(),
            converter: Some("TIME".into()),
        },
        "f64" => plain("float"),
        "i64" | "u32" => plain("int"),
        "bool" => plain("bool"),
        "String" | "Name" | "Id" | "HehId" | "SignalName" => plain("str"),
        "Range" => plain("List[float]"),
        other if describe::enums().iter().any(|(name, _)| *name == other) => plain(other),
        other if NESTED.iter().any(|t| t.name == other) => PyType {
            annotation: other.to_owned(),
            converter: Some(format!("obj({other})")),
        },
        other => {
            panic!("no Python type for the Rust field type {other}: add it to python::py_type")
        }
    }
}

/// Indents every line of `text` by `by` spaces and quotes it as a docstring.
fn docstring(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    let text = text.replace('\\', "\\\\").replace("\"\"\"", "\\\"\\\"\\\"");
    let body = text
        .lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    format!("{pad}\"\"\"{}\"\"\"\n", body.trim_start())
}

fn class(out: &mut String, table: &Table, msg: Option<(MessageType, Level)>) {
    let base = if msg.is_some() { "Message" } else { "Object" };
    writeln!(out, "\nclass {}({base}):", table.name).unwrap();
    let mut doc = doc_text(table.doc);
    doc.push_str(
        "\n\nKeyword arguments only; `ext` holds the extension fields (`ext_<domain>_<name>`), kept and written back.",
    );
    if msg.is_some() {
        doc.push_str(
            "\nRaises InvalidMessage (with the type and the field) when the values break the model.",
        );
    }
    out.push_str(&docstring(&doc, 4));
    if let Some((t, level)) = msg {
        writeln!(out, "    msg: ClassVar[str] = {:?}", t.as_str()).unwrap();
        let level = match level {
            Level::Heh => "heh",
            Level::Market => "market",
        };
        writeln!(out, "    level: ClassVar[str] = {level:?}").unwrap();
    }
    let fields: Vec<(&FieldInfo, String, PyType)> = table
        .fields
        .iter()
        .map(|f| (f, attribute(f.json), py_type(f.ty)))
        .collect();
    out.push_str("    _fields: ClassVar[Fields] = (\n");
    for (f, attr, ty) in &fields {
        writeln!(
            out,
            "        F({attr:?}, {:?}, {:?}, {}),",
            f.json,
            f.kind,
            ty.converter.as_deref().unwrap_or("None")
        )
        .unwrap();
    }
    out.push_str("    )\n");
    for (f, attr, ty) in &fields {
        let annotation = if f.kind == "req" {
            ty.annotation.clone()
        } else {
            format!("Optional[{}]", ty.annotation)
        };
        writeln!(out, "    {attr}: {annotation}").unwrap();
        out.push_str(&docstring(&doc_text(f.doc), 4));
    }
    let mut params: Vec<String> = vec!["self".into()];
    if !fields.is_empty() {
        params.push("*".into());
    }
    for (f, attr, ty) in &fields {
        params.push(if f.kind == "req" {
            format!("{attr}: {}", ty.annotation)
        } else {
            format!("{attr}: Optional[{}] = None", ty.annotation)
        });
    }
    params.push("ext: Optional[Dict[str, Any]] = None".into());
    writeln!(out, "\n    def __init__(").unwrap();
    for p in &params {
        writeln!(out, "        {p},").unwrap();
    }
    out.push_str("    ) -> None:\n");
    let values: Vec<&str> = fields.iter().map(|(_, a, _)| a.as_str()).collect();
    let tuple = match values.len() {
        0 => "()".to_owned(),
        1 => format!("({},)", values[0]),
        _ => format!("({})", values.join(", ")),
    };
    writeln!(out, "        self._init({tuple}, ext)").unwrap();
}

/// The source of `python/ebadge/messages.py`.
pub fn module() -> String {
    let mut out = String::from(
        r#"# Generated from the Rust model (crates/ebadge-model, `python::module`) by
# `EBADGE_BLESS=1 cargo test -p ebadge-model --test python_classes`: do not edit.
"""Every eBADGE message type of D3.1.3 as a Python class, and the handler base class.

Build a message with keyword arguments (``from_`` for the field ``from``; ``ext={"ext_x_y": ...}``
for extension fields), read its fields as attributes, write it with ``to_json()``;
``ebadge.decode(text)`` gives the typed object back.
Times are ``datetime`` values with a tzinfo; a naive one is refused, as the Rust decoder refuses
a time without an offset.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Iterable, List, Literal, Optional, Type, Union

from ebadge._model import (
    NOT_HANDLED,
    TIME,
    ExtensionMessage,
    F,
    Fields,
    Message,
    NotHandled,
    Object,
    mapping,
    obj,
    seq,
)

if TYPE_CHECKING:
    from ebadge.client import Received

__all__ = [
    "Handler",
    "MESSAGE_TYPES",
    "Reply",
"#,
    );
    let enums = describe::enums();
    let mut names: Vec<&str> = enums.iter().map(|(n, _)| *n).collect();
    names.extend(NESTED.iter().map(|t| t.name));
    names.extend(MessageType::ALL.iter().map(|&t| describe::message(t).name));
    for name in &names {
        writeln!(out, "    {name:?},").unwrap();
    }
    out.push_str("]\n");
    for (name, values) in &enums {
        let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        writeln!(out, "\n{name} = Literal[{}]", quoted.join(", ")).unwrap();
    }
    for table in NESTED {
        class(&mut out, table, None);
    }
    for &t in MessageType::ALL {
        class(&mut out, describe::message(t), Some((t, t.level())));
    }
    out.push_str(
        "\n\n#: Every message class by its `msg` name.\nMESSAGE_TYPES: Dict[str, Type[Message]] = {\n",
    );
    for &t in MessageType::ALL {
        writeln!(out, "    {:?}: {},", t.as_str(), describe::message(t).name).unwrap();
    }
    out.push_str("}\n");
    out.push_str(
        r#"
#: What a handler method may return: nothing, a message, or several, each sent back to the sender.
#: ``NOT_HANDLED`` (what the methods not overridden return) counts the message as unhandled.
Reply = Union[None, Message, Iterable[Message], NotHandled]


class Handler:
    """Receives typed messages: the seed's ``AbstractConsumer``. Override ``on_<type>`` for the
    types you handle; each gets the message and the delivery (``incoming.sender`` and friends), and
    may return a message (or several) to send back to the sender. A method that raises does not stop
    the client: the message goes to the quarantine with the exception as the reason. Types without
    a method are counted as unhandled and acknowledged.
    """
"#,
    );
    for &t in MessageType::ALL {
        let table = describe::message(t);
        writeln!(
            out,
            "\n    def on_{}(self, message: {}, incoming: Received) -> Reply:",
            t.as_str(),
            table.name
        )
        .unwrap();
        writeln!(
            out,
            "        \"\"\"A `{}` message arrived.\"\"\"",
            t.as_str()
        )
        .unwrap();
        out.push_str("        return NOT_HANDLED\n");
    }
    out.push_str(
        r#"
    def on_extension(self, message: ExtensionMessage, incoming: Received) -> Reply:
        """A message of an `ext_` type arrived."""
        return NOT_HANDLED
"#,
    );
    out
}
