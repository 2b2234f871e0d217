//! Awaitables completed in batches. `pyo3_async_runtimes::future_into_py` costs each awaitable
//! a task, a blocking-pool thread, the GIL and a `call_soon_threadsafe` (a write to the event
//! loop's self-pipe) when it completes: a VPP awaiting 5,000 activations at once spent more of
//! the core's CPU there than in the bus client (docs/benchmarks.md, "Python (issue #27)"). Here
//! the awaitables of one event loop share a queue: a finished Rust future puts its result in
//! it, and only the first result of a batch wakes the loop, which then completes every
//! awaitable of the batch at once.
//!
//! A cancelled awaitable (`asyncio.wait_for` past its time, a cancelled task) is left alone;
//! its Rust future runs on to its own end (every wait of the client has a timeout).

use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use pyo3::types::PyCFunction;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

/// A result waiting to be handed to its awaitable: made into a Python value on the loop's
/// thread, with the GIL.
type Finish = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// The awaitables of one event loop whose Rust futures are done, and whether the loop was told.
struct Queue {
    event_loop: Py<PyAny>,
    /// The callable the loop runs to complete a batch (set once the queue exists: it holds a
    /// weak reference to it).
    drain: OnceLock<Py<PyAny>>,
    done: Mutex<Batch>,
}

#[derive(Default)]
struct Batch {
    ready: Vec<(Py<PyAny>, Finish)>,
    woken: bool,
}

impl Queue {
    /// Puts a finished result in the queue; the first of a batch wakes the loop (with the GIL,
    /// on the blocking pool, so that no worker of the runtime waits for it).
    fn finish(self: &Arc<Self>, future: Py<PyAny>, result: Finish) {
        let wake = {
            let mut batch = self.done.lock().unwrap();
            batch.ready.push((future, result));
            !std::mem::replace(&mut batch.woken, true)
        };
        if wake {
            let queue = self.clone();
            tokio::task::spawn_blocking(move || {
                Python::attach(|py| {
                    let Some(drain) = queue.drain.get() else {
                        return;
                    };
                    let woken = queue
                        .event_loop
                        .bind(py)
                        .call_method1(pyo3::intern!(py, "call_soon_threadsafe"), (drain.bind(py),));
                    // A closed loop has nobody left to tell.
                    if let Err(e) = woken {
                        tracing::debug!(error = %e, "an event loop could not be woken");
                    }
                })
            });
        }
    }

    /// On the loop's thread: completes every awaitable of the batch (those still waiting).
    fn complete(&self, py: Python<'_>) -> PyResult<()> {
        let ready = {
            let mut batch = self.done.lock().unwrap();
            batch.woken = false;
            std::mem::take(&mut batch.ready)
        };
        for (future, finish) in ready {
            let future = future.bind(py);
            if future
                .call_method0(pyo3::intern!(py, "done"))?
                .is_truthy()?
            {
                continue;
            }
            match finish(py) {
                Ok(value) => future.call_method1(pyo3::intern!(py, "set_result"), (value,))?,
                Err(e) => {
                    future.call_method1(pyo3::intern!(py, "set_exception"), (e.value(py),))?
                }
            };
        }
        Ok(())
    }
}

/// One queue per client, for the event loop it is used from (a new loop gets a new queue).
#[derive(Default)]
pub(crate) struct Completions {
    queue: Mutex<Option<Arc<Queue>>>,
}

impl Completions {
    fn queue_for(&self, py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<Queue>> {
        let mut slot = self.queue.lock().unwrap();
        if let Some(queue) = slot
            .as_ref()
            .filter(|q| q.event_loop.bind(py).is(event_loop))
        {
            return Ok(queue.clone());
        }
        let queue = Arc::new(Queue {
            event_loop: event_loop.clone().unbind(),
            drain: OnceLock::new(),
            done: Mutex::new(Batch::default()),
        });
        let me = Arc::downgrade(&queue);
        let drain = PyCFunction::new_closure(py, None, None, move |args, _| match me.upgrade() {
            Some(queue) => queue.complete(args.py()),
            None => Ok(()),
        })?;
        let _ = queue.drain.set(drain.into_any().unbind());
        *slot = Some(queue.clone());
        Ok(queue)
    }

    /// An awaitable of the running event loop that completes with `job`'s result, `job` run on
    /// the core's runtime.
    pub(crate) fn spawn<'py, F, T>(&self, py: Python<'py>, job: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let event_loop = pyo3_async_runtimes::get_running_loop(py)?;
        let queue = self.queue_for(py, &event_loop)?;
        let future = event_loop.call_method0(pyo3::intern!(py, "create_future"))?;
        let handle = future.clone().unbind();
        pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
            let result = job.await;
            queue.finish(
                handle,
                Box::new(move |py| result.and_then(|value| value.into_py_any(py))),
            );
        });
        Ok(future)
    }
}
