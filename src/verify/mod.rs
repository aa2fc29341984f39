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
mod discrete;
mod inputs;
mod load;
mod precision;
mod rng;

use std::path::Path;

use std::collections::HashSet;

use compare::Accumulator;
use load::{LoadedModel, Source};
use tract_onnx::prelude::{TValue, Tensor};

/// How to verify: which inputs to draw and how close the outputs must be.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyOptions {
    /// Seed of the input generator. The same seed gives the same inputs on
    /// every run and every platform. Default 0.
    pub seed: u64,
    /// How many independent random input sets to run through both models.
    /// Default 1; must be at least 1. The models run one after another,
    /// so every model's outputs on every sample are kept until the last
    /// has run.
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
    /// A fixed relative tolerance, scaled by the largest magnitude in the
    /// reference output, instead of the noise verdict: with `rtol` or
    /// `atol` set, an output passes when `max|a − b| ≤ atol + rtol ·
    /// max|ref|` (the unset one is `1e-4` resp. `1e-6`), compared with the
    /// input model run at its own precision. Default `None`: the noise
    /// verdict.
    pub rtol: Option<f32>,
    /// A fixed absolute tolerance instead of the noise verdict (see `rtol`).
    pub atol: Option<f32>,
    /// `k` of the noise verdict: an output passes when its error against
    /// the f64 reference is at most `k` times the input model's own.
    /// Default [`NOISE_FACTOR`].
    pub noise_factor: f64,
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
            rtol: None,
            atol: None,
            noise_factor: NOISE_FACTOR,
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
    /// `max |candidate − reference|`: the error the noise verdict judges
    /// (the reference is the input in f64, or the input itself when there
    /// is no f64 run). `None` with a fixed tolerance.
    pub err_vs_reference: Option<f64>,
    /// The input model's own error against the reference — its noise
    /// floor — and never below one rounding of the largest reference value
    /// (`ε · max_abs_ref`). `None` with a fixed tolerance and for exactly
    /// compared outputs.
    pub noise_floor: Option<f64>,
    /// `err_vs_reference / noise_floor` (0 when the error is 0).
    pub ratio: Option<f64>,
    /// The largest error that passes: `k · noise_floor`, or `atol + rtol ·
    /// max_abs_ref` with a fixed tolerance; 0 for exactly compared outputs.
    pub tolerance: f64,
    /// `exact`, `within noise`, `within tolerance` (fixed), `within noise
    /// up to ties` (discrete outputs) or `mismatch`.
    pub verdict: String,
    /// How the output was compared: `elementwise`, `exact` (integers,
    /// booleans) or `rows up to ties` (outputs computed from `TopK`,
    /// `ArgMax`, `NonZero`, … whose feeding tensors were compared instead).
    pub compared_as: String,
    /// Whether the verdict accepts the output.
    pub passed: bool,
}

/// `k` of the noise verdict: how many times the input model's own error
/// against the f64 reference the candidate's may be. Exact rewrites only
/// reassociate float arithmetic, so their error is of the same order as the
/// input's (measured ratios 0.2–3 on the committed fixtures); a real change
/// such as a weight off by 1 % is 10³–10⁵ times the floor.
pub const NOISE_FACTOR: f64 = 8.0;

/// The models' times, equal to any other (see [`VerifyReport::timings`]).
#[derive(Clone, Debug, Default)]
pub struct Timings(pub Vec<ModelTiming>);

