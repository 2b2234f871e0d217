//! The Rust client for Python: `Client` (connect, send, flush, activate, request, receive, close,
//! each wait blocking; activations also as awaitables) and `Incoming` (a delivery, acknowledged or rejected by
//! the Python side once its handler has run).

use crate::completions::Completions;
use crate::errors::{ConnectFailed, connect_failed, invalid, send_error, undelivered_record};
use crate::{seconds, wait};
use ebadge_bus::metrics::{Metrics, MetricsServer};
use ebadge_bus::{
    ActivationOutcome, Client as BusClient, ClientConfig, EntityName, FirstConnection, Inbox,
    Incoming as BusIncoming, OutboxSync, Profile,
};
use ebadge_model::Message;
use pyo3::exceptions::{PyTimeoutError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;

/// Most publishing connections a Python client may ask for (each is a TLS connection).
const MAX_PUBLISH_CONNECTIONS: usize = 64;

fn entity(name: &str) -> PyResult<EntityName> {
    EntityName::new(name).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn message_of(text: &str) -> PyResult<Message> {
    Message::decode(text).map_err(invalid)
}

/// How to connect: everything `connect` takes, read from Python before the wait.
struct Options {
    config: ClientConfig,
    metrics: Option<std::net::SocketAddr>,
    patience: Option<Duration>,
}

impl Options {
    /// Opens the client (and its metrics endpoint) as the options say.
    async fn open(self) -> PyResult<Client> {
        let name = self.config.name.as_str().to_owned();
        // The endpoint first: a client connected and then given up because the address was
        // taken would go on consuming in the background.
        let metrics = Metrics::new();
        let server = match self.metrics {
            Some(address) => Some(metrics.serve(address).await.map_err(|e| {
                ConnectFailed::new_err(format!(
                    "the metrics endpoint cannot listen on {address}: {e} (choose another address, or port 0 for a free one)"
                ))
            })?),
            None => None,
        };
        let mut config = self.config;
        if let Some(patience) = self.patience {
            config.first_connection = FirstConnection::WaitUpTo(patience);
        }
        let inner = BusClient::connect(config).await.map_err(connect_failed)?;
        if server.is_some() {
            metrics.watch(&name, std::slice::from_ref(&inner));
        }
        let inbox = inner.inbox();
        Ok(Client {
            inner,
            inbox: Arc::new(AsyncMutex::new(inbox)),
            metrics: Mutex::new(server),
            closed: Arc::new(AtomicBool::new(false)),
            completions: Completions::default(),
        })
    }
}

/// A connected entity: the Rust client, its inbox and its metrics endpoint.
#[pyclass(frozen, module = "ebadge._core")]
pub(crate) struct Client {
    inner: BusClient,
    inbox: Arc<AsyncMutex<Option<Inbox>>>,
    metrics: Mutex<Option<MetricsServer>>,
    /// Set by `close`: from then on `receive` gives nothing (what the inbox still buffers goes
    /// back to the broker with the connection).
    closed: Arc<AtomicBool>,
    /// The awaitables of `activate` and `activate_many`, completed in batches.
    completions: Completions,
}

/// The answer to an activation: `(kind, json)`, kind one of `accepted`, `rejected`, `modified`,
/// `timed_out` (json `None`).
type Outcome = (&'static str, Option<String>);

fn outcome(o: ActivationOutcome) -> PyResult<Outcome> {
    let (kind, message) = match o {
        ActivationOutcome::Accepted(m) => ("accepted", Some(Message::AcceptActivation(m))),
        ActivationOutcome::Rejected(m) => ("rejected", Some(Message::RejectActivation(m))),
        ActivationOutcome::Modified(m) => ("modified", Some(Message::ModifyActivation(m))),
        ActivationOutcome::TimedOut => ("timed_out", None),
    };
    let text = message.map(|m| m.encode()).transpose().map_err(invalid)?;
    Ok((kind, text))
}

/// Sends `order` to `peer` and waits (at most `timeout`) for the answer.
async fn activation(
    client: BusClient,
    peer: EntityName,
    order: ebadge_model::Activate,
    timeout: Duration,
) -> PyResult<Outcome> {
    outcome(
        client
            .activate(&peer, &order, timeout)
            .await
            .map_err(request_error)?,
    )
}

fn request_error(e: ebadge_bus::RequestError) -> PyErr {
    match e {
        ebadge_bus::RequestError::Send(e) => send_error(e),
        other => PyValueError::new_err(other.to_string()),
    }
}

impl Client {
    fn order(&self, text: &str) -> PyResult<ebadge_model::Activate> {
        match message_of(text)? {
            Message::Activate(order) => Ok(order),
            other => Err(PyTypeError::new_err(format!(
                "activate takes an activate message, not {}",
                other.type_name()
            ))),
        }
    }

    fn closing(&self) -> Option<MetricsServer> {
        self.closed.store(true, Ordering::Relaxed);
        self.metrics.lock().unwrap().take()
    }
}

impl Drop for Client {
    /// A client the program forgot to close stops consuming and closes in the background (its
    /// outbox gets the usual 30 s), rather than hold its connection until the process ends.
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::Relaxed) {
            let client = self.inner.clone();
            pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
                client.close(Duration::from_secs(30)).await;
            });
        }
    }
}

