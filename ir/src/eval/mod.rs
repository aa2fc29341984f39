//! The constant evaluator: computes an op on constant inputs, exactly as a
//! runtime would, or declines.
//!
//! One evaluator serves `fold-constants` (which decides what is worth
//! folding) and shape inference's data propagation (which needs the values
//! of small shape tensors), so an op's semantics are written once. Every
//! function returns `None` rather than guess: an out-of-range index, an
//! overflow, a conversion C++ leaves undefined, an unsupported dtype.
//!
//! Evaluated ops (default domain, no unknown attributes):
//! * `Shape` (see [`shape`]: from concrete dims, with opset-15
//!   `start`/`end`);
//! * data movement on any fixed-width dtype: `Gather` (negative indices
//!   wrap once, out-of-range declines), `GatherND` (`batch_dims` 0),
//!   `Expand`, `Tile`, `Unsqueeze`/`Squeeze` (axes as an
//!   attribute before opset 13, an input from 13; negative axes), `Concat`,
//!   `Reshape` (0 copies unless `allowzero`, −1 infers), `Transpose`,
//!   `Slice` (attributes before opset 10; negative and clamped starts/ends,
//!   negative steps), `Identity`, `ConstantOfShape`;
//! * `Cast` between f32, f64, bool and the integer types ([`cast`]);
//! * `Range` on integers, and on floats only when start and delta are
//!   integer-valued and every element is exactly representable (so the
//!   runtimes' `start + i·delta` and accumulating loops agree);
//! * `Max`/`Min` of two inputs, `Equal`/`Less`/`Greater`, `Not`, `Where`,
//!   `ReduceMax`/`ReduceMin`, `Floor`/`Ceil`/`Abs` (exact on every numeric
//!   dtype; a NaN in a max or min declines);
//! * element-wise `Add`/`Sub`/`Mul`/`Div` (numpy broadcasting) and
//!   `Neg`/`Sqrt`/`Reciprocal` on f32 and f64 (computed in that type, IEEE,
//!   bit-identical to a runtime) and `Add`/`Sub`/`Mul`/`Div`/`Neg` on i64
//!   (Div truncates toward zero as C does; overflow and division by zero
//!   decline);
//! * `Mod` on i64 (the divisor's sign, or the dividend's with `fmod`; a
//!   zero divisor declines) and, with `fmod`, on f32 and f64 (exact).
//!
//! Not evaluated: f16/bf16 arithmetic, external or string tensors.

mod arith;
mod cast;
mod compare;
mod generate;
mod movement;
mod value;

#[cfg(test)]
mod tests;

pub use arith::{binary, broadcast_dims, unary};
pub use cast::cast;
pub use compare::{compare, not, reduce, where_};
pub use generate::{constant_of_shape, range};
pub use movement::{
    concat, expand, gather, gather_nd, reshape, slice, squeeze, tile, transpose, unsqueeze,
};
pub use value::{encode_ints, is_int, raw_bytes, Val};

use crate::attr::Attrs;
use crate::dtype::DType;
use crate::proto::AttributeProto;

/// `Shape`'s `[start, end)` range of a rank-`rank` input (opset 15's
/// `start`/`end`: negative values count from the end, both are clamped).
pub fn shape_range(rank: usize, attrs: &[AttributeProto]) -> Option<(usize, usize)> {
    let a = Attrs(attrs);
    if a.unknown(&["start", "end"]).is_some() {
        return None;
    }
    let r = rank as i64;
    let norm = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
    let start = norm(a.int("start").ok()?.unwrap_or(0));
    let end = norm(a.int("end").ok()?.unwrap_or(r));
    Some((start, end.max(start)))
}

/// `Shape` of a value whose dims are all known.
pub fn shape(dims: &[i64], attrs: &[AttributeProto]) -> Option<Val> {
    let (start, end) = shape_range(dims.len(), attrs)?;
    let s = &dims[start..end];
    Some(Val::from_i64(vec![s.len() as i64], s))
}

/// True when [`evaluate`] knows `op` (a cheap test before gathering inputs).
pub fn can_evaluate(op: &str) -> bool {
    matches!(
        op,
        "Identity"
            | "Gather"
            | "GatherND"
            | "Expand"
            | "Tile"
            | "Unsqueeze"
            | "Squeeze"
            | "Concat"
            | "Reshape"
            | "Transpose"
            | "Slice"
            | "Cast"
            | "ConstantOfShape"
            | "Range"
            | "Add"
            | "Sub"
            | "Mul"
            | "Div"
            | "Mod"
            | "Neg"
            | "Sqrt"
            | "Reciprocal"
            | "Floor"
            | "Ceil"
            | "Abs"
            | "Max"
            | "Min"
            | "Equal"
            | "Less"
            | "Greater"
            | "Not"
            | "Where"
            | "ReduceMax"
            | "ReduceMin"
    )
}

