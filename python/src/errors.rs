//! Rust errors as the package's Python exceptions (`npuopt/_errors.py`),
//! in the categories of the command line's exit codes:
//!
//! | exception | exit code | what |
//! |---|---|---|
//! | `UsageError` (a `ValueError`) | 2, and 1 for a bad option value | an unknown pass, intent or target, a bad option value |
//! | `InvalidModelError` | 1 | an unreadable or invalid model, a model tract cannot run |
//! | `OSError` | 1 | the output or a report cannot be written |
//! | `VerificationError` | 3 | the outputs differ; carries the figures |
//! | `InternalError` | 1 (101 for a panic) | a bug in npuopt |

use npuopt::cli::optimize_job::JobError;
use npuopt::cli::CliError;
use npuopt::optimize::OptimizeError;
use npuopt::verify::{VerifyError, VerifyReport};
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError};
use pyo3::prelude::*;

use crate::interrupt::Failure;

/// An instance of `npuopt._errors.<class>(args…)` as an error to raise.
fn raise<'py>(py: Python<'py>, class: &str, args: impl pyo3::call::PyCallArgs<'py>) -> PyErr {
    let made = py
        .import("npuopt._errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1(args));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

/// A JSON document as Python dicts and lists.
pub fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| PyOSError::new_err(format!("cannot encode JSON: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}

pub fn usage(py: Python<'_>, message: String) -> PyErr {
    raise(py, "UsageError", (message,))
}

pub fn invalid_model(py: Python<'_>, message: String) -> PyErr {
    raise(py, "InvalidModelError", (message,))
}

/// A mismatch, with the verification figures (`report::verification_json`)
/// and, for `verify_each`, the pass and the first rewrite that broke it.
pub fn mismatch(
    py: Python<'_>,
    message: String,
    report: &VerifyReport,
    failed_pass: Option<&str>,
    first_bad_rewrite: Option<serde_json::Value>,
) -> PyErr {
    let report = match json_to_py(py, &npuopt::report::verification_json(report)) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let rewrite = match first_bad_rewrite.map(|v| json_to_py(py, &v)).transpose() {
        Ok(r) => r,
        Err(e) => return e,
    };
    raise(
        py,
        "VerificationError",
        (message, report, failed_pass, rewrite),
    )
}

/// A failure of the run itself: an interrupt is raised again as it came,
/// a panic is an `InternalError`.
pub fn failure(py: Python<'_>, f: Failure) -> PyErr {
    match f {
        Failure::Interrupted(e) => e,
        Failure::Panic(message) => raise(
            py,
            "InternalError",
            (format!(
                "npuopt panicked (a bug; please report it with the model): {message}"
            ),),
        ),
    }
}

/// An error of the command line's kind, by its exit code and cause.
pub fn cli(py: Python<'_>, e: CliError) -> PyErr {
    let message = format!("{:#}", e.error);
    if e.code == npuopt::exit::USAGE {
        return usage(py, message);
    }
    for cause in e.error.chain() {
        if cause.is::<npuopt_targets::TargetError>() {
            return usage(py, message);
        }
        // `OptimizeError::Verify` carries its VerifyError in its message,
        // not as a source (so error chains print it once).
        let verify = cause.downcast_ref::<VerifyError>().or_else(|| {
            match cause.downcast_ref::<OptimizeError>() {
                Some(OptimizeError::Verify(v)) => Some(v),
                _ => None,
            }
        });
        match verify {
            Some(VerifyError::Options(_)) => return usage(py, message),
            Some(VerifyError::Cancelled) => return PyKeyboardInterrupt::new_err(message),
            _ => {}
        }
        if let Some(npuopt_ir::IrError::Write { .. }) = cause.downcast_ref() {
            return PyOSError::new_err(message);
        }
        if cause.is::<std::io::Error>() {
            return PyOSError::new_err(message);
        }
    }
    invalid_model(py, message)
}

/// An optimize run's error.
pub fn job(py: Python<'_>, e: JobError) -> PyErr {
    match e {
        JobError::Cli(e) => cli(py, e),
        JobError::Cancelled => PyKeyboardInterrupt::new_err("npuopt: cancelled"),
        JobError::Mismatch(e) => {
            let (failed_pass, rewrite) = match &e {
                OptimizeError::BrokenBy {
                    pass,
                    first_bad_rewrite,
                    ..
                } => (
                    Some(pass.as_str()),
                    first_bad_rewrite
                        .as_deref()
                        .map(npuopt::report::change_json),
                ),
                _ => (None, None),
            };
            match e.verify_report() {
                Some(report) => mismatch(py, e.to_string(), report, failed_pass, rewrite),
                None => invalid_model(py, e.to_string()),
            }
        }
    }
}
