//! The optimize pipeline as a library call: passes, then verification.

use std::sync::Arc;

use npuopt_ir::Model;
use npuopt_passes::manager::run_passes;
pub use npuopt_passes::{Cancel, Decision, Intent};
use npuopt_passes::{Change, GateOptions, Pass, PipelineError, PipelineOptions, PipelineReport};
use npuopt_targets::{Estimate, Target};

use crate::verify::{verify_encoded, VerifyError, VerifyOptions, VerifyReport};

/// The encoded input verification compares with, and its external data's
/// folder.
type Encoded<'a> = (&'a [u8], Option<&'a std::path::Path>);

#[derive(Clone, Debug, Default)]
pub struct OptimizeOptions {
    /// Pass names to run, in order (see [`npuopt_passes::resolve_pass_list`]).
    pub passes: Vec<&'static str>,
    /// Check the result against the input with tract; `None` skips it.
    pub verify: Option<VerifyOptions>,
    /// Verify after every pass that changed the graph, and name the first
    /// pass — and rewrite — that breaks numerics.
    pub verify_each: bool,
    /// When verification cannot run (tract cannot load or run a model),
    /// return the result anyway with [`OptimizeOutcome::unverified`] set
    /// and the reason in the model's metadata ([`UNVERIFIED_KEY`]) instead
    /// of [`OptimizeError::Verify`]. A mismatch is still an error.
    pub allow_unverified: bool,
    /// Stop after this many rewrites in total (bisection by hand).
    pub max_rewrites: Option<usize>,
    /// Write the IR text dump after the named pass to the file.
    pub dump_after: Vec<(String, std::path::PathBuf)>,
    /// The NPU whose cost model gates the hardware passes, and whose
    /// estimates before and after the outcome reports. Without one the
    /// hardware passes do nothing. (With one, include the hardware passes
    /// in `passes`: [`npuopt_passes::resolve_pass_list_for`].)
    pub target: Option<Arc<Target>>,
    /// Deploy (minimise estimated latency) or capacity (add exact,
    /// trainable capacity while the estimate stays within the input's; the
    /// output is marked in `metadata_props`).
    pub intent: Intent,
    /// Passes applied whatever the cost model says (`--force-pass`).
    pub force_passes: Vec<String>,
    /// Concrete shapes for graph inputs (`--input-shape NAME=1,3,640,640`):
    /// pinned for the whole run — inference, passes, cost model — and
    /// declared by the written model. Verification compares with the model
    /// as given, at these shapes (pass them in `verify.input_shapes` too).
    pub input_shapes: Vec<(String, Vec<i64>)>,
    /// Stops the run at its next check — before every pass and rewrite,
    /// between verification steps — with [`OptimizeError::Cancelled`]: how
    /// a caller honours Ctrl-C or a deadline (the Python package turns a
    /// `KeyboardInterrupt` into it). It also stops verification, whatever
    /// `verify.cancel` says.
    pub cancel: Cancel,
    /// The encoded model `model` was imported from, unchanged, and the
    /// folder of its external data, when the caller has them: verification
    /// reads the input from these bytes instead of encoding `model` again
    /// (and so also checks the import). `None`: `model` is encoded.
    pub source: Option<(bytes::Bytes, Option<std::path::PathBuf>)>,
    /// Change notes without content hashes, for a run that shows no notes
    /// (see [`PipelineOptions::skip_note_hashes`]).
    pub skip_note_hashes: bool,
}

/// Metadata key marking the intent of an optimized model.
pub const INTENT_KEY: &str = "npuopt.intent";
/// Metadata key with a human note on a capacity model.
pub const NOTE_KEY: &str = "npuopt.note";
/// Metadata key recording why an output was written unverified
/// (`--allow-unverified`): `NOT VERIFIED: <reason>`.
pub const UNVERIFIED_KEY: &str = "npuopt.verification";
/// Metadata key naming the target a capacity model was shaped for.
pub const TARGET_KEY: &str = "npuopt.target";