/// Waits for the next delivery, at most `timeout` (the wait for another thread's `receive`
/// included); `None` on timeout or once the client is closed.
async fn next(
    inbox: Arc<AsyncMutex<Option<Inbox>>>,
    closed: Arc<AtomicBool>,
    timeout: Option<Duration>,
) -> Option<Incoming> {
    let job = async {
        let mut guard = inbox.lock().await;
        let inbox = guard.as_mut()?;
        let incoming = inbox.next().await?;
        // Closed meanwhile: dropped, the delivery goes back to the broker.
        (!closed.load(Ordering::Relaxed)).then(|| Incoming::new(incoming))
    };
    if closed.load(Ordering::Relaxed) {
        return None;
    }
    match timeout {
        Some(t) => tokio::time::timeout(t, job).await.ok()?,
        None => job.await,
    }
}

async fn flush_within(client: BusClient, timeout: Option<Duration>) -> PyResult<()> {
    let flushed = match timeout {
        Some(t) => tokio::time::timeout(t, client.flush()).await.map_err(|_| {
            PyTimeoutError::new_err(format!(
                "{} message(s) still wait for the broker's confirm after {t:?} (they stay in the outbox and go out when the broker takes them)",
                client.counters().buffered
            ))
        })?,
        None => client.flush().await,
    };
    flushed.map_err(send_error)
}

