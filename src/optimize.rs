//! The optimize pipeline as a library call.

use npuopt_ir::Model;

#[derive(Clone, Debug, Default)]
pub struct OptimizeOptions {
    /// Pass names to run, in order (already resolved).
    pub passes: Vec<&'static str>,
    /// Check the result against the input with tract.
    pub verify: bool,
}

#[derive(Clone, Debug)]
pub struct OptimizeOutcome {
    /// True when the result was verified numerically against the input.
    pub verified: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OptimizeError {
    #[error(transparent)]
    Ir(#[from] npuopt_ir::IrError),
    #[error("verification is not available yet: pass --no-verify")]
    VerifyUnavailable,
}

/// Runs the passes on `model` in place.
pub fn optimize(
    model: &mut Model,
    opts: &OptimizeOptions,
) -> Result<OptimizeOutcome, OptimizeError> {
    debug_assert!(opts.passes.is_empty(), "no passes are registered yet");
    model.graph.validate()?;
    if opts.verify {
        return Err(OptimizeError::VerifyUnavailable);
    }
    Ok(OptimizeOutcome { verified: false })
}
