//! Shape manipulation: Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze,
//! Expand, Tile, ConstantOfShape, Range, Constant, Transpose,
//! DepthToSpace, SpaceToDepth.

use std::sync::Arc;

use super::data::Data;
use super::dims::{broadcast_dim, norm_axes, product};
use super::{Ctx, Rule, MAX_CONST_ELEMS};
use crate::dtype::DType;
use crate::eval::{self, Val};
use crate::op::Op;
use crate::shape::{Dim, TensorType};
use crate::tensor::Tensor;

pub(crate) const RULES: &[(&str, Rule)] = &[
    ("Shape", shape),
    ("Size", size),
    ("Reshape", reshape),
    ("Flatten", flatten),
    ("Squeeze", squeeze),
    ("Unsqueeze", unsqueeze),
    ("Expand", expand),
    ("Tile", tile),
    ("ConstantOfShape", constant_of_shape),
    ("Range", range),
    ("Constant", constant),
    ("Transpose", transpose),
    ("DepthToSpace", depth_to_space),
    ("SpaceToDepth", space_to_depth),
];

/// `int64[end − start]`, and its value: the input's dims.
fn shape(cx: &mut Ctx) {
    let Some(x) = cx.shape(0) else {
        return cx.set_shape(0, DType::INT64, vec![Dim::Unknown]);
    };
    let Some((start, end)) = eval::shape_range(x.len(), cx.n.attributes()) else {
        return;
    };
    let dims = x[start..end].to_vec();
    cx.set_shape(0, DType::INT64, vec![Dim::Known(dims.len() as i64)]);
    cx.set_data(0, Data::dims(dims));
}

fn size(cx: &mut Ctx) {
    cx.set_shape(0, DType::INT64, vec![]);
    if let Some(x) = cx.shape(0) {
        let n = product(x);
        cx.set_data(0, Data::scalar(n));
    }
}

/// The target's elements may be symbolic (`[N, 144, -1]` from a shape
/// computation): 0 copies the input's dim (unless `allowzero`), −1 is the
/// input's element count over the others'.
fn reshape(cx: &mut Ctx) {
    let Some(dtype) = cx.dtype(0) else { return };
    let allowzero = cx.int_attr("allowzero").unwrap_or(0) != 0;
    let target: Vec<Dim> = if cx.opset() < 5 {
        match cx.ints_attr("shape") {
            Some(s) => s.into_iter().map(Dim::Known).collect(),
            None => return,
        }
    } else {
        match cx.dims_value(1) {
            Some(t) => t,
            None => return cx.set_dtype(0, dtype),
        }
    };
    let x = cx.shape(0);
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, t) in target.iter().enumerate() {
        out.push(match t {
            Dim::Known(0) if !allowzero => {
                x.and_then(|x| x.get(i)).cloned().unwrap_or(Dim::Unknown)
            }
            Dim::Known(-1) if infer_at.is_none() => {
                infer_at = Some(i);
                Dim::Unknown
            }
            Dim::Known(v) if *v < 0 => return,
            d => d.clone(),
        });
    }
    if let (Some(i), Some(x)) = (infer_at, x) {
        let others: Vec<Dim> = out
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, d)| d.clone())
            .collect();
        out[i] = product(x).div_exact(&product(&others));
    }
    cx.set_shape(0, dtype, out);
}

fn flatten(cx: &mut Ctx) {
    let (Some(x), Some(dtype)) = (cx.shape(0), cx.dtype(0)) else {
        return;
    };
    let axis = cx.int_attr("axis").unwrap_or(1);
    let r = x.len() as i64;
    let axis = if axis < 0 { axis + r } else { axis };
    if !(0..=r).contains(&axis) {
        return;
    }
    let (a, b) = x.split_at(axis as usize);
    cx.set_shape(0, dtype, vec![product(a), product(b)]);
}

/// Axes as an attribute before opset 13, as an input from 13.
fn axes(cx: &Ctx) -> Option<Option<Vec<i64>>> {
    if cx.opset() < 13 {
        Some(cx.ints_attr("axes"))
    } else if cx.has_input(1) {
        Some(Some(cx.ints(1)?))
    } else {
        Some(None)
    }
}

fn squeeze(cx: &mut Ctx) {
    let (Some(x), Some(dtype)) = (cx.shape(0), cx.dtype(0)) else {
        return;
    };
    let Some(axes) = axes(cx) else {
        return cx.set_dtype(0, dtype);
    };
    let drop: Vec<usize> = match axes {
        Some(a) => match norm_axes(&a, x.len()) {
            Some(a) if a.iter().all(|&i| !matches!(x[i], Dim::Known(v) if v != 1)) => a,
            _ => return,
        },
        // Every dim that is 1; undecidable while a dim is not a number.
        None if x.iter().all(|d| d.known().is_some()) => {
            (0..x.len()).filter(|&i| x[i] == Dim::Known(1)).collect()
        }
        None => return cx.set_dtype(0, dtype),
    };
    let shape = (0..x.len())
        .filter(|i| !drop.contains(i))
        .map(|i| x[i].clone())
        .collect();
    cx.set_shape(0, dtype, shape);
}

fn unsqueeze(cx: &mut Ctx) {
    let (Some(x), Some(dtype)) = (cx.shape(0), cx.dtype(0)) else {
        return;
    };
    let Some(Some(axes)) = axes(cx) else {
        return cx.set_dtype(0, dtype);
    };
    let r = x.len() + axes.len();
    let Some(axes) = norm_axes(&axes, r) else {
        return;
    };
    let mut rest = x.iter();
    let shape = (0..r)
        .map(|i| {
            if axes.contains(&i) {
                Some(Dim::Known(1))
            } else {
                rest.next().cloned()
            }
        })
        .collect::<Option<Vec<_>>>();
    if let Some(s) = shape {
        cx.set_shape(0, dtype, s);
    }
}