impl PartialEq for Timings {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The time one model took in a verification.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelTiming {
    /// Which model ("reference model 'a.onnx' in f64", …).
    pub model: String,
    /// Seconds to parse, type, optimize and plan it with tract.
    pub load_s: f64,
    /// Seconds running it, all samples together.
    pub run_s: f64,
}

/// What the outputs were measured against.
#[derive(Clone, Debug, PartialEq)]
pub enum Reference {
    /// The input model evaluated in f64; the noise floor is the input model
    /// run at its own precision.
    F64,
    /// A low-precision (f16/bf16) model tract cannot run natively: both
    /// models evaluated in f64 from their own parameters; the noise floor is
    /// the input's parameters rounded once more at their precision.
    F64LowPrecision(String),
    /// No f64 reference — tract cannot evaluate the input in f64, or the
    /// model quantizes, which makes an f64 floor meaningless (the reason
    /// says which): the reference is the input at its own precision, and
    /// the noise floor its change on inputs perturbed at the rounding
    /// level.
    Perturbed(String),
    /// An explicit `rtol`/`atol`: the input at its own precision, no noise
    /// floor.
    Fixed,
}

impl Reference {
    /// One line for reports.
    pub fn describe(&self) -> String {
        match self {
            Reference::F64 => "input evaluated in f64; noise floor: the input at its own precision".into(),
            Reference::F64LowPrecision(dt) => format!(
                "both models evaluated in f64; noise floor: the input's parameters rounded once more at {dt}"
            ),
            Reference::Perturbed(why) => format!(
                "input at its own precision (no f64 run: {why}); noise floor: the input on inputs perturbed at the rounding level"
            ),
            Reference::Fixed => "input at its own precision, fixed tolerance".into(),
        }
    }
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
    /// What the outputs were measured against.
    pub reference: Reference,
    /// The intermediate values discrete outputs are decided on (the feeds
    /// of `TopK`, `ArgMax`, …, and `TopK`'s values), compared like
    /// outputs. They count only for the discrete outputs computed from
    /// them.
    pub intermediates: Vec<OutputComparison>,
    /// Where the time went: per model tract loaded, seconds to load
    /// (parse, type, optimize, plan) and to run (all samples). Not part of
    /// a report's equality (reports are deterministic; times are not).
    pub timings: Timings,
    /// `k` of the noise verdict (unused with a fixed tolerance).
    pub noise_factor: f64,
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
    verify_encoded(reference, None, candidate, opts)
}

/// [`verify_bytes`], the reference's external data (if any) read from
/// `reference_dir`.
pub(crate) fn verify_encoded(
    reference: &[u8],
    reference_dir: Option<&Path>,
    candidate: &[u8],
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    verify_sources(
        Source::Bytes {
            label: "reference model".into(),
            bytes: reference,
            dir: reference_dir,
        },
        Source::Bytes {
            label: "candidate model".into(),
            bytes: candidate,
            dir: None,
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
    for (what, v) in [("rtol", opts.rtol), ("atol", opts.atol)] {
        if let Some(v) = v {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(VerifyError::Options(format!(
                    "{what} must be finite and non-negative, got {v}"
                )));
            }
        }
    }
    if !(opts.noise_factor >= 1.0 && opts.noise_factor.is_finite()) {
        return Err(VerifyError::Options(format!(
            "the noise factor must be finite and at least 1, got {}",
            opts.noise_factor
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

/// One model's outputs on every sample, and what it cost.
struct Ran {
    outputs: Vec<Vec<Tensor>>,
    timing: ModelTiming,
}

/// The runs a verification made, and how they are compared.
enum Runs {
    /// Reference, candidate and noise: `ref64` vs `cand`, `noise` vs `ref64`.
    F64 {
        ref64: Ran,
        noise: Ran,
        cand: Ran,
    },
    /// Like `F64`, with the candidate in f64 and the noise model the input in
    /// f64 with perturbed parameters.
    /// `cand_noise64` is the candidate with its parameters rounded once
    /// more: an exact rewrite's error is one rounding of the candidate's
    /// (new) parameters, so the floor is the smaller of the two.
    Low {
        ref64: Ran,
        cand64: Ran,
        noise64: Ran,
        cand_noise64: Ran,
        eps: f64,
    },
    /// `reference` vs `cand`; the reference on perturbed inputs
    /// (`shaken`) as noise.
    Perturbed {
        reference: Ran,
        shaken: Vec<Vec<Tensor>>,
        cand: Ran,
        eps: f64,
    },
    Fixed {
        reference: Ran,
        cand: Ran,
    },
}

impl Runs {
    fn ran(&self) -> Vec<&Ran> {
        match self {
            Runs::F64 { ref64, noise, cand } => vec![ref64, noise, cand],
            Runs::Low {
                ref64,
                cand64,
                noise64,
                cand_noise64,
                ..
            } => vec![ref64, cand64, noise64, cand_noise64],
            Runs::Perturbed {
                reference, cand, ..
            }
            | Runs::Fixed { reference, cand } => vec![reference, cand],
        }
    }

    /// Sample `s`'s outputs as the comparison reads them.
    fn sample(&self, s: usize) -> compare::Sample<'_> {
        match self {
            // The input's own run is the noise against the f64 reference.
            Runs::F64 { ref64, noise, cand } => compare::Sample {
                input: &noise.outputs[s],
                reference: &ref64.outputs[s],
                candidate: &cand.outputs[s],
                noise: Some(&noise.outputs[s]),
                candidate_noise: None,
            },
            Runs::Low {
                ref64,
                cand64,
                noise64,
                cand_noise64,
                ..
            } => compare::Sample {
                input: &ref64.outputs[s],
                reference: &ref64.outputs[s],
                candidate: &cand64.outputs[s],
                noise: Some(&noise64.outputs[s]),
                candidate_noise: Some(&cand_noise64.outputs[s]),
            },
            Runs::Perturbed {
                reference,
                shaken,
                cand,
                ..
            } => compare::Sample {
                input: &reference.outputs[s],
                reference: &reference.outputs[s],
                candidate: &cand.outputs[s],
                noise: Some(&shaken[s]),
                candidate_noise: None,
            },
            Runs::Fixed { reference, cand } => compare::Sample {
                input: &reference.outputs[s],
                reference: &reference.outputs[s],
                candidate: &cand.outputs[s],
                noise: None,
                candidate_noise: None,
            },
        }
    }
}

/// The samples' input tensors, drawn from the seed each time they are
/// read: every model gets the same tensors, and none are kept. With
/// `shake`, each sample's copy perturbed at that epsilon is drawn right
/// after it.
struct Samples<'a> {
    opts: &'a VerifyOptions,
    plan: &'a inputs::Plan,
    shake: Option<f64>,
}

impl Samples<'_> {
    fn each(
        &self,
        mut f: impl FnMut(Vec<TValue>, Option<Vec<TValue>>) -> Result<(), VerifyError>,
    ) -> Result<(), VerifyError> {
        let range = self.opts.input_range.unwrap_or((0.0, 10.0));
        let mut gen = inputs::Generator::new(self.opts.seed, range);
        for _ in 0..self.opts.samples {
            let tensors = gen.draw(self.plan)?;
            let shaken = match self.shake {
                Some(eps) => Some(gen.perturb(&tensors, eps)?),
                None => None,
            };
            f(tensors, shaken)?;
        }
        Ok(())
    }
}

/// Runs a loaded model on every sample, then drops it (and its
/// parameters); with `on_shaken`, also on each sample's perturbed copy,
/// whose outputs come second.
fn run_all(
    model: LoadedModel,
    samples: &Samples<'_>,
    on_shaken: bool,
    go_on: &dyn Fn() -> Result<(), VerifyError>,
) -> Result<(Ran, Vec<Vec<Tensor>>), VerifyError> {
    let (mut outputs, mut shaken_outputs) = (Vec::new(), Vec::new());
    samples.each(|tensors, shaken| {
        go_on()?;
        outputs.push(model.run(&tensors)?);
        if let (true, Some(shaken)) = (on_shaken, shaken) {
            shaken_outputs.push(model.run(&shaken)?);
        }
        Ok(())
    })?;
    let timing = ModelTiming {
        model: model.label.clone(),
        load_s: model.load_s,
        run_s: model.run_s.get(),
    };
    Ok((Ran { outputs, timing }, shaken_outputs))
}

/// Failures that mean tract cannot evaluate a model (as opposed to bad
/// inputs, a cancellation, …).
fn is_tract_failure(e: &VerifyError) -> bool {
    matches!(e, VerifyError::Load { .. } | VerifyError::Run { .. })
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

    // What both models declare, and the inputs, from the graphs without
    // their parameters' values (needed only to compare the parameters of
    // low-precision models).
    let (mut ref_proto, _) = load::decode(&reference, reference.label())?;
    let low = precision::low_precision(&ref_proto);
    let quantizes = precision::quantizes(&ref_proto);
    if low.is_none() {
        load::strip_initializer_values(&mut ref_proto);
    }
    let (mut cand_proto, _) = load::decode(&candidate, candidate.label())?;
    let unchanged = match low {
        Some(_) => precision::shared_initializers(&ref_proto, &cand_proto),
        None => HashSet::new(),
    };
    load::strip_initializer_values(&mut ref_proto);
    load::strip_initializer_values(&mut cand_proto);
    let n_outputs = ref_proto.graph.as_ref().map_or(0, |g| g.output.len());
    let decisions = discrete::analyse(&mut ref_proto, &mut cand_proto);
    let ref_decl = load::declared(reference.label().to_string(), ref_proto)?;
    let cand_decl = load::declared(candidate.label().to_string(), cand_proto)?;
    go_on()?;
    let plan = inputs::plan(&ref_decl, &cand_decl, &opts.input_shapes, &mut notes)?;
    compare::check_output_names(&ref_decl, &cand_decl)?;
    let output_names = ref_decl.outputs.clone();
    drop((ref_decl, cand_decl));

    let keep: Vec<bool> = output_names
        .iter()
        .enumerate()
        .map(|(i, n)| i >= n_outputs || decisions.downstream.contains(n))
        .collect();
    let fixed = opts.rtol.is_some() || opts.atol.is_some();
    let eps = precision::epsilon(low);

    let samples = Samples {
        opts,
        plan: &plan,
        shake: None,
    };
    // Each model is loaded, run on every sample and dropped before the
    // next is loaded.
    let ref_spec = load::Spec {
        source: &reference,
        extra_outputs: &decisions.extra,
        symbols: &plan.reference_symbols,
    };
    let cand_spec = load::Spec {
        source: &candidate,
        extra_outputs: &decisions.extra,
        symbols: &plan.candidate_symbols,
    };
    let ref_label = reference.label();
    let cand_label = candidate.label();
    let native = load::Form::Native;
    let f64_form = |perturb: Option<f64>, unchanged| load::Form::F64 { perturb, unchanged };
    let none = HashSet::new();
    let run_both = |spec: &load::Spec<'_>,
                    label: String,
                    form: &load::Form<'_>,
                    samples: &Samples<'_>,
                    notes: &mut Vec<String>|
     -> Result<(Ran, Vec<Vec<Tensor>>), VerifyError> {
        go_on()?;
        let model = LoadedModel::load(spec, label, form, &plan, notes)?;
        run_all(model, samples, true, &go_on)
    };
    let run = |spec: &load::Spec<'_>,
               label: String,
               form: &load::Form<'_>,
               samples: &Samples<'_>,
               notes: &mut Vec<String>|
     -> Result<Ran, VerifyError> {
        go_on()?;
        let model = LoadedModel::load(spec, label, form, &plan, notes)?;
        Ok(run_all(model, samples, false, &go_on)?.0)
    };

    let (runs, reference_kind) = if fixed {
        let reference = run(&ref_spec, ref_label.into(), &native, &samples, &mut notes)?;
        let cand = run(&cand_spec, cand_label.into(), &native, &samples, &mut notes)?;
        (Runs::Fixed { reference, cand }, Reference::Fixed)
    } else {
        let f64_label = format!("{ref_label} in f64");
        let ref64 = match quantizes {
            Some(why) => Err(why),
            None => match run(
                &ref_spec,
                f64_label,
                &f64_form(None, &none),
                &samples,
                &mut notes,
            ) {
                Err(e) if is_tract_failure(&e) => Err(e.to_string()),
                ran => Ok(ran?),
            },
        };
        match ref64 {
            // No meaningful f64 reference (see `precision::quantizes`), or
            // tract cannot load or run the input in f64: the floor is the
            // input's change on inputs perturbed at the rounding level.
            Err(why) => {
                notes.push(format!("no f64 reference: {why}"));
                let samples = Samples {
                    shake: Some(eps),
                    ..samples
                };
                let (reference, shaken) =
                    run_both(&ref_spec, ref_label.into(), &native, &samples, &mut notes)?;
                let cand = run(&cand_spec, cand_label.into(), &native, &samples, &mut notes)?;
                (
                    Runs::Perturbed {
                        reference,
                        shaken,
                        cand,
                        eps,
                    },
                    Reference::Perturbed(why),
                )
            }
            Ok(ref64) => {
                // Where tract runs a low-precision model at its own
                // precision, that run is the floor and the f64 evaluations
                // of the candidate below are not needed.
                let noise = run(&ref_spec, ref_label.into(), &native, &samples, &mut notes);
                let cand = match &noise {
                    Ok(_) => run(&cand_spec, cand_label.into(), &native, &samples, &mut notes),
                    Err(e) => Err(e.clone()),
                };
                match (noise, cand, low) {
                    (Ok(noise), Ok(cand), _) => (Runs::F64 { ref64, noise, cand }, Reference::F64),
                    (Err(e), _, Some(dt)) | (_, Err(e), Some(dt)) if is_tract_failure(&e) => {
                        notes.push(format!("tract cannot run the models at {}: {e}", dt.name()));
                        let rounded =
                            |label: &str| format!("{label} in f64, parameters rounded once more");
                        let cand64 = run(
                            &cand_spec,
                            format!("{cand_label} in f64"),
                            &f64_form(None, &none),
                            &samples,
                            &mut notes,
                        )?;
                        let noise64 = run(
                            &ref_spec,
                            rounded(ref_label),
                            &f64_form(Some(eps), &none),
                            &samples,
                            &mut notes,
                        )?;
                        let cand_noise64 = run(
                            &cand_spec,
                            rounded(cand_label),
                            &f64_form(Some(eps), &unchanged),
                            &samples,
                            &mut notes,
                        )?;
                        (
                            Runs::Low {
                                ref64,
                                cand64,
                                noise64,
                                cand_noise64,
                                eps,
                            },
                            Reference::F64LowPrecision(dt.name().to_string()),
                        )
                    }
                    (Err(e), _, _) | (_, Err(e), _) => return Err(e),
                }
            }
        }
    };

    let mut accs: Vec<Accumulator> = Vec::new();
    for s in 0..opts.samples {
        compare::accumulate(&mut accs, &output_names, runs.sample(s), n_outputs, &keep)?;
    }
    let criterion = match (&runs, opts.rtol, opts.atol) {
        (Runs::Fixed { .. }, rtol, atol) => compare::Criterion::Fixed {
            rtol: rtol.unwrap_or(1e-4) as f64,
            atol: atol.unwrap_or(1e-6) as f64,
        },
        (Runs::Low { eps, .. } | Runs::Perturbed { eps, .. }, _, _) => compare::Criterion::Noise {
            k: opts.noise_factor,
            eps: *eps,
        },
        (Runs::F64 { .. }, _, _) => compare::Criterion::Noise {
            k: opts.noise_factor,
            eps,
        },
    };
    let timings = Timings(runs.ran().iter().map(|r| r.timing.clone()).collect());
    drop(runs);
    let mut outputs: Vec<OutputComparison> = accs
        .iter()
        .map(|a| a.finish(criterion, &mut notes))
        .collect();
    let intermediates = outputs.split_off(n_outputs.min(outputs.len()));
    judge_discrete(&decisions, &accs, &mut outputs, &intermediates, &mut notes);
    if outputs.is_empty() {
        notes.push("the models have no outputs: nothing was verified".into());
    }
    let passed = !outputs.is_empty() && outputs.iter().all(|o| o.passed);
    Ok(VerifyReport {
        outputs,
        samples: opts.samples,
        seed: opts.seed,
        reference: reference_kind,
        noise_factor: opts.noise_factor,
        intermediates,
        timings,
        notes,
        passed,
    })
}

/// Discrete outputs that failed element by element: accepted as rows up to
/// ties when their feeds pass (see [`discrete`]).
fn judge_discrete(
    decisions: &discrete::Decisions,
    accs: &[Accumulator],
    outputs: &mut [OutputComparison],
    intermediates: &[OutputComparison],
    notes: &mut Vec<String>,
) {
    let n_out = outputs.len();
    let find = |name: &str| {
        intermediates
            .iter()
            .position(|i| i.name == name)
            .map(|i| i + n_out)
            .or_else(|| outputs.iter().position(|o| o.name == name))
    };
    let mut feeds_ok = !decisions.nodes.is_empty();
    let mut failed_feed: Option<String> = None;
    let mut feed_ix = Vec::new();
    for node in &decisions.nodes {
        match find(&node.feed) {
            Some(ix) if accs[ix].unusable.is_none() => {
                let feed = if ix >= n_out {
                    &intermediates[ix - n_out]
                } else {
                    &outputs[ix]
                };
                feeds_ok &= feed.passed;
                if !feed.passed {
                    failed_feed.get_or_insert_with(|| feed.name.clone());
                }
                let values_shape = node
                    .values
                    .as_deref()
                    .and_then(find)
                    .map(|v| accs[v].shape().to_vec());
                feed_ix.push((node, ix, values_shape, feed.tolerance));
            }
            _ => feeds_ok = false,
        }
    }
    for (ix, o) in outputs.iter_mut().enumerate() {
        if !decisions.downstream.contains(&o.name) {
            continue;
        }
        // A decision flipped by rounding in the noise run inflates the
        // floor of everything computed from it: such an output passes on
        // its own only if the tensors the decisions are made on agree too.
        if o.passed && o.verdict != "exact" {
            if let Some(feed) = &failed_feed {
                o.passed = false;
                o.verdict = "mismatch".into();
                notes.push(format!(
                    "output '{}' is within its noise floor, but it is computed from a decision \
                     whose input '{feed}' differs beyond noise",
                    o.name
                ));
            }
            continue;
        }
        if o.passed {
            continue;
        }
        if !feeds_ok {
            notes.push(format!(
                "output '{}' is computed from a decision ({}) but the tensors it is made on \
                 could not all be compared, or differ: compared element by element",
                o.name,
                decisions
                    .nodes
                    .iter()
                    .map(|n| format!("{} '{}'", n.op, n.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        }
        let Some(kept) = accs[ix].kept.as_ref() else {
            continue;
        };
        let mut ok = true;
        let mut worst = (0, 0);
        for (s, (a, b)) in kept.iter().enumerate() {
            let mut ties = 0;
            for (node, f, values_shape, tol) in &feed_ix {
                let feed = &accs[*f];
                let Some(samples) = feed.kept.as_ref() else {
                    continue;
                };
                let rank = feed.shape().len() as i64;
                let axis = if node.axis < 0 {
                    node.axis + rank
                } else {
                    node.axis
                };
                let k = values_shape
                    .as_ref()
                    .and_then(|v| v.get(axis.max(0) as usize).copied());
                ties += discrete::near_ties(node, &samples[s].0, feed.shape(), k, *tol);
            }
            match discrete::unmatched_rows(a, b, &o.shape, o.tolerance) {
                Some(u) if u <= ties => worst = worst.max((u, ties)),
                _ => ok = false,
            }
        }
        if ok {
            o.passed = true;
            o.verdict = "within noise up to ties".into();
            o.compared_as = "rows up to ties".into();
            notes.push(format!(
                "output '{}' is computed from a decision: its feeds match within noise and its \
                 rows match as a set except {} row(s), with {} near-tie(s) at the decision",
                o.name, worst.0, worst.1
            ));
        }
    }
}
