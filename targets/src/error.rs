//! Errors of loading a target description.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot read target file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML is malformed or does not fit the schema. `field` is the
    /// dotted key path (`conv.kernel_eff`) when known; `message` says what
    /// was expected.
    #[error("{file}{}: {}{message}", location(*.line, *.column), field_prefix(.field))]
    Schema {
        file: String,
        line: usize,
        column: usize,
        field: Option<String>,
        message: String,
    },
    #[error("unknown target '{name}'; built-in targets: {}", .known.join(", "))]
    UnknownTarget { name: String, known: Vec<String> },
}

fn location(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

fn field_prefix(field: &Option<String>) -> String {
    match field {
        Some(f) => format!("field `{f}`: "),
        None => String::new(),
    }
}

pub type Result<T, E = TargetError> = std::result::Result<T, E>;
