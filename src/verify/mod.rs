//! Numerical verification with tract: does a rewritten model still compute
//! what the original computed?
//!
//! [`verify_files`] and [`verify_bytes`] load a *reference* and a
//! *candidate* model with tract, feed both the same seeded random inputs and
//! compare every output, element by element:
//!
//! * **Inputs.** Every graph input that is not an initializer gets a tensor
//!   of its declared type and shape. Symbolic dims are resolved from
//!   [`VerifyOptions::input_shapes`]; a symbolic batch dim (the first dim of
//!   an input of rank ≥ 2, or any dim whose name contains `batch`) that is
//!   not overridden is set to 1 with a note in the report; any other
//!   symbolic dim is a [`VerifyError::Inputs`] naming the input and the dim.
//!   Values come from a splitmix64 stream seeded with
//!   [`VerifyOptions::seed`]: floats are standard normal, integers uniform in
//!   [`VerifyOptions::input_range`] (`[0, 10)` by default), booleans fair
//!   coin flips. Both models receive bit-identical tensors.
//! * **Outputs.** Outputs are matched by position and must agree in count,
//!   name, type and shape (otherwise [`VerifyError::OutputMismatch`]). A float
//!   output passes when `max|a − b| ≤ atol + rtol · max|ref|` over every
//!   element of every sample; a NaN or infinity in the candidate where the
//!   reference has a finite value fails. Integer and boolean outputs must be
//!   equal exactly.
//!
//! A model tract cannot load or run is an error naming the model and, as far
//! as tract's error chain allows, the node and the reason; it is never
//! reported as verified.
//!
//! ```no_run
//! use npuopt::verify::{verify_files, VerifyOptions};
//! use std::path::Path;
//!
//! let opts = VerifyOptions {
//!     input_shapes: vec![("input".into(), vec![1, 3, 224, 224])],
//!     ..VerifyOptions::default()
//! };
//! let report = verify_files(Path::new("model.onnx"), Path::new("model.opt.onnx"), &opts)?;
//! for o in &report.outputs {
//!     println!("{}: max abs err {:.3e}, cosine {:.6}", o.name, o.max_abs_err, o.cosine);
//! }
//! assert!(report.passed);
//! # Ok::<(), npuopt::verify::VerifyError>(())
//! ```

mod compare;
mod inputs;
mod load;
mod rng;

use std::path::Path;

use compare::Accumulator;
use load::{LoadedModel, Source};

/// How to verify: which inputs to draw and how close the outputs must be.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyOptions {
    /// Seed of the input generator. The same seed gives the same inputs on
    /// every run and every platform. Default 0.
    pub seed: u64,
    /// How many independent random input sets to run through both models.
    /// Default 1; must be at least 1.
    pub samples: usize,
    /// Concrete shapes for inputs, by input name (the CLI's
    /// `--input-shape NAME=1,3,224,224`). An override fixes every dim of that
    /// input, and its symbolic dims' values carry over to other inputs using
    /// the same dim names.
    pub input_shapes: Vec<(String, Vec<usize>)>,
    /// Range `[lo, hi)` integer inputs are drawn from: every integer `k`
    /// with `lo ≤ k < hi` equally likely (saturating at the type's bounds);
    /// `None` means `[0, 10)`. Float and boolean inputs ignore it.
    pub input_range: Option<(f64, f64)>,
    /// Relative tolerance, scaled by the largest magnitude in the reference
    /// output. Default `1e-4`.
    pub rtol: f32,
    /// Absolute tolerance. Default `1e-6`.
    pub atol: f32,
    /// Checked between loading, preparing and running each model on each
    /// sample: once it fires, verification ends with
    /// [`VerifyError::Cancelled`].
    pub cancel: npuopt_passes::Cancel,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            seed: 0,
            samples: 1,
            input_shapes: Vec::new(),
            input_range: None,
            rtol: 1e-4,
            atol: 1e-6,
            cancel: npuopt_passes::Cancel::never(),
        }
    }
}

/// How one output of the candidate compares with the reference's, over all
/// samples.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputComparison {
    /// The output's name (the same in both models).
    pub name: String,
    /// The output's concrete shape for the verified input shapes.
    pub shape: Vec<usize>,
    /// `max |candidate − reference|` over every element of every sample;
    /// infinite when the candidate has a NaN or infinity the reference does
    /// not have.
    pub max_abs_err: f64,
    /// `max_abs_err / max_abs_ref` (0 when both are 0, infinite when only the
    /// reference is all zeros).
    pub max_rel_err: f64,
    /// Cosine similarity of the two outputs, all samples concatenated (1 when
    /// both are all zeros). Non-finite elements are left out.
    pub cosine: f64,
    /// `max |reference|` over every finite element of every sample.
    pub max_abs_ref: f64,
    /// Whether `max_abs_err ≤ atol + rtol · max_abs_ref` (floats) or the
    /// outputs are identical (integers, booleans).
    pub passed: bool,
}

