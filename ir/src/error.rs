//! Errors of the IR crate: every one names the tensor, value or node at fault.

use std::path::PathBuf;

/// Why a model could not be imported, validated or exported.
#[derive(Debug, thiserror::Error)]
pub enum IrError {
    #[error("cannot read '{path}': {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not an ONNX model: the bytes do not decode as a protobuf ModelProto ({0})")]
    Decode(String),
    #[error("the model has no graph")]
    NoGraph,
    #[error("node '{node}' ({op_type}): input '{input}' is produced by no node, graph input or initializer")]
    UndefinedInput {
        node: String,
        op_type: String,
        input: String,
    },
    #[error("value '{value}' is produced more than once ({first} and {second})")]
    ProducedTwice {
        value: String,
        first: String,
        second: String,
    },
    #[error("the graph has a cycle through node '{node}' ({op_type})")]
    Cycle { node: String, op_type: String },
    #[error("graph output '{0}' is produced by no node, graph input or initializer")]
    UndefinedOutput(String),
    #[error("tensor '{tensor}': {message}")]
    BadTensor { tensor: String, message: String },
    #[error("tensor '{tensor}': external data: {message}")]
    ExternalData { tensor: String, message: String },
    #[error("node '{node}' ({op_type}): {message}")]
    BadNode {
        node: String,
        op_type: String,
        message: String,
    },
    #[error("invalid graph: {0}")]
    Invalid(String),
    /// A requested input shape does not fit the model.
    #[error("input shape: {0}")]
    InputShape(String),
    #[error("cannot write '{path}': {message}")]
    Write { path: PathBuf, message: String },
}

pub type Result<T, E = IrError> = std::result::Result<T, E>;
