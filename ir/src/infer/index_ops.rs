//! Joining, splitting and indexing: Concat, Split, Slice, Pad, Gather,
//! GatherElements, GatherND, Scatter*, OneHot.

use super::dims::{norm_axes, norm_axis, unify};
use super::{Ctx, Rule};
use crate::op::Op;
use crate::shape::Dim;

pub(crate) const RULES: &[(&str, Rule)] = &[
    ("Concat", concat),
    ("Split", split),
    ("Slice", slice),
    ("Pad", pad),
    ("Gather", gather),
    ("GatherElements", gather_elements),
    ("GatherND", gather_nd),
    ("ScatterND", same_as_data),
    ("ScatterElements", same_as_data),
    ("Scatter", same_as_data),
    ("OneHot", one_hot),
];

fn same_as_data(cx: &mut Ctx) {
    cx.same_as(0, 0);
}

/// The sum along `axis`; the other dims as the inputs state them.
fn concat(cx: &mut Ctx) {
    let Some(dtype) = (0..cx.n_inputs()).find_map(|i| cx.dtype(i)) else {
        return;
    };
    let shapes: Vec<Option<&[Dim]>> = (0..cx.n_inputs()).map(|i| cx.shape(i)).collect();
    let Some(rank) = shapes.iter().flatten().map(|s| s.len()).next() else {
        return cx.set_dtype(0, dtype);
    };
    let Some(axis) = cx.int_attr("axis").and_then(|a| norm_axis(a, rank)) else {
        return;
    };
    let mut out = vec![Dim::Unknown; rank];
    let mut total = Dim::Known(0);
    for s in &shapes {
        let Some(s) = s else {
            total = Dim::Unknown;
            continue;
        };
        if s.len() != rank {
            return;
        }
        for (i, d) in s.iter().enumerate() {
            if i == axis {
                total = total.add(d);
            } else {
                out[i] = unify(&out[i], d);
            }
        }
    }
    out[axis] = total;
    cx.set_shape(0, dtype, out);
}

/// Sizes from the `split` attribute (before opset 13) or input (from 13);
/// otherwise equal parts — from opset 18 with `num_outputs` the last part
/// may be smaller.
fn split(cx: &mut Ctx) {
    let (Some(x), Some(dtype)) = (cx.shape(0), cx.dtype(0)) else {
        return;
    };
    let axis = match cx.n.op() {
        Op::Split(s) => s.axis,
        _ => cx.int_attr("axis").unwrap_or(0),
    };
    let Some(axis) = norm_axis(axis, x.len()) else {
        return;
    };
    let n = cx.n_outputs();
    let sizes: Vec<Dim> = if let Some(s) = cx.ints_attr("split") {
        s.into_iter().map(Dim::Known).collect()
    } else if cx.opset() >= 13 && cx.has_input(1) {
        match cx.dims_value(1) {
            Some(s) => s,
            None => vec![Dim::Unknown; n],
        }
    } else if n == 0 {
        return;
    } else if cx.opset() >= 18 && cx.int_attr("num_outputs").is_some() {
        let d = &x[axis];
        let chunk = d.ceil_div(n as i64);
        let last = d.sub(&chunk.mul(&Dim::Known(n as i64 - 1)));
        let mut v = vec![chunk; n - 1];
        v.push(last);
        v
    } else {
        vec![x[axis].floor_div(n as i64); n]
    };
    if sizes.len() != n {
        return;
    }
    for (slot, d) in sizes.into_iter().enumerate() {
        let mut s = x.to_vec();
        s[axis] = d;
        cx.set_shape(slot, dtype, s);
    }
}

/// Starts, ends, axes and steps from attributes (before opset 10) or
/// inputs; each axis clamped as the spec says. A symbolic dim is kept
/// when the slice is the whole axis.
fn slice(cx: &mut Ctx) {
    let (Some(x), Some(dtype)) = (cx.shape(0), cx.dtype(0)) else {
        return;
    };
    let r = x.len();
    let ints = |v: Option<Vec<i64>>| v.map(|v| v.into_iter().map(Dim::Known).collect::<Vec<_>>());
    let (starts, ends, axes, steps) = if cx.opset() < 10 {
        (
            ints(cx.ints_attr("starts")),
            ints(cx.ints_attr("ends")),
            Some(cx.ints_attr("axes")),
            Some(None),
        )
    } else {
        let opt = |i: usize| -> Option<Option<Vec<i64>>> {
            if cx.has_input(i) {
                cx.ints(i).map(Some)
            } else {
                Some(None)
            }
        };
        (cx.dims_value(1), cx.dims_value(2), opt(3), opt(4))
    };
    let (Some(starts), Some(ends)) = (starts, ends) else {
        return cx.set_dtype(0, dtype);
    };
    let (Some(axes), Some(steps)) = (axes, steps) else {
        // Which axes are sliced is only known at run time.
        return cx.set_shape(0, dtype, vec![Dim::Unknown; r]);
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return;
    }
    let Some(norm) = norm_axes(&axes, r) else {
        return;
    };
    let mut out = x.to_vec();
    for (k, &a) in axes.iter().enumerate() {
        let axis = norm_axis(a, r).expect("checked");
        debug_assert!(norm.contains(&axis));
        if steps[k] == 0 {
            return;
        }
        out[axis] = slice_dim(&x[axis], &starts[k], &ends[k], steps[k]);
    }
    cx.set_shape(0, dtype, out);
}

