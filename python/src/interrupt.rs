//! Running Rust work without the GIL, stoppable by Ctrl-C.
//!
//! The work runs on a thread of its own while the calling thread, GIL
//! released, waits for it and every [`POLL`] briefly takes the GIL back to
//! let Python run its signal handlers (`check_signals`). A
//! `KeyboardInterrupt` raises the run's [`Cancel`] flag; the work stops at
//! its next check (between rewrites, between verification steps) and the
//! interrupt is re-raised in Python. Other Python threads run meanwhile,
//! so two optimizations in two threads run in parallel.
//!
//! A panic in the work is caught on its thread and comes back as
//! [`Failure::Panic`]: it never unwinds into Python.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

use npuopt::optimize::Cancel;
use pyo3::prelude::*;

/// How often the waiting thread lets Python look for signals.
const POLL: Duration = Duration::from_millis(50);
/// The work thread's stack: as large as a main thread's, as the command
/// line's work gets (deeply nested subgraphs recurse).
const STACK: usize = 8 << 20;

/// Why the work did not return.
pub enum Failure {
    /// Python raised this (a `KeyboardInterrupt`) while the work ran.
    Interrupted(PyErr),
    /// The work panicked: a bug in npuopt.
    Panic(String),
}

/// Runs `work` to its end, or until Python raises an exception in a signal
/// handler, without holding the GIL.
pub fn run<T, F>(py: Python<'_>, work: F) -> Result<T, Failure>
where
    T: Send,
    F: FnOnce(Cancel) -> T + Send,
{
    let cancel = Cancel::new();
    let (result, interrupt) = py.detach(|| {
        std::thread::scope(|scope| {
            let (done_tx, done_rx) = channel::<()>();
            let flag = cancel.clone();
            let worker = std::thread::Builder::new()
                .name("npuopt".into())
                .stack_size(STACK)
                .spawn_scoped(scope, move || {
                    let result = catch_unwind(AssertUnwindSafe(|| work(flag)));
                    let _ = done_tx.send(());
                    result
                })
                .expect("spawn the npuopt work thread");
            let mut interrupt = None;
            loop {
                match done_rx.recv_timeout(POLL) {
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) if interrupt.is_none() => {
                        if let Err(e) = Python::attach(|py| py.check_signals()) {
                            cancel.cancel();
                            interrupt = Some(e);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
            (worker.join(), interrupt)
        })
    });
    if let Some(e) = interrupt {
        return Err(Failure::Interrupted(e));
    }
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(payload)) | Err(payload) => Err(Failure::Panic(panic_message(&*payload))),
    }
}

/// The text a panic was raised with.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}
