//! Output comparison: statistics accumulated over samples, and the pass
//! criterion.

use tract_onnx::prelude::*;

use super::load::{condense, Declared};
use super::{OutputComparison, VerifyError};

/// Both models must declare the same outputs, in the same order.
pub(crate) fn check_output_names(
    reference: &Declared,
    candidate: &Declared,
) -> Result<(), VerifyError> {
    let (r, c) = (&reference.outputs, &candidate.outputs);
    if r.len() != c.len() {
        return Err(VerifyError::OutputMismatch(format!(
            "the {} has {} output(s) [{}] but the {} has {} [{}]",
            reference.label,
            r.len(),
            r.join(", "),
            candidate.label,
            c.len(),
            c.join(", ")
        )));
    }
    for (ix, (a, b)) in r.iter().zip(c).enumerate() {
        if a != b {
            return Err(VerifyError::OutputMismatch(format!(
                "output {ix} is '{a}' in the {} but '{b}' in the {}",
                reference.label, candidate.label
            )));
        }
    }
    Ok(())
}

/// The type an output is compared as: tract may produce `TDim` where ONNX
/// says int64; every float type is compared as a float.
fn normalized(dt: DatumType) -> DatumType {
    if dt == DatumType::TDim {
        DatumType::I64
    } else if dt.is_float() {
        DatumType::F64
    } else {
        dt
    }
}

/// How an output's error is judged.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Criterion {
    /// `max|a − b| ≤ atol + rtol · max|ref|` (explicit `--rtol`/`--atol`).
    Fixed { rtol: f64, atol: f64 },
    /// `max|a − b| ≤ k · floor`, where `floor` is the input model's own
    /// error against the reference, and at least `eps · max|ref|`.
    Noise { k: f64, eps: f64 },
}

/// Running statistics of one output over the samples seen so far.
#[derive(Clone, Debug)]
pub(crate) struct Accumulator {
    name: String,
    shape: Vec<usize>,
    dt: DatumType,
    max_abs_err: f64,
    max_abs_ref: f64,
    /// `max |noise − reference|`, when a noise run was given.
    noise_err: Option<f64>,
    /// `max |candidate − reference|` (the reference may be the input
    /// itself).
    ref_err: f64,
    dot: f64,
    norm_ref: f64,
    norm_cand: f64,
    /// Elements where exactly one side is NaN/±inf, or both are but differ.
    nonfinite_mismatches: usize,
    /// Non-finite elements of the reference.
    nonfinite_ref: usize,
    /// Elements that differ, for exactly compared (non-float) outputs.
    exact_mismatches: usize,
    /// Every sample's (input, candidate) values, for outputs compared
    /// beyond elements (discrete outputs and their feeds).
    pub(crate) kept: Option<Vec<(Vec<f64>, Vec<f64>)>>,
    /// Why an intermediate value cannot be compared (its type or shape
    /// differs between the models: a rewrite changed it).
    pub(crate) unusable: Option<String>,
}

pub(crate) fn as_f64(t: &Tensor) -> TractResult<Vec<f64>> {
    let c = t.cast_to_dt(DatumType::F64)?;
    Ok(c.try_as_plain_ram()?.as_slice::<f64>()?.to_vec())
}

fn as_i64(t: &Tensor) -> TractResult<Vec<i64>> {
    let c = t.cast_to_dt(DatumType::I64)?;
    Ok(c.try_as_plain_ram()?.as_slice::<i64>()?.to_vec())
}

