//! Stopping a long run from outside: a flag the caller raises — on Ctrl-C,
//! at a deadline, on a Python `KeyboardInterrupt` — and the work checks at
//! safe points: the pass manager before every pass and every rewrite,
//! verification between its steps. A cancelled run ends with an error and
//! its model is discarded, as after any other error; nothing is left
//! half-written.
//!
//! ```
//! use npuopt_passes::Cancel;
//!
//! let cancel = Cancel::new();
//! let handle = cancel.clone(); // give this one to a signal handler or a timer
//! assert!(!cancel.is_cancelled());
//! handle.cancel();
//! assert!(cancel.is_cancelled());
//! assert!(!Cancel::never().is_cancelled());
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cancellation flag shared by clones. The default never fires.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Option<Arc<AtomicBool>>);

impl Cancel {
    /// A flag that fires when [`Cancel::cancel`] is called on any clone.
    pub fn new() -> Cancel {
        Cancel(Some(Arc::new(AtomicBool::new(false))))
    }

    /// A flag that never fires (the default).
    pub fn never() -> Cancel {
        Cancel(None)
    }

    /// Asks the work to stop at its next check.
    pub fn cancel(&self) {
        if let Some(flag) = &self.0 {
            flag.store(true, Ordering::Relaxed);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

/// A flag of the caller's own, e.g. one a Ctrl-C handler sets.
impl From<Arc<AtomicBool>> for Cancel {
    fn from(flag: Arc<AtomicBool>) -> Cancel {
        Cancel(Some(flag))
    }
}

/// Two flags are equal when they are the same flag (or both never fire).
impl PartialEq for Cancel {
    fn eq(&self, other: &Cancel) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}
