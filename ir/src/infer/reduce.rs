//! Reductions, ArgMax/ArgMin, TopK, and the data-dependent selections
//! (NonZero, NonMaxSuppression) whose counts become fresh symbols.

use super::dims::{norm_axes, norm_axis};
use super::{Ctx, Rule};
use crate::dtype::DType;
use crate::shape::Dim;

pub(crate) const RULES: &[(&str, Rule)] = &[
    ("ReduceMean", reduce),
    ("ReduceSum", reduce),
    ("ReduceMax", reduce),
    ("ReduceMin", reduce),
    ("ReduceProd", reduce),
    ("ReduceL1", reduce),
    ("ReduceL2", reduce),
    ("ReduceLogSum", reduce),
    ("ReduceLogSumExp", reduce),
    ("ReduceSumSquare", reduce),
    ("ArgMax", arg_reduce),
    ("ArgMin", arg_reduce),
    ("TopK", top_k),
    ("NonZero", non_zero),
    ("NonMaxSuppression", non_max_suppression),
];

/// `axes` from the attribute (older opsets) or the second input (ReduceSum
/// from 13, the others from 18); absent axes reduce everything, unless
/// `noop_with_empty_axes`.
fn reduce(cx: &mut Ctx) {
    let (Some(x), Some(dtype)) = (cx.shape(0), cx.dtype(0)) else {
        return;
    };
    let keep = cx.int_attr("keepdims").unwrap_or(1) != 0;
    let axes = match cx.ints_attr("axes") {
        Some(a) => Some(a),
        None if cx.has_input(1) => cx.ints(1),
        None => Some(Vec::new()),
    };
    let Some(axes) = axes else {
        // Axes computed at run time: with keepdims the rank is kept.
        if keep {
            cx.set_shape(0, dtype, vec![Dim::Unknown; x.len()]);
        } else {
            cx.set_dtype(0, dtype);
        }
        return;
    };
    let axes = if axes.is_empty() {
        if cx.int_attr("noop_with_empty_axes").unwrap_or(0) != 0 {
            cx.same_as(0, 0);
            return;
        }
        (0..x.len()).collect()
    } else {
        match norm_axes(&axes, x.len()) {
            Some(a) => a,
            None => return,
        }
    };
    cx.set_shape(0, dtype, reduced(x, &axes, keep));
}

fn reduced(x: &[Dim], axes: &[usize], keep: bool) -> Vec<Dim> {
    let mut out = Vec::with_capacity(x.len());
    for (i, d) in x.iter().enumerate() {
        if axes.contains(&i) {
            if keep {
                out.push(Dim::Known(1));
            }
        } else {
            out.push(d.clone());
        }
    }
    out
}

fn arg_reduce(cx: &mut Ctx) {
    let Some(x) = cx.shape(0) else {
        return cx.set_dtype(0, DType::INT64);
    };
    let keep = cx.int_attr("keepdims").unwrap_or(1) != 0;
    let Some(axis) = norm_axis(cx.int_attr("axis").unwrap_or(0), x.len()) else {
        return;
    };
    cx.set_shape(0, DType::INT64, reduced(x, &[axis], keep));
}

/// Values and Indices: X's shape with `k` along `axis`; a `k` only known
/// at run time is a fresh symbol `<node>_k`.
fn top_k(cx: &mut Ctx) {
    let (Some(x), Some(dtype)) = (cx.shape(0), cx.dtype(0)) else {
        return;
    };
    let Some(axis) = norm_axis(cx.int_attr("axis").unwrap_or(-1), x.len()) else {
        return;
    };
    let k = if cx.opset() < 10 {
        cx.int_attr("k").map(Dim::Known)
    } else {
        cx.dims_value(1).and_then(|v| v.first().cloned())
    };
    let k = match k {
        Some(Dim::Unknown) | None => cx.fresh("k"),
        Some(k) => k,
    };
    let mut shape = x.to_vec();
    shape[axis] = k;
    cx.set_shape(0, dtype, shape.clone());
    cx.set_shape(1, DType::INT64, shape);
}

/// `[rank(X), <node>_count]`: the count of non-zeros is only known at run
/// time.
fn non_zero(cx: &mut Ctx) {
    let count = cx.fresh("count");
    match cx.rank(0) {
        Some(r) => cx.set_shape(0, DType::INT64, vec![Dim::Known(r as i64), count]),
        None => cx.set_shape(0, DType::INT64, vec![Dim::Unknown, count]),
    }
}

/// `[<node>_count, 3]` selected (batch, class, box) triples.
fn non_max_suppression(cx: &mut Ctx) {
    let count = cx.fresh("count");
    cx.set_shape(0, DType::INT64, vec![count, Dim::Known(3)]);
}