#[derive(Clone, Debug)]
pub struct OptimizeOutcome {
    pub pipeline: PipelineReport,
    /// The verification figures, when verification ran.
    pub verification: Option<VerifyReport>,
    /// Why verification could not run, when `allow_unverified` let the run
    /// go on without it.
    pub unverified: Option<String>,
    /// The target's estimates of the model before and after (with a
    /// target). Estimates of an analytic cost model, not measurements.
    pub cost: Option<CostOutcome>,
    /// The symbolic dims `input_shapes` bound, by name.
    pub pinned_symbols: Vec<(String, i64)>,
}

/// A target's estimates before and after optimization.
#[derive(Clone, Debug)]
pub struct CostOutcome {
    pub target: String,
    pub intent: Intent,
    pub before: Estimate,
    /// True when the input's shapes were partly unknown (exports that
    /// compute shapes at run time), so `before` is the estimate of the
    /// input after the shape-resolving cleanup passes (fold-constants,
    /// eliminate-identity, eliminate-dead) — otherwise unknown layers would
    /// count as free.
    pub before_cleaned: bool,
    pub after: Estimate,
    /// `--intent capacity`'s budget in estimated cycles (see
    /// `GateOptions::capacity_budget`); `None` for deploy runs.
    pub capacity_budget: Option<u64>,
}

/// Passes that resolve shapes without changing any arithmetic.
pub(crate) const CLEANUP: [&str; 3] = ["fold-constants", "eliminate-identity", "eliminate-dead"];

/// The estimate of the input; when some of its shapes are unknown, of the
/// input after [`CLEANUP`] if that knows more of them.
fn baseline_estimate(model: &Model, t: &Target) -> (Estimate, bool) {
    let raw = npuopt_targets::estimate(&model.graph, t);
    if raw.unsized_layers == 0 {
        return (raw, false);
    }
    let mut clean = model.clone();
    if npuopt_passes::run_pipeline(&mut clean, &CLEANUP, Default::default()).is_err() {
        return (raw, false);
    }
    let cleaned = npuopt_targets::estimate(&clean.graph, t);
    if cleaned.unsized_layers < raw.unsized_layers {
        (cleaned, true)
    } else {
        (raw, false)
    }
}