#[pymethods]
impl Client {
    /// Reads the profile and the options, then connects (the GIL released).
    #[staticmethod]
    #[pyo3(signature = (name, profile=None, *, durable_outbox=None, outbox_sync="full", groups=Vec::new(), prefetch=None, outbox_cap=None, dedupe_window=None, publish_connections=None, metrics=None, patience=None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn connect<'py>(
        py: Python<'py>,
        name: &str,
        profile: Option<PathBuf>,
        durable_outbox: Option<PathBuf>,
        outbox_sync: &str,
        groups: Vec<String>,
        prefetch: Option<u16>,
        outbox_cap: Option<usize>,
        dedupe_window: Option<usize>,
        publish_connections: Option<usize>,
        metrics: Option<&str>,
        patience: Option<f64>,
    ) -> PyResult<Bound<'py, Client>> {
        let path = Profile::locate(profile.as_deref());
        let profile = Profile::load(&path).map_err(|e| {
            ConnectFailed::new_err(format!(
                "{e}. A profile names the broker and the certificates: `make demo` writes .ebadge/profile.toml; pass profile= or set EBADGE_PROFILE"
            ))
        })?;
        let mut config = ClientConfig::new(profile, entity(name)?);
        config.groups = groups.iter().map(|g| entity(g)).collect::<PyResult<_>>()?;
        config.durable_outbox = durable_outbox;
        config.outbox_sync = match outbox_sync {
            "full" => OutboxSync::Full,
            "normal" => OutboxSync::Normal,
            other => {
                return Err(PyValueError::new_err(format!(
                    "outbox_sync is \"full\" (survives a power cut) or \"normal\" (survives a crash), not {other:?}"
                )));
            }
        };
        if let Some(p) = prefetch {
            config.prefetch = p;
        }
        if let Some(c) = outbox_cap {
            config.outbox_cap = c;
        }
        if let Some(d) = dedupe_window {
            config.dedupe_window = d;
        }
        if let Some(p) = publish_connections {
            if p > MAX_PUBLISH_CONNECTIONS {
                return Err(PyValueError::new_err(format!(
                    "publish_connections is 0 to {MAX_PUBLISH_CONNECTIONS} (4 suits a cluster), not {p}"
                )));
            }
            config.publish_connections = p;
        }
        let metrics = metrics
            .map(|a| {
                a.parse().map_err(|e| {
                    PyValueError::new_err(format!(
                        "metrics is an address such as 127.0.0.1:9100 (port 0: a free one), not {a:?}: {e}"
                    ))
                })
            })
            .transpose()?;
        let options = Options {
            config,
            metrics,
            // Beyond a year is "for ever", and keeps the deadline's arithmetic in range.
            patience: seconds(patience)?.map(|p| p.min(Duration::from_secs(365 * 86_400))),
        };
        Bound::new(py, wait(py, options.open())??)
    }

    /// Our entity name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name().as_str()
    }

    /// Whether a connection to the broker is up now.
    #[getter]
    fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Whether our inbox is being consumed now.
    #[getter]
    fn is_consuming(&self) -> bool {
        self.inner.is_consuming()
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Where the metrics endpoint listens (`host:port`), if there is one.
    #[getter]
    fn metrics_address(&self) -> Option<String> {
        self.metrics
            .lock()
            .unwrap()
            .as_ref()
            .map(|m| m.address().to_string())
    }

    /// Validates the message and puts it in the outbox for `to`; returns its message_id.
    fn send(&self, py: Python<'_>, to: &str, text: &str) -> PyResult<String> {
        let peer = entity(to)?;
        let message = message_of(text)?;
        py.detach(|| self.inner.send(&peer, &message))
            .map_err(send_error)
    }

    /// Waits until everything sent so far left the outbox: confirmed, or given up (raises
    /// UndeliveredError with the records).
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        wait(py, flush_within(self.inner.clone(), seconds(timeout)?))?
    }

    /// The messages given up since the last call (or flush), as dicts.
    fn undelivered<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let records = py.detach(|| self.inner.undelivered());
        PyList::new(py, records.iter().map(undelivered_record))
    }

    /// The counters now, as a dict.
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let counters = py.detach(|| self.inner.counters());
        let value = serde_json::to_value(counters).expect("counters are JSON");
        for (k, v) in value.as_object().expect("counters are an object") {
            d.set_item(k, v.as_u64().unwrap_or(0))?;
        }
        Ok(d)
    }

    /// Sends an activation order and waits for the answer: `(kind, json)`.
    #[pyo3(signature = (to, text, timeout, blocking=true))]
    fn activate<'py>(
        &self,
        py: Python<'py>,
        to: &str,
        text: &str,
        timeout: f64,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let peer = entity(to)?;
        let order = self.order(text)?;
        let timeout = seconds(Some(timeout))?.unwrap_or_default();
        let job = activation(self.inner.clone(), peer, order, timeout);
        if blocking {
            let answer = wait(py, job)??;
            Ok(answer.into_pyobject(py)?.into_any())
        } else {
            self.completions.spawn(py, job)
        }
    }

    /// Sends every order of `orders` (`(to, text)` pairs) at once and waits for all the answers:
    /// a list of `(kind, json)` in the order of `orders`, one awaitable for them all. Every
    /// order is checked before any is sent.
    #[pyo3(signature = (orders, timeout, blocking=true))]
    fn activate_many<'py>(
        &self,
        py: Python<'py>,
        orders: Vec<(String, String)>,
        timeout: f64,
        blocking: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let orders = orders
            .iter()
            .map(|(to, text)| Ok((entity(to)?, self.order(text)?)))
            .collect::<PyResult<Vec<_>>>()?;
        let timeout = seconds(Some(timeout))?.unwrap_or_default();
        let client = self.inner.clone();
        let job = async move {
            let runtime = tokio::runtime::Handle::current();
            let tasks: Vec<_> = orders
                .into_iter()
                .map(|(peer, order)| {
                    runtime.spawn(activation(client.clone(), peer, order, timeout))
                })
                .collect();
            let mut answers = Vec::with_capacity(tasks.len());
            for task in tasks {
                answers.push(task.await.map_err(|e| {
                    pyo3::exceptions::PyRuntimeError::new_err(format!("an activation failed: {e}"))
                })??);
            }
            Ok(answers)
        };
        if blocking {
            let answers = wait(py, job)??;
            Ok(answers.into_pyobject(py)?.into_any())
        } else {
            self.completions.spawn(py, job)
        }
    }

    /// Sends a market message that carries msg_id and waits for its response (json or None).
    fn request(
        &self,
        py: Python<'_>,
        to: &str,
        text: &str,
        timeout: f64,
    ) -> PyResult<Option<String>> {
        let peer = entity(to)?;
        let message = message_of(text)?;
        let timeout = seconds(Some(timeout))?.unwrap_or_default();
        let client = self.inner.clone();
        let job = async move {
            let answer = client
                .request(&peer, &message, timeout)
                .await
                .map_err(request_error)?;
            answer
                .map(|r| Message::Response(r).encode())
                .transpose()
                .map_err(invalid)
        };
        wait(py, job)?
    }

    /// The next delivery (an `Incoming`), or `None` after `timeout` seconds or once closed.
    #[pyo3(signature = (timeout=None))]
    fn receive(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Incoming>> {
        wait(
            py,
            next(self.inbox.clone(), self.closed.clone(), seconds(timeout)?),
        )
    }

    /// Answers a market message that carries msg_id with `200 OK`; returns the message_id sent.
    fn respond_ok(&self, py: Python<'_>, incoming: &Incoming) -> PyResult<Option<String>> {
        py.detach(|| self.inner.respond_ok(&incoming.inner))
            .map_err(send_error)
    }

    /// Counts a message no handler took (`unhandled`, and the metric of the same name).
    fn count_unhandled(&self) {
        self.inner.count_unhandled();
    }

    /// Waits for the outbox (at most `timeout`), then closes: `(unconfirmed, discarded)`.
    #[pyo3(signature = (timeout=30.0))]
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<(usize, bool)> {
        let metrics = self.closing();
        let timeout = seconds(Some(timeout))?.unwrap_or_default();
        let client = self.inner.clone();
        // A receive waiting meanwhile ends: the inbox's sender goes with the session.
        // Spawned: a Ctrl-C or a cancelled task ends the wait, not the close.
        let closing = pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
            let closed = client.close(timeout).await;
            drop(metrics);
            (closed.unconfirmed, closed.discarded)
        });
        let job = async move {
            closing.await.map_err(|e| {
                pyo3::exceptions::PyRuntimeError::new_err(format!("closing failed: {e}"))
            })
        };
        wait(py, job)?
    }
}