/// Ends at or past this are "to the end" (exporters write i64::MAX or
/// i32::MAX).
const TO_THE_END: i64 = i32::MAX as i64;

fn slice_dim(d: &Dim, start: &Dim, end: &Dim, step: i64) -> Dim {
    if let (Dim::Known(d), Dim::Known(s), Dim::Known(e)) = (d, start, end) {
        return Dim::Known(known_slice(*d, *s, *e, step));
    }
    let whole_end = |e: &Dim| e == d || matches!(e, Dim::Known(v) if *v >= TO_THE_END);
    if step == 1 && *start == Dim::Known(0) && whole_end(end) {
        return d.clone();
    }
    Dim::Unknown
}

/// ONNX's clamping of starts and ends (negative values count from the end).
fn known_slice(d: i64, start: i64, end: i64, step: i64) -> i64 {
    if d <= 0 {
        return 0;
    }
    let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (start, end) = if step > 0 {
        (norm(start).clamp(0, d), norm(end).clamp(0, d))
    } else {
        (norm(start).clamp(0, d - 1), norm(end).clamp(-1, d - 1))
    };
    // ceil(span / |step|) as (span − 1) / |step| + 1: no overflow for steps
    // near i64::MAX or i64::MIN.
    if step > 0 {
        if end > start {
            (end - start - 1) / step + 1
        } else {
            0
        }
    } else if start > end {
        ((start - end - 1) as u64 / step.unsigned_abs()) as i64 + 1
    } else {
        0
    }
}

/// `d + pad_begin + pad_end` per axis (opset 18's `axes` input selects
/// which).
fn pad(cx: &mut Ctx) {
    let (Some(x), Some(dtype)) = (cx.shape(0), cx.dtype(0)) else {
        return;
    };
    let r = x.len();
    let pads: Option<Vec<Dim>> = match cx.n.op() {
        Op::Pad(p) if p.pads.is_some() => p
            .pads
            .as_ref()
            .map(|p| p.iter().map(|&v| Dim::Known(v)).collect()),
        _ if cx.opset() >= 11 => cx.dims_value(1),
        _ => cx
            .ints_attr("pads")
            .map(|p| p.into_iter().map(Dim::Known).collect()),
    };
    let Some(pads) = pads else {
        return cx.set_shape(0, dtype, vec![Dim::Unknown; r]);
    };
    let axes: Vec<usize> = if cx.has_input(3) {
        match cx.ints(3).and_then(|a| norm_axes(&a, r)) {
            Some(a) => a,
            None => return cx.set_shape(0, dtype, vec![Dim::Unknown; r]),
        }
    } else {
        (0..r).collect()
    };
    let k = axes.len();
    if pads.len() != 2 * k {
        return;
    }
    let mut out = x.to_vec();
    for (j, &a) in axes.iter().enumerate() {
        out[a] = x[a].add(&pads[j]).add(&pads[j + k]);
    }
    cx.set_shape(0, dtype, out);
}

/// `data[:axis] + indices + data[axis+1:]`.
fn gather(cx: &mut Ctx) {
    let (Some(d), Some(i), Some(dtype)) = (cx.shape(0), cx.shape(1), cx.dtype(0)) else {
        return;
    };
    let Some(axis) = norm_axis(cx.int_attr("axis").unwrap_or(0), d.len()) else {
        return;
    };
    let mut s = d[..axis].to_vec();
    s.extend(i.iter().cloned());
    s.extend(d[axis + 1..].iter().cloned());
    cx.set_shape(0, dtype, s);
}

fn gather_elements(cx: &mut Ctx) {
    let (Some(i), Some(dtype)) = (cx.shape(1), cx.dtype(0)) else {
        return;
    };
    cx.set_shape(0, dtype, i.to_vec());
}

/// `indices[:-1] + data[batch_dims + indices[-1]:]`.
fn gather_nd(cx: &mut Ctx) {
    let (Some(d), Some(i), Some(dtype)) = (cx.shape(0), cx.shape(1), cx.dtype(0)) else {
        return;
    };
    let b = cx.int_attr("batch_dims").unwrap_or(0).max(0) as usize;
    let Some(Dim::Known(k)) = i.last() else {
        return;
    };
    let from = b + *k as usize;
    if from > d.len() {
        return;
    }
    let mut s = i[..i.len() - 1].to_vec();
    s.extend(d[from..].iter().cloned());
    cx.set_shape(0, dtype, s);
}

/// The indices' shape with `depth` inserted at `axis`, of the values' type.
fn one_hot(cx: &mut Ctx) {
    let (Some(i), Some(dtype)) = (cx.shape(0), cx.dtype(2)) else {
        return;
    };
    let depth = cx
        .dims_value(1)
        .and_then(|v| v.first().cloned())
        .unwrap_or(Dim::Unknown);
    let Some(axis) = norm_axis(cx.int_attr("axis").unwrap_or(-1), i.len() + 1) else {
        return;
    };
    let mut s = i.to_vec();
    s.insert(axis, depth);
    cx.set_shape(0, dtype, s);
}
