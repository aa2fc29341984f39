//! A model as Python hands it over: a path, or the encoded model as
//! `bytes` (the package serializes an `onnx.ModelProto` to bytes first).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use npuopt::cli::optimize_job::Input;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

pub enum Source {
    Path(PathBuf),
    /// Borrows the Python `bytes` object's buffer and keeps the object
    /// alive: a model of any size is shared with Rust, never copied.
    Bytes(Bytes),
}

impl Source {
    pub fn extract(obj: &Bound<'_, PyAny>) -> PyResult<Source> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Source::Bytes(Bytes::from_owner(PyBackedBytes::from(
                b.clone(),
            ))));
        }
        obj.extract::<PathBuf>().map(Source::Path).map_err(|_| {
            let ty = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into());
            PyTypeError::new_err(format!(
                "expected an onnx.ModelProto, bytes or a path, got {ty}"
            ))
        })
    }

    /// The run's input; `base_dir` is where a model in memory finds its
    /// external data.
    pub fn input<'a>(&'a self, base_dir: Option<&'a Path>) -> Input<'a> {
        match self {
            Source::Path(p) => Input::File(p),
            Source::Bytes(b) => Input::Memory {
                bytes: b.clone(),
                dir: base_dir,
            },
        }
    }

    /// The model's encoded bytes (read from its file if it is one).
    pub fn bytes(&self) -> std::io::Result<Bytes> {
        match self {
            Source::Path(p) => std::fs::read(p).map(Bytes::from),
            Source::Bytes(b) => Ok(b.clone()),
        }
    }

    /// What the command line would call the model (its path).
    pub fn name(&self) -> String {
        match self {
            Source::Path(p) => p.display().to_string(),
            Source::Bytes(_) => "<memory>".into(),
        }
    }
}
