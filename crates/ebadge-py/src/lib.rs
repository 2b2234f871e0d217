//! `ebadge._core`: the native half of the `ebadge` Python package. It is the Rust model and the
//! Rust client, not a second implementation: the strict decoder and encoder of
//! [`ebadge_model`], and [`ebadge_bus::Client`] with its reliability layer (confirms, outbox,
//! reconnects, dedupe, quarantine), behind a small API that `python/ebadge` dresses in Python
//! classes. Every wait releases the GIL; a blocking wait wakes every 100 ms to let Python run
//! its signal handlers, so Ctrl-C interrupts it.

use pyo3::prelude::*;
use std::future::Future;
use std::time::Duration;

mod client;
mod codec;
mod completions;
mod errors;

/// How often a blocking wait looks at Python's signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Runs `future` to completion on the shared Tokio runtime without the GIL, returning early
/// with the exception of a signal handler (`KeyboardInterrupt` on Ctrl-C); the future is then
/// dropped.
pub(crate) fn wait<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let runtime = pyo3_async_runtimes::tokio::get_runtime();
    let mut future = std::pin::pin!(future);
    loop {
        let step = py.detach(|| {
            runtime.block_on(async { tokio::time::timeout(SIGNAL_CHECK, future.as_mut()).await })
        });
        match step {
            Ok(output) => return Ok(output),
            Err(_) => py.check_signals()?,
        }
    }
}

/// Seconds from Python (`None`: no limit) as a duration; negative or NaN values are refused.
pub(crate) fn seconds(value: Option<f64>) -> PyResult<Option<Duration>> {
    value
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "a timeout is a number of seconds, 0 or more: {s}"
                ))
            })
        })
        .transpose()
}

/// Logs of the Rust core go to stderr, filtered by `$EBADGE_LOG` (default `warn`; e.g.
/// `EBADGE_LOG=info` or `EBADGE_LOG=ebadge_bus=debug`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EBADGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The module `ebadge._core`.
#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    codec::register(m)?;
    client::register(m)?;
    Ok(())
}
