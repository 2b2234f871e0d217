//! The model's strict codec for Python: a message's text in, its canonical text out (or
//! `InvalidMessage` with the type and the field), and the JSON Schemas.

use crate::errors::invalid;
use ebadge_model::{Message, MessageType, schema};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// Text or bytes, copied so that the work on them can go without the GIL (invalid UTF-8 is the
/// decoder's to refuse: it names the type and the field).
pub(crate) fn bytes_of(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if value.is_instance_of::<PyString>() {
        return Ok(value.extract::<String>()?.into_bytes());
    }
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    Err(pyo3::exceptions::PyTypeError::new_err(
        "a message is a str or UTF-8 bytes",
    ))
}

/// Decodes strictly and encodes again: `(msg type, canonical JSON text)`.
pub(crate) fn canonical_of(text: &[u8]) -> Result<(String, String), ebadge_model::InvalidMessage> {
    let message = Message::decode_slice(text)?;
    let encoded = message.encode()?;
    Ok((message.type_name().to_owned(), encoded))
}

/// `decode(text) -> (msg_type, canonical_text)`: checks a message against every rule of the
/// model and writes it as the Rust encoder does (the errata repaired, `ext_` fields kept).
#[pyfunction]
fn decode(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<(String, String)> {
    let text = bytes_of(text)?;
    py.detach(|| canonical_of(&text)).map_err(invalid)
}

/// `canonical(text) -> str`: the canonical text of a valid message.
#[pyfunction]
fn canonical(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<String> {
    decode(py, text).map(|(_, text)| text)
}

/// `schema(name=None) -> str`: the JSON Schema of one message type, or of all as one schema.
#[pyfunction]
#[pyo3(signature = (name=None))]
fn schema_of(name: Option<&str>) -> PyResult<String> {
    let value = match name {
        None => schema::all_messages_schema(),
        Some(name) => match MessageType::from_name(name) {
            Some(t) => schema::message_schema(t),
            None => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "{name:?} is not a message type of D3.1.3 (ebadge.message_types() lists them)"
                )));
            }
        },
    };
    Ok(serde_json::to_string_pretty(&value).expect("a schema is JSON"))
}

/// `types() -> [(name, level)]`: the 33 message types in the order of D3.1.3.
#[pyfunction]
fn types() -> Vec<(&'static str, &'static str)> {
    MessageType::ALL
        .iter()
        .map(|t| {
            let level = match t.level() {
                ebadge_model::Level::Heh => "heh",
                ebadge_model::Level::Market => "market",
            };
            (t.as_str(), level)
        })
        .collect()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(canonical, m)?)?;
    m.add("schema", wrap_pyfunction!(schema_of, m)?)?;
    m.add_function(wrap_pyfunction!(types, m)?)?;
    Ok(())
}