/// Evaluates `op_type` (default domain) with `attrs` on constant inputs
/// (`None`: an absent optional input) under default-domain `opset`.
pub fn evaluate(
    op: &str,
    attrs: &[AttributeProto],
    opset: i64,
    ins: &[Option<Val>],
) -> Option<Val> {
    let a = Attrs(attrs);
    let known = |names: &[&str]| a.unknown(names).is_none();
    if ins.is_empty() && op != "ConstantOfShape" {
        return None;
    }
    let input = |i: usize| ins.get(i).and_then(Option::as_ref);
    match op {
        "Identity" if known(&[]) => input(0).cloned(),
        "GatherND" if known(&["batch_dims"]) && a.int("batch_dims").ok()?.unwrap_or(0) == 0 => {
            gather_nd(input(0)?, input(1)?)
        }
        "Expand" if known(&[]) => expand(input(0)?, &input(1)?.index_ints()?),
        "Tile" if known(&[]) && ins.len() == 2 => tile(input(0)?, &input(1)?.index_ints()?),
        "Gather" if known(&["axis"]) => {
            gather(input(0)?, input(1)?, a.int("axis").ok()?.unwrap_or(0))
        }
        "Unsqueeze" if known(&["axes"]) => {
            let axes = if opset < 13 {
                a.ints("axes").ok()??
            } else {
                input(1)?.index_ints()?
            };
            unsqueeze(input(0)?, &axes)
        }
        "Squeeze" if known(&["axes"]) => {
            let axes = if opset < 13 {
                a.ints("axes").ok()?
            } else {
                match input(1) {
                    Some(v) => Some(v.index_ints()?),
                    None => None,
                }
            };
            squeeze(input(0)?, axes.as_deref())
        }
        "Concat" if known(&["axis"]) => {
            let vals: Option<Vec<&Val>> = ins.iter().map(Option::as_ref).collect();
            concat(&vals?, a.int("axis").ok()??)
        }
        "Reshape" if known(&["allowzero", "shape"]) => {
            let shape = if opset < 5 {
                a.ints("shape").ok()??
            } else {
                input(1)?.index_ints()?
            };
            reshape(
                input(0)?,
                &shape,
                a.int("allowzero").ok()?.unwrap_or(0) != 0,
            )
        }
        "Transpose" if known(&["perm"]) => transpose(input(0)?, a.ints("perm").ok()?),
        "Slice" if known(&["starts", "ends", "axes"]) => {
            let x = input(0)?;
            let (starts, ends, axes, steps) = if opset < 10 {
                (
                    a.ints("starts").ok()??,
                    a.ints("ends").ok()??,
                    a.ints("axes").ok()?,
                    None,
                )
            } else {
                let opt = |i: usize| -> Option<Option<Vec<i64>>> {
                    match input(i) {
                        None => Some(None),
                        Some(v) => Some(Some(v.index_ints()?)),
                    }
                };
                (
                    input(1)?.index_ints()?,
                    input(2)?.index_ints()?,
                    opt(3)?,
                    opt(4)?,
                )
            };
            slice(x, &starts, &ends, axes.as_deref(), steps.as_deref())
        }
        "Cast" if known(&["to", "saturate"]) => cast(input(0)?, DType(a.int("to").ok()?? as i32)),
        "ConstantOfShape" if known(&["value"]) => {
            let fill = match a.tensor("value").ok()? {
                Some(t) => Some(Val::of(&crate::tensor::Tensor::from_proto(t.clone()))?),
                None => None,
            };
            constant_of_shape(input(0)?, fill)
        }
        "Range" if known(&[]) => range(input(0)?, input(1)?, input(2)?),
        "Add" | "Sub" | "Mul" | "Div" if known(&["broadcast", "axis"]) => {
            let (x, y) = (input(0)?, input(1)?);
            let legacy_ok = opset >= 7
                || x.dims == y.dims
                || (a.int("broadcast").ok()? == Some(1) && a.get("axis").is_none());
            if !legacy_ok || ins.len() != 2 {
                return None;
            }
            binary(op, x, y)
        }
        "Mod" if known(&["fmod"]) && ins.len() == 2 => {
            let fmod = a.int("fmod").ok()?.unwrap_or(0) != 0;
            binary(if fmod { "FMod" } else { "Mod" }, input(0)?, input(1)?)
        }
        "Neg" | "Sqrt" | "Reciprocal" | "Floor" | "Ceil" | "Abs" if known(&[]) => {
            unary(op, input(0)?)
        }
        "Max" | "Min" if known(&[]) && ins.len() == 2 => compare(op, input(0)?, input(1)?),
        "Equal" | "Less" | "Greater" if known(&[]) => compare(op, input(0)?, input(1)?),
        "Not" if known(&[]) => not(input(0)?),
        "Where" if known(&[]) => where_(input(0)?, input(1)?, input(2)?),
        "ReduceMax" | "ReduceMin" if known(&["axes", "keepdims", "noop_with_empty_axes"]) => {
            let x = input(0)?;
            let axes = match a.ints("axes").ok()? {
                Some(v) => v,
                None if opset >= 18 && input(1).is_some() => input(1)?.index_ints()?,
                None => Vec::new(),
            };
            if axes.is_empty() && a.int("noop_with_empty_axes").ok()?.unwrap_or(0) != 0 {
                return Some(x.clone());
            }
            let r = x.dims.len() as i64;
            let axes = axes
                .iter()
                .map(|&v| {
                    let v = if v < 0 { v + r } else { v };
                    (0..r).contains(&v).then_some(v as usize)
                })
                .collect::<Option<Vec<_>>>()?;
            reduce(op, x, &axes, a.int("keepdims").ok()?.unwrap_or(1) != 0)
        }
        _ => None,
    }
}
