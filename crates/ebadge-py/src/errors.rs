//! The exceptions of the package, raised by the core with their facts as `args`; `ebadge/_model.py`
//! and `ebadge/client.py` give them named attributes.

#![allow(missing_docs)] // create_exception! declares public types without docs

use ebadge_bus::{ConnectError, SendError, Undelivered};
use ebadge_model::InvalidMessage as ModelError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

pyo3::create_exception!(
    ebadge,
    InvalidMessage,
    pyo3::exceptions::PyValueError,
    "Not a valid eBADGE message: args are (msg_type or None, field path or None, reason)."
);
pyo3::create_exception!(
    ebadge,
    BusError,
    pyo3::exceptions::PyException,
    "A failure of the bus: the message says what happened and what to do."
);
pyo3::create_exception!(
    ebadge,
    ConnectFailed,
    BusError,
    "The first connection failed: a missing certificate, a bad address, a broker that is down or refuses us."
);
pyo3::create_exception!(
    ebadge,
    NotSent,
    BusError,
    "A send was not accepted: the client is closed, the message is too large, or the durable outbox failed."
);
pyo3::create_exception!(
    ebadge,
    UndeliveredError,
    BusError,
    "Messages left the outbox without a confirm: args are (text, list of undelivered records)."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("InvalidMessage", py.get_type::<InvalidMessage>())?;
    m.add("BusError", py.get_type::<BusError>())?;
    m.add("ConnectFailed", py.get_type::<ConnectFailed>())?;
    m.add("NotSent", py.get_type::<NotSent>())?;
    m.add("UndeliveredError", py.get_type::<UndeliveredError>())?;
    Ok(())
}

/// The model's error as `InvalidMessage(msg_type, field, reason)`.
pub(crate) fn invalid(e: ModelError) -> PyErr {
    InvalidMessage::new_err((e.msg_type.clone(), e.field(), e.reason))
}

pub(crate) fn connect_failed(e: ConnectError) -> PyErr {
    ConnectFailed::new_err(e.to_string())
}

/// One undelivered record as a dict (what `ebadge.Undelivered` is built from).
pub(crate) fn undelivered_dict<'py>(
    py: Python<'py>,
    u: &Undelivered,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("seq", u.seq)?;
    d.set_item("message_id", &u.message_id)?;
    d.set_item("exchange", &u.exchange)?;
    d.set_item("routing_key", &u.routing_key)?;
    d.set_item("msg_type", &u.msg_type)?;
    d.set_item("reason", &u.reason)?;
    Ok(d)
}

pub(crate) fn send_error(e: SendError) -> PyErr {
    match e {
        SendError::Invalid(e) => invalid(e),
        SendError::Undelivered(records) => Python::attach(|py| {
            let text = SendError::Undelivered(records.clone()).to_string();
            let list: PyResult<Vec<_>> = records
                .iter()
                .map(|u| undelivered_dict(py, u).map(Bound::unbind))
                .collect();
            match list {
                Ok(list) => UndeliveredError::new_err((text, list)),
                Err(e) => e,
            }
        }),
        other => NotSent::new_err(other.to_string()),
    }
}