/// One sample's runs: the input model at its own precision (`input`; an
/// f64 run where there is none), the reference, the candidate, and the
/// noise run measured against the reference (the input at its own
/// precision against an f64 reference, or on perturbed inputs).
pub(crate) struct Sample<'a> {
    pub(crate) input: &'a [Tensor],
    pub(crate) reference: &'a [Tensor],
    pub(crate) candidate: &'a [Tensor],
    pub(crate) noise: Option<&'a [Tensor]>,
    /// The candidate with its parameters rounded once more, measured
    /// against the candidate (low-precision models): the floor is the
    /// smaller of the two noise runs'.
    pub(crate) candidate_noise: Option<&'a [Tensor]>,
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Folds one sample's outputs into the accumulators (created on the first
/// sample). Count, type or shape differences are errors.
///
/// Values from index `strict` on are intermediates: a type or shape that
/// differs marks them unusable instead of failing. `keep[i]` keeps every
/// sample's values of value `i`.
pub(crate) fn accumulate(
    accs: &mut Vec<Accumulator>,
    names: &[String],
    sample: Sample<'_>,
    strict: usize,
    keep: &[bool],
) -> Result<(), VerifyError> {
    let (reference, candidate) = (sample.input, sample.candidate);
    if reference.len() != names.len() || candidate.len() != names.len() {
        return Err(VerifyError::OutputMismatch(format!(
            "the models declare {} output(s) but tract produced {} for the reference \
             and {} for the candidate",
            names.len(),
            reference.len(),
            candidate.len()
        )));
    }
    for (ix, ((name, r), c)) in names.iter().zip(reference).zip(candidate).enumerate() {
        let (rdt, cdt) = (normalized(r.datum_type()), normalized(c.datum_type()));
        if ix >= strict && (rdt != cdt || r.shape() != c.shape()) {
            if accs.len() == ix {
                accs.push(Accumulator::new(name, r.shape(), rdt, false));
            }
            accs[ix].unusable = Some(format!(
                "{:?}{:?} in the reference, {:?}{:?} in the candidate",
                r.datum_type(),
                r.shape(),
                c.datum_type(),
                c.shape()
            ));
            continue;
        }
        if rdt != cdt {
            return Err(VerifyError::OutputMismatch(format!(
                "output '{name}' is {:?} in the reference but {:?} in the candidate",
                r.datum_type(),
                c.datum_type()
            )));
        }
        if r.shape() != c.shape() {
            return Err(VerifyError::OutputMismatch(format!(
                "output '{name}' has shape {:?} in the reference but {:?} in the candidate",
                r.shape(),
                c.shape()
            )));
        }
        if accs.len() == ix {
            accs.push(Accumulator::new(
                name,
                r.shape(),
                rdt,
                keep.get(ix).copied().unwrap_or(false),
            ));
        }
        let acc = &mut accs[ix];
        if acc.unusable.is_some() {
            continue;
        }
        if acc.shape != r.shape() {
            return Err(VerifyError::OutputMismatch(format!(
                "output '{name}' changed shape between samples ({:?}, then {:?})",
                acc.shape,
                r.shape()
            )));
        }
        let tract_err = |e: TractError| VerifyError::Run {
            model: "comparison".into(),
            message: format!("reading output '{name}': {}", condense(&e)),
        };
        if !rdt.is_float() {
            let (a, b) = (as_i64(r).map_err(tract_err)?, as_i64(c).map_err(tract_err)?);
            acc.exact_mismatches += a.iter().zip(&b).filter(|(x, y)| x != y).count();
        }
        let a = as_f64(r).map_err(tract_err)?;
        let b = as_f64(c).map_err(tract_err)?;
        acc.add(&a, &b);
        if let Some(kept) = acc.kept.as_mut() {
            kept.push((a.clone(), b.clone()));
        }
        let exact_ref = match sample.reference.get(ix) {
            Some(t) if !std::ptr::eq(sample.reference, sample.input) => {
                as_f64(t).map_err(tract_err)?
            }
            _ => a.clone(),
        };
        acc.ref_err = acc.ref_err.max(max_diff(&exact_ref, &b));
        if let Some(n) = sample.noise.and_then(|n| n.get(ix)) {
            if n.shape() == r.shape() {
                let n = as_f64(n).map_err(tract_err)?;
                let mut e = max_diff(&exact_ref, &n);
                if let Some(cn) = sample.candidate_noise.and_then(|n| n.get(ix)) {
                    e = e.min(max_diff(&b, &as_f64(cn).map_err(tract_err)?));
                }
                acc.noise_err = Some(acc.noise_err.unwrap_or(0.0).max(e));
            }
        }
    }
    Ok(())
}

impl Accumulator {
    fn new(name: &str, shape: &[usize], dt: DatumType, keep: bool) -> Self {
        Accumulator {
            name: name.to_string(),
            shape: shape.to_vec(),
            dt,
            max_abs_err: 0.0,
            max_abs_ref: 0.0,
            noise_err: None,
            ref_err: 0.0,
            dot: 0.0,
            norm_ref: 0.0,
            norm_cand: 0.0,
            nonfinite_mismatches: 0,
            nonfinite_ref: 0,
            exact_mismatches: 0,
            kept: keep.then(Vec::new),
            unusable: None,
        }
    }