/// The result of a verification that ran: both models loaded and ran on
/// every sample, and their outputs have the same count, names, types and
/// shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyReport {
    /// One entry per output, in the models' output order.
    pub outputs: Vec<OutputComparison>,
    /// How many input sets were run.
    pub samples: usize,
    /// The seed the inputs were drawn with.
    pub seed: u64,
    /// Decisions taken along the way, e.g. "symbolic batch dim of 'input'
    /// set to 1", and the concrete input shapes used.
    pub notes: Vec<String>,
    /// True only if every output passed.
    pub passed: bool,
}

/// Why a verification could not be carried out. None of these means the
/// models agree.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum VerifyError {
    /// tract could not read, parse, analyse or optimize a model.
    #[error("tract could not load the {model}: {message}")]
    Load {
        /// Which model: "reference model 'a.onnx'" or "candidate model".
        model: String,
        /// tract's error chain, condensed into one line.
        message: String,
    },
    /// tract loaded a model but failed while running it.
    #[error("tract could not run the {model}: {message}")]
    Run {
        /// Which model.
        model: String,
        /// tract's error chain, condensed into one line.
        message: String,
    },
    /// The inputs could not be built: an unresolved symbolic dim, a bad
    /// override, an unsupported input type, or models whose inputs differ.
    #[error("inputs: {0}")]
    Inputs(String),
    /// The models' outputs differ in count, name, type or shape.
    #[error("outputs differ: {0}")]
    OutputMismatch(String),
    /// The options are unusable (e.g. `samples == 0`, a negative tolerance).
    #[error("invalid options: {0}")]
    Options(String),
    /// [`VerifyOptions::cancel`] fired before verification finished.
    #[error("verification cancelled")]
    Cancelled,
}

/// Verifies `candidate` against `reference`, both ONNX models in memory.
///
/// Models with external data cannot be verified from bytes (there is no
/// folder to read the data from); use [`verify_files`] for them.
pub fn verify_bytes(
    reference: &[u8],
    candidate: &[u8],
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    verify_sources(
        Source::Bytes {
            label: "reference model".into(),
            bytes: reference,
        },
        Source::Bytes {
            label: "candidate model".into(),
            bytes: candidate,
        },
        opts,
    )
}

/// Verifies the model at `candidate` against the model at `reference`.
/// External data is read from each model's folder.
pub fn verify_files(
    reference: &Path,
    candidate: &Path,
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    verify_sources(
        Source::Path {
            label: format!("reference model '{}'", reference.display()),
            path: reference,
        },
        Source::Path {
            label: format!("candidate model '{}'", candidate.display()),
            path: candidate,
        },
        opts,
    )
}

fn check_options(opts: &VerifyOptions) -> Result<(), VerifyError> {
    if opts.samples == 0 {
        return Err(VerifyError::Options("samples must be at least 1".into()));
    }
    if !(opts.rtol >= 0.0 && opts.rtol.is_finite()) {
        return Err(VerifyError::Options(format!(
            "rtol must be finite and non-negative, got {}",
            opts.rtol
        )));
    }
    if !(opts.atol >= 0.0 && opts.atol.is_finite()) {
        return Err(VerifyError::Options(format!(
            "atol must be finite and non-negative, got {}",
            opts.atol
        )));
    }
    if let Some((lo, hi)) = opts.input_range {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(VerifyError::Options(format!(
                "input range must be finite with lo < hi, got [{lo}, {hi})"
            )));
        }
    }
    Ok(())
}

fn verify_sources(
    reference: Source<'_>,
    candidate: Source<'_>,
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    check_options(opts)?;
    let go_on = || match opts.cancel.is_cancelled() {
        true => Err(VerifyError::Cancelled),
        false => Ok(()),
    };
    let mut notes = Vec::new();

    let ref_parsed = load::parse(&reference)?;
    go_on()?;
    let cand_parsed = load::parse(&candidate)?;
    go_on()?;

    let plan = inputs::plan(&ref_parsed, &cand_parsed, &opts.input_shapes, &mut notes)?;
    compare::check_output_names(&ref_parsed, &cand_parsed)?;

    let ref_model = LoadedModel::build(ref_parsed, &plan, &plan.reference_symbols, &mut notes)?;
    go_on()?;
    let cand_model = LoadedModel::build(cand_parsed, &plan, &plan.candidate_symbols, &mut notes)?;

    let mut gen = inputs::Generator::new(opts.seed, opts.input_range.unwrap_or((0.0, 10.0)));
    let mut accs: Vec<Accumulator> = Vec::new();
    for _ in 0..opts.samples {
        go_on()?;
        let tensors = gen.draw(&plan)?;
        let ref_out = ref_model.run(&tensors)?;
        go_on()?;
        let cand_out = cand_model.run(&tensors)?;
        drop(tensors);
        compare::accumulate(&mut accs, &ref_model.outputs, &ref_out, &cand_out)?;
    }

    let outputs: Vec<OutputComparison> = accs
        .into_iter()
        .map(|a| a.finish(opts.rtol as f64, opts.atol as f64, &mut notes))
        .collect();
    if outputs.is_empty() {
        notes.push("the models have no outputs: nothing was verified".into());
    }
    let passed = !outputs.is_empty() && outputs.iter().all(|o| o.passed);
    Ok(VerifyReport {
        outputs,
        samples: opts.samples,
        seed: opts.seed,
        notes,
        passed,
    })
}