/// One delivery: who sent it, how it came, the message as canonical JSON, and the means to
/// settle it (acknowledge or reject).
#[pyclass(frozen, module = "ebadge._core")]
pub(crate) struct Incoming {
    inner: BusIncoming,
    text: String,
}

impl Incoming {
    fn new(inner: BusIncoming) -> Self {
        // The message was decoded and checked on its way in: encoding it again cannot fail.
        let text = inner.message.encode().unwrap_or_default();
        Self { inner, text }
    }
}

#[pymethods]
impl Incoming {
    /// The sender (the `<sender>` of the pair exchange, which only the sender may write to).
    #[getter]
    fn sender(&self) -> &str {
        self.inner.from.as_str()
    }

    /// The routing key (`type[.heh_id]`).
    #[getter]
    fn routing_key(&self) -> &str {
        &self.inner.routing_key
    }

    /// The exchange it came through.
    #[getter]
    fn exchange(&self) -> &str {
        &self.inner.exchange
    }

    /// Its AMQP message_id, if the sender set one.
    #[getter]
    fn message_id(&self) -> Option<&str> {
        self.inner.message_id.as_deref()
    }

    /// Whether the broker delivered it before.
    #[getter]
    fn redelivered(&self) -> bool {
        self.inner.redelivered
    }

    /// Its `msg` type.
    #[getter]
    fn msg_type(&self) -> &str {
        self.inner.message.type_name()
    }

    /// The message as canonical JSON.
    #[getter]
    fn json(&self) -> &str {
        &self.text
    }

    /// Done with it: the broker forgets it.
    fn ack(&self) {
        self.inner.ack();
    }

    /// Refused: it goes to our quarantine queue with `reason`, and is not offered again.
    fn reject(&self, reason: &str) {
        self.inner.reject(reason);
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    m.add_class::<Incoming>()?;
    Ok(())
}