/// What the user can do when verification cannot run: the shape advice
/// only when the message does not already give it for a named input.
fn what_to_do(e: &VerifyError) -> &'static str {
    if e.to_string().contains("--input-shape") {
        "or skip verification with --no-verify (--allow-unverified writes the output marked \
         NOT VERIFIED)"
    } else {
        "give concrete shapes with --input-shape NAME=D,D,… if that is the cause, or skip \
         verification with --no-verify (--allow-unverified writes the output marked NOT VERIFIED)"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OptimizeError {
    #[error(transparent)]
    Ir(#[from] npuopt_ir::IrError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Verification could not run. (Not an error `source`: the message
    /// already carries it, and error chains would print it twice.)
    #[error("verification could not run: {}; {}", .0, what_to_do(.0))]
    Verify(VerifyError),
    /// The optimized model does not match the input.
    #[error("verification failed: {summary}")]
    Mismatch {
        summary: String,
        report: Box<VerifyReport>,
    },
    /// `--verify-each` found the pass (and rewrite) that breaks numerics.
    #[error("verification failed after pass {pass}{}: {summary}", first_bad_rewrite.as_ref().map(|c| format!(" (first bad rewrite: {} — {})", c.rule, c.note)).unwrap_or_default())]
    BrokenBy {
        pass: String,
        first_bad_rewrite: Option<Box<Change>>,
        summary: String,
        report: Box<VerifyReport>,
    },
    #[error("cannot write dump: {0}")]
    Dump(std::io::Error),
    /// [`OptimizeOptions::cancel`] fired; the model must be discarded.
    #[error("cancelled")]
    Cancelled,
}

impl From<VerifyError> for OptimizeError {
    fn from(e: VerifyError) -> Self {
        OptimizeError::Verify(e)
    }
}

impl OptimizeError {
    /// The verification report behind a mismatch, if that is what this is.
    pub fn verify_report(&self) -> Option<&VerifyReport> {
        match self {
            OptimizeError::Mismatch { report, .. } | OptimizeError::BrokenBy { report, .. } => {
                Some(report)
            }
            _ => None,
        }
    }
}

/// One line naming the worst output.
pub fn mismatch_summary(r: &VerifyReport) -> String {
    let worst = r
        .outputs
        .iter()
        .filter(|o| !o.passed)
        .max_by(|a, b| a.max_abs_err.total_cmp(&b.max_abs_err));
    match worst {
        Some(o) => match (o.err_vs_reference, o.noise_floor, o.ratio) {
            (Some(err), Some(floor), Some(ratio)) => format!(
                "output '{}': error {err:.3e} is {ratio:.1} times the input model's own noise floor                  {floor:.3e} (at most {} allowed; max abs err vs the input {:.3e}, max |ref| {:.3e},                  cosine {:.6})",
                o.name, r.noise_factor, o.max_abs_err, o.max_abs_ref, o.cosine
            ),
            _ => format!(
                "output '{}': max abs err {:.3e} (max |ref| {:.3e}, relative {:.3e}, cosine {:.6})",
                o.name, o.max_abs_err, o.max_abs_ref, o.max_rel_err, o.cosine
            ),
        },
        None => "outputs differ".to_string(),
    }
}

/// Runs the passes named in `opts` on `model` in place and verifies the
/// result against the model as it was. On a mismatch the model is left
/// rewritten but the caller must not write it (the CLI writes nothing and
/// exits 3).
pub fn optimize(
    model: &mut Model,
    opts: &OptimizeOptions,
) -> Result<OptimizeOutcome, OptimizeError> {
    let passes: Vec<Box<dyn Pass>> = opts
        .passes
        .iter()
        .map(|n| {
            npuopt_passes::registry::pass_by_name(n)
                .ok_or_else(|| OptimizeError::Pipeline(PipelineError::Unknown(n.to_string())))
        })
        .collect::<Result<_, _>>()?;
    optimize_with_passes(model, &passes, opts)
}

/// [`optimize`] with passes of the caller's own (`opts.passes` is ignored):
/// how a pipeline adds a pass npuopt does not ship, and how the tests prove
/// that `verify_each` names a pass that breaks numerics.
pub fn optimize_with_passes(
    model: &mut Model,
    passes: &[Box<dyn Pass>],
    opts: &OptimizeOptions,
) -> Result<OptimizeOutcome, OptimizeError> {
    model.graph.validate()?;
    let vopts = opts.verify.as_ref().map(|v| VerifyOptions {
        cancel: opts.cancel.clone(),
        ..v.clone()
    });
    // The reference is the model as given: pinned inputs are checked
    // against it at the pinned shapes.
    let encoded;
    let reference: Option<Encoded<'_>> = match (&opts.verify, &opts.source) {
        (None, _) => None,
        (Some(_), Some((bytes, dir))) => Some((bytes, dir.as_deref())),
        (Some(_), None) => {
            encoded = model.to_bytes()?;
            Some((&encoded, None))
        }
    };
    let pinned_symbols = if opts.input_shapes.is_empty() {
        Vec::new()
    } else {
        npuopt_ir::pin::pin_input_shapes(&mut model.graph, &opts.input_shapes)?
    };
    let estimate_before = opts.target.as_ref().map(|t| baseline_estimate(model, t));
    let budget = capacity_budget(model, opts, estimate_before.as_ref().map(|e| &e.0));
    let gate = gate_options(opts, budget);
    let original = (opts.verify_each && reference.is_some()).then(|| model.clone());
    let mut broken: Option<(String, VerifyReport)> = None;
    let dump_after = opts.dump_after.clone();
    let mut dump_error = None;
    let after_pass = |pass: &str, m: &Model, _changes: &[Change]| -> Result<(), String> {
        for (name, path) in &dump_after {
            if name == pass {
                let text = npuopt_ir::dump::dump(&m.graph).map_err(|e| e.to_string())?;
                if let Err(e) = npuopt_ir::export::write_file_atomically(path, text.as_bytes()) {
                    dump_error = Some(e);
                    return Err("cannot write the dump".into());
                }
            }
        }
        if let (true, Some(vopts), Some(reference)) = (opts.verify_each, &vopts, &reference) {
            let candidate = m.to_bytes().map_err(|e| e.to_string())?;
            let report = verify_encoded(reference.0, reference.1, &candidate, vopts)
                .map_err(|e| e.to_string())?;
            if !report.passed {
                broken = Some((pass.to_string(), report));
                return Err("verification failed".into());
            }
        }
        Ok(())
    };
    let result = run_passes(
        model,
        passes,
        &mut PipelineOptions {
            max_rewrites: opts.max_rewrites,
            max_iterations: None,
            after_pass: Some(Box::new(after_pass)),
            gate: gate.clone(),
            cancel: opts.cancel.clone(),
            skip_note_hashes: opts.skip_note_hashes,
        },
    );
    if opts.cancel.is_cancelled() {
        return Err(OptimizeError::Cancelled);
    }
    if let Some(e) = dump_error {
        return Err(OptimizeError::Dump(e));
    }
    if let Some((pass, report)) = broken {
        let first_bad_rewrite = original
            .zip(reference.as_ref())
            .and_then(|(orig, reference)| first_bad_rewrite(orig, *reference, passes, opts));
        if opts.cancel.is_cancelled() {
            return Err(OptimizeError::Cancelled);
        }
        return Err(OptimizeError::BrokenBy {
            pass,
            first_bad_rewrite: first_bad_rewrite.map(Box::new),
            summary: mismatch_summary(&report),
            report: Box::new(report),
        });
    }
    let pipeline = result?;
    if let (Some(t), Intent::Capacity) = (&opts.target, opts.intent) {
        model.set_metadata(INTENT_KEY, "capacity");
        model.set_metadata(TARGET_KEY, t.name());
        model.set_metadata(
            NOTE_KEY,
            &format!(
                "NOT a deploy model: exact rewrites added trainable capacity for {} \
                 (such as depthwise convs as block-diagonal group convs, zero-padded channels); \
                 it computes what the input did until fine-tuned. Fine-tune it, then optimize \
                 with --intent deploy.",
                t.name()
            ),
        );
    }
    let cost = match (&opts.target, estimate_before) {
        (Some(t), Some((before, before_cleaned))) => Some(CostOutcome {
            target: t.name().to_string(),
            intent: opts.intent,
            before,
            before_cleaned,
            after: npuopt_targets::estimate(&model.graph, t),
            capacity_budget: budget,
        }),
        _ => None,
    };
    let mut unverified = None;
    let verification = match (&vopts, &reference) {
        (Some(vopts), Some(reference)) => {
            let candidate = model.to_bytes()?;
            let report = match verify_encoded(reference.0, reference.1, &candidate, vopts) {
                Ok(r) => r,
                Err(VerifyError::Cancelled) => return Err(OptimizeError::Cancelled),
                Err(
                    e @ (VerifyError::Load { .. }
                    | VerifyError::Run { .. }
                    | VerifyError::Inputs(_)),
                ) if opts.allow_unverified => {
                    let reason = e.to_string();
                    model.set_metadata(UNVERIFIED_KEY, &format!("NOT VERIFIED: {reason}"));
                    unverified = Some(reason);
                    return Ok(OptimizeOutcome {
                        pipeline,
                        verification: None,
                        unverified,
                        cost,
                        pinned_symbols,
                    });
                }
                Err(e) => return Err(e.into()),
            };
            if !report.passed {
                return Err(OptimizeError::Mismatch {
                    summary: mismatch_summary(&report),
                    report: Box::new(report),
                });
            }
            Some(report)
        }
        _ => None,
    };
    Ok(OptimizeOutcome {
        pipeline,
        verification,
        unverified,
        cost,
        pinned_symbols,
    })
}

/// `--intent capacity`'s latency budget: the estimate of the input as any
/// deployment flow would run it — after the target-independent default
/// passes (BN folding, branch merging, MAC-reducing conv merges) — and
/// never above the input's own. So capacity is added only where the
/// hardware has room for it, not paid for with the savings of merging a
/// training graph's branches. `None` for deploy runs.
fn capacity_budget(model: &Model, opts: &OptimizeOptions, input: Option<&Estimate>) -> Option<u64> {
    let (Some(t), Intent::Capacity, Some(input)) = (&opts.target, opts.intent, input) else {
        return None;
    };
    let mut deployed = model.clone();
    let passes = npuopt_passes::resolve_pass_list(None, None).ok()?;
    let run = PipelineOptions {
        cancel: opts.cancel.clone(),
        ..Default::default()
    };
    let folded = npuopt_passes::run_pipeline(&mut deployed, &passes, run)
        .ok()
        .map(|_| npuopt_targets::cost::totals(&deployed.graph, t).total_cycles);
    Some(folded.map_or(input.total_cycles, |f| f.min(input.total_cycles)))
}

/// The gate of a run.
fn gate_options(opts: &OptimizeOptions, capacity_budget: Option<u64>) -> GateOptions {
    GateOptions {
        target: opts.target.clone(),
        intent: opts.intent,
        force: opts.force_passes.clone(),
        capacity_budget,
    }
}

/// Bisects on `max_rewrites`: the smallest prefix of the rewrite sequence
/// whose result fails verification ends with the first bad rewrite.
fn first_bad_rewrite(
    original: Model,
    reference: Encoded<'_>,
    passes: &[Box<dyn Pass>],
    opts: &OptimizeOptions,
) -> Option<Change> {
    let vopts = VerifyOptions {
        cancel: opts.cancel.clone(),
        ..opts.verify.clone()?
    };
    let input = opts
        .target
        .as_ref()
        .map(|t| baseline_estimate(&original, t).0);
    let gate = gate_options(opts, capacity_budget(&original, opts, input.as_ref()));
    let fails = |n: usize| -> Option<(bool, Vec<Change>)> {
        let mut m = original.clone();
        let report = run_passes(
            &mut m,
            passes,
            &mut PipelineOptions {
                max_rewrites: Some(n),
                gate: gate.clone(),
                cancel: opts.cancel.clone(),
                ..Default::default()
            },
        )
        .ok()?;
        let bytes = m.to_bytes().ok()?;
        let v = verify_encoded(reference.0, reference.1, &bytes, &vopts).ok()?;
        Some((!v.passed, report.changes))
    };
    let (full_fails, changes) = fails(usize::MAX)?;
    if !full_fails {
        return None;
    }
    let (mut lo, mut hi) = (0usize, changes.len());
    // Invariant: prefix `lo` passes, prefix `hi` fails.
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if fails(mid)?.0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    changes.get(hi - 1).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The advice is given once: the shape hint only when the message
    /// does not already name the input and its `--input-shape`.
    #[test]
    fn an_unverifiable_model_gets_each_piece_of_advice_once() {
        let named = OptimizeError::Verify(VerifyError::Inputs(
            "input 'x' has symbolic dim 2 ('H'); give its shape with --input-shape x=1,3,H,W"
                .into(),
        ))
        .to_string();
        assert_eq!(named.matches("--input-shape").count(), 1, "{named}");
        assert!(named.contains("--no-verify") && named.contains("--allow-unverified"));
        let other =
            OptimizeError::Verify(VerifyError::Inputs("tract refused node 'n'".into())).to_string();
        assert!(other.contains("--input-shape NAME=D,D,…"), "{other}");
        assert!(other.contains("--no-verify") && other.contains("--allow-unverified"));
    }
}