/// Two-way broadcast of the input with the target shape.
fn expand(cx: &mut Ctx) {
    let Some(dtype) = cx.dtype(0) else { return };
    let (Some(x), Some(t)) = (cx.shape(0), cx.dims_value(1)) else {
        return cx.set_dtype(0, dtype);
    };
    let r = x.len().max(t.len());
    let one = Dim::Known(1);
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        let a = if i + x.len() >= r {
            &x[i + x.len() - r]
        } else {
            &one
        };
        let b = if i + t.len() >= r {
            &t[i + t.len() - r]
        } else {
            &one
        };
        match broadcast_dim(a, b) {
            Some(d) => out.push(d),
            None => return,
        }
    }
    cx.set_shape(0, dtype, out);
}

fn tile(cx: &mut Ctx) {
    let Some(dtype) = cx.dtype(0) else { return };
    let (Some(x), Some(reps)) = (cx.shape(0), cx.dims_value(1)) else {
        return cx.set_dtype(0, dtype);
    };
    if reps.len() != x.len() {
        return;
    }
    let shape = x.iter().zip(&reps).map(|(d, r)| d.mul(r)).collect();
    cx.set_shape(0, dtype, shape);
}

fn constant_of_shape(cx: &mut Ctx) {
    let dtype = match cx.attrs().tensor("value") {
        Ok(Some(t)) => DType(t.data_type.unwrap_or(1)),
        Ok(None) => DType::FLOAT,
        Err(_) => return,
    };
    match cx.dims_value(0) {
        Some(s) => cx.set_shape(0, dtype, s),
        None => cx.set_dtype(0, dtype),
    }
}

/// `max(ceil((limit − start) / delta), 0)` elements.
fn range(cx: &mut Ctx) {
    let Some(dtype) = cx.dtype(0) else { return };
    let n = range_len(cx).unwrap_or(Dim::Unknown);
    cx.set_shape(0, dtype, vec![n]);
}

fn range_len(cx: &Ctx) -> Option<Dim> {
    if let (Some(s), Some(l), Some(d)) = (cx.floats(0), cx.floats(1), cx.floats(2)) {
        let (s, l, d) = (*s.first()?, *l.first()?, *d.first()?);
        if d == 0.0 || !(s.is_finite() && l.is_finite() && d.is_finite()) {
            return None;
        }
        return Some(Dim::Known(((l - s) / d).ceil().max(0.0) as i64));
    }
    let one = |i: usize| cx.dims_value(i).and_then(|v| v.first().cloned());
    let (s, l, d) = (one(0)?, one(1)?, one(2)?);
    match (&s, &l, &d) {
        (Dim::Known(s), Dim::Known(l), Dim::Known(d)) if *d != 0 => {
            let diff = l.checked_sub(*s)?;
            let mut n = diff / d;
            if diff % d != 0 && ((diff > 0) == (*d > 0)) {
                n += 1;
            }
            Some(Dim::Known(n.max(0)))
        }
        (_, _, Dim::Known(d)) if *d > 0 => {
            let span = l.sub(&s);
            span.is_non_negative().then(|| span.ceil_div(*d))
        }
        _ => None,
    }
}

/// The tensor's type, and its value when small.
fn constant(cx: &mut Ctx) {
    let Op::Constant(c) = cx.n.op() else { return };
    let Some(t) = c.tensor() else { return };
    let t = Tensor::from_proto(t);
    cx.set(0, TensorType::new(t.dtype(), t.dims()));
    if t.numel().is_some_and(|n| n <= MAX_CONST_ELEMS) {
        if let Some(v) = Val::of(&t) {
            cx.set_data(0, Data::Const(Arc::new(v)));
        }
    }
}

fn transpose(cx: &mut Ctx) {
    let (Some(x), Some(dtype)) = (cx.shape(0), cx.dtype(0)) else {
        return;
    };
    let perm = cx
        .ints_attr("perm")
        .unwrap_or_else(|| (0..x.len() as i64).rev().collect());
    if perm.len() != x.len() {
        return;
    }
    let shape = perm
        .iter()
        .map(|&p| usize::try_from(p).ok().and_then(|p| x.get(p)).cloned())
        .collect::<Option<Vec<_>>>();
    if let Some(s) = shape {
        cx.set_shape(0, dtype, s);
    }
}

/// `[N, C/b², H·b, W·b]`.
fn depth_to_space(cx: &mut Ctx) {
    let (Some(x), Some(dtype), Some(b)) = (cx.shape(0), cx.dtype(0), cx.int_attr("blocksize"))
    else {
        return;
    };
    if x.len() != 4 || b < 1 {
        return;
    }
    let b = Dim::Known(b);
    let shape = vec![
        x[0].clone(),
        x[1].div_exact(&b.mul(&b)),
        x[2].mul(&b),
        x[3].mul(&b),
    ];
    cx.set_shape(0, dtype, shape);
}

/// `[N, C·b², H/b, W/b]`.
fn space_to_depth(cx: &mut Ctx) {
    let (Some(x), Some(dtype), Some(b)) = (cx.shape(0), cx.dtype(0), cx.int_attr("blocksize"))
    else {
        return;
    };
    if x.len() != 4 || b < 1 {
        return;
    }
    let shape = vec![
        x[0].clone(),
        x[1].mul(&Dim::Known(b * b)),
        x[2].floor_div(b),
        x[3].floor_div(b),
    ];
    cx.set_shape(0, dtype, shape);
}
