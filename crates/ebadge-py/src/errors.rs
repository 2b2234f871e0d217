//! The exceptions of the package, raised by the core with their facts as `args`; `ebadge/_model.py`
//! and `ebadge/client.py` give them named attributes.

#![allow(missing_docs)] // create_exception! declares public types without docs

use ebadge_bus::{ConnectError, SendError, Undelivered};
use ebadge_model::InvalidMessage as ModelError;
use pyo3::prelude::*;

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

/// One undelivered record as the fields of `ebadge.Undelivered`, in its order.
pub(crate) type Record = (u64, String, String, String, String, String);

pub(crate) fn undelivered_record(u: &Undelivered) -> Record {
    (
        u.seq,
        u.message_id.clone(),
        u.exchange.clone(),
        u.routing_key.clone(),
        u.msg_type.clone(),
        u.reason.clone(),
    )
}

/// A send error as its Python exception. Built without the GIL (it may be made on one of the
/// core's threads): the arguments are plain data, turned into Python objects when raised.
pub(crate) fn send_error(e: SendError) -> PyErr {
    match e {
        SendError::Invalid(e) => invalid(e),
        SendError::Undelivered(records) => {
            let text = SendError::Undelivered(records.clone()).to_string();
            let records: Vec<Record> = records.iter().map(undelivered_record).collect();
            UndeliveredError::new_err((text, records))
        }
        other => NotSent::new_err(other.to_string()),
    }
}
