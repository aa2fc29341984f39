//! Progress on stderr for steps that take a while.
//!
//! A step's label appears only once the step has run for a second, only on
//! a terminal, and never with `-q`: quick runs and pipelines see nothing.

use std::io::IsTerminal;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

const DELAY: Duration = Duration::from_secs(1);

pub struct Progress {
    enabled: bool,
}

/// A running step; its label is printed if it outlives [`DELAY`].
pub struct Step {
    done: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }

    pub fn step(&self, label: &str) -> Step {
        if !self.enabled {
            return Step {
                done: None,
                thread: None,
            };
        }
        let (tx, rx) = channel::<()>();
        let label = label.to_string();
        let thread = std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(DELAY) {
                eprintln!("{label}…");
            }
        });
        Step {
            done: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
