//! npuopt: an ONNX graph optimizer for NPUs.
//!
//! The library behind the `npuopt` command, for deployment pipelines that
//! call it without a shell: load a model, optimize it, verify the result
//! against the input with tract, inspect it. Every step returns typed
//! results and typed errors; nothing is written unless you write it.
//!
//! ```
//! use npuopt::{load, optimize_model, OptimizeOptions, VerifyOptions};
//!
//! let model = load("fixtures/real/repvgg_ts.onnx")?;
//! let before = npuopt::summarize(&model).nodes;
//! let optimized = optimize_model(
//!     model,
//!     &OptimizeOptions {
//!         passes: npuopt::default_passes(),
//!         verify: Some(VerifyOptions::default()),
//!         ..Default::default()
//!     },
//! )?;
//! let verification = optimized.outcome.verification.as_ref().expect("verified");
//! assert!(verification.passed);
//! assert!(optimized.summary.nodes < before);
//! // `optimized.bytes` is the ONNX model, ready to write or ship.
//! assert!(!optimized.bytes.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cli;
pub mod exit;
pub mod inspect;
pub mod optimize;
pub mod quant_view;
pub mod report;
pub mod report_html;
pub mod verify;

pub use inspect::{summarize, ModelSummary};
pub use npuopt_ir as ir;
pub use npuopt_ir::{IrError, Model};
pub use optimize::{
    optimize, optimize_with_passes, OptimizeError, OptimizeOptions, OptimizeOutcome,
};
pub use verify::{verify_bytes, verify_files, VerifyError, VerifyOptions, VerifyReport};

/// Loads and validates a model file; external data is read from its folder.
pub fn load(path: impl AsRef<std::path::Path>) -> Result<Model, IrError> {
    npuopt_ir::import::load(path.as_ref())
}

/// Loads and validates a model from memory (without external data).
pub fn load_bytes(bytes: impl Into<bytes::Bytes>) -> Result<Model, IrError> {
    npuopt_ir::import::from_bytes(bytes.into(), None)
}

/// The passes the default pipeline runs, in order.
pub fn default_passes() -> Vec<&'static str> {
    npuopt_passes::resolve_pass_list(None, None).expect("the default pipeline resolves")
}

/// An optimized model: its encoded bytes, what the pipeline did (and the
/// verification figures), and a summary of the result.
#[derive(Clone, Debug)]
pub struct Optimized {
    pub bytes: Vec<u8>,
    pub outcome: OptimizeOutcome,
    pub summary: ModelSummary,
    pub model: Model,
}

/// Optimizes `model` and encodes the result; see [`optimize()`](crate::optimize::optimize) for the
/// in-place form. A verification mismatch is an [`OptimizeError::Mismatch`].
pub fn optimize_model(
    mut model: Model,
    opts: &OptimizeOptions,
) -> Result<Optimized, OptimizeError> {
    let outcome = optimize(&mut model, opts)?;
    let bytes = model.to_bytes()?;
    let summary = summarize(&model);
    Ok(Optimized {
        bytes,
        outcome,
        summary,
        model,
    })
}