    /// The value's shape.
    pub(crate) fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn add(&mut self, reference: &[f64], candidate: &[f64]) {
        for (&a, &b) in reference.iter().zip(candidate) {
            if a.is_finite() {
                self.max_abs_ref = self.max_abs_ref.max(a.abs());
                if b.is_finite() {
                    self.max_abs_err = self.max_abs_err.max((a - b).abs());
                    self.dot += a * b;
                    self.norm_ref += a * a;
                    self.norm_cand += b * b;
                } else {
                    self.nonfinite_mismatches += 1;
                }
            } else {
                self.nonfinite_ref += 1;
                let same = (a.is_nan() && b.is_nan()) || a == b;
                if !same {
                    self.nonfinite_mismatches += 1;
                }
            }
        }
    }

    /// The comparison, with the pass criterion applied.
    pub(crate) fn finish(&self, criterion: Criterion, notes: &mut Vec<String>) -> OutputComparison {
        let exact = !self.dt.is_float();
        let max_abs_err = if self.nonfinite_mismatches > 0 {
            f64::INFINITY
        } else {
            self.max_abs_err
        };
        let max_rel_err = if self.max_abs_ref > 0.0 {
            max_abs_err / self.max_abs_ref
        } else if max_abs_err == 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
        let cosine = if self.norm_ref == 0.0 && self.norm_cand == 0.0 {
            1.0
        } else if self.norm_ref == 0.0 || self.norm_cand == 0.0 {
            0.0
        } else {
            (self.dot / (self.norm_ref.sqrt() * self.norm_cand.sqrt())).clamp(-1.0, 1.0)
        };
        if self.nonfinite_mismatches > 0 {
            notes.push(format!(
                "output '{}': {} element(s) are NaN or infinite in one model but not \
                 (or differently) in the other",
                self.name, self.nonfinite_mismatches
            ));
        }
        if self.nonfinite_ref > 0 {
            notes.push(format!(
                "output '{}': the reference itself has {} NaN or infinite element(s)",
                self.name, self.nonfinite_ref
            ));
        }
        let (noise_floor, tolerance) = match criterion {
            _ if exact => (None, 0.0),
            Criterion::Fixed { rtol, atol } => (None, atol + rtol * self.max_abs_ref),
            Criterion::Noise { k, eps } => {
                let floor = self.noise_err.unwrap_or(0.0).max(eps * self.max_abs_ref);
                (Some(floor), k * floor)
            }
        };
        // The error the verdict judges: against the reference under the
        // noise verdict, against the input with a fixed tolerance.
        let judged = match criterion {
            _ if self.nonfinite_mismatches > 0 => f64::INFINITY,
            Criterion::Noise { .. } => self.ref_err,
            Criterion::Fixed { .. } => max_abs_err,
        };
        let ratio = noise_floor.map(|f| {
            if judged == 0.0 {
                0.0
            } else if f > 0.0 {
                judged / f
            } else {
                f64::INFINITY
            }
        });
        let (passed, verdict) = if exact {
            if self.exact_mismatches > 0 {
                notes.push(format!(
                    "output '{}' ({:?}, compared exactly): {} element(s) differ",
                    self.name, self.dt, self.exact_mismatches
                ));
            }
            let ok = self.exact_mismatches == 0;
            (ok, if ok { "exact" } else { "mismatch" })
        } else if self.nonfinite_mismatches > 0 {
            (false, "mismatch")
        } else if max_abs_err == 0.0 {
            (true, "exact")
        } else if judged <= tolerance {
            (
                true,
                match criterion {
                    Criterion::Fixed { .. } => "within tolerance",
                    Criterion::Noise { .. } => "within noise",
                },
            )
        } else {
            (false, "mismatch")
        };
        OutputComparison {
            name: self.name.clone(),
            shape: self.shape.clone(),
            max_abs_err,
            max_rel_err,
            cosine,
            max_abs_ref: self.max_abs_ref,
            err_vs_reference: noise_floor.map(|_| judged),
            noise_floor,
            ratio,
            tolerance,
            verdict: verdict.to_string(),
            compared_as: if exact { "exact" } else { "elementwise" }.to_string(),
            passed,
        }
    }
}
