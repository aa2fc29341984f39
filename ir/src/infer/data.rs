//! Values carried by inference: small constants, and shape tensors element
//! by element.
//!
//! * A node whose inputs are all small constants is computed with the
//!   shared evaluator ([`crate::eval`]) — a `Constant` node's value, a
//!   `Concat` of two of them, a `Cast` of one.
//! * A 0-D or 1-D integer tensor computed from shapes is carried as dims
//!   (ONNX's `data_prop`): `Shape(x)` of `x: [N, 3, 640, 640]` is
//!   `[N, 3, 640, 640]`, `Gather(·, 0)` of it is `N`, and arithmetic,
//!   comparisons and `Where` on such elements stay symbolic where they can
//!   and become unknown where they cannot. The rules read them back with
//!   [`Ctx::dims_value`] (Reshape, Expand, Tile, ConstantOfShape, Range,
//!   Resize, Slice, Pad, TopK …).

use std::sync::Arc;

use super::{Ctx, Rule, MAX_CONST_ELEMS};
use crate::dtype::DType;
use crate::eval::{self, Val};
use crate::shape::{Dim, TensorType};

/// Shape tensors longer than this are not carried element by element.
pub const MAX_DIMS: usize = 64;

/// A value inference knows (wholly or in part).
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// A small constant of any dtype.
    Const(Arc<Val>),
    /// The elements of a 0-D (`scalar`) or 1-D integer-valued tensor.
    Dims { scalar: bool, elems: Vec<Dim> },
}

impl Data {
    /// A 1-D tensor of dims.
    pub fn dims(elems: Vec<Dim>) -> Data {
        Data::Dims {
            scalar: false,
            elems,
        }
    }

    /// A 0-D tensor holding one dim.
    pub fn scalar(d: Dim) -> Data {
        Data::Dims {
            scalar: true,
            elems: vec![d],
        }
    }

    /// The elements of a 0-D or 1-D integer-valued tensor.
    pub fn elems(&self) -> Option<Vec<Dim>> {
        match self {
            Data::Dims { elems, .. } => Some(elems.clone()),
            Data::Const(v) => {
                if v.dims.len() > 1 || v.numel() > MAX_DIMS {
                    return None;
                }
                let ints = match v.dtype {
                    DType::FLOAT => integral(v.f32s().into_iter().map(f64::from))?,
                    DType::DOUBLE => integral(v.f64s().into_iter())?,
                    _ => v.ints()?,
                };
                Some(ints.into_iter().map(Dim::Known).collect())
            }
        }
    }

    /// True for a 0-D value.
    pub fn is_scalar(&self) -> bool {
        match self {
            Data::Dims { scalar, .. } => *scalar,
            Data::Const(v) => v.dims.is_empty(),
        }
    }

    /// The value as a constant of `dtype` (int64 by default) when every
    /// element is known.
    pub fn to_const(&self, dtype: Option<DType>) -> Option<Arc<Val>> {
        let (scalar, elems) = match self {
            Data::Const(v) => return Some(v.clone()),
            Data::Dims { scalar, elems } => (*scalar, elems),
        };
        let ints: Vec<i64> = elems.iter().map(Dim::known).collect::<Option<_>>()?;
        let dims = if scalar {
            vec![]
        } else {
            vec![ints.len() as i64]
        };
        let dtype = dtype.unwrap_or(DType::INT64);
        let bytes = match dtype {
            DType::FLOAT => ints
                .iter()
                .flat_map(|&i| (i as f32).to_le_bytes())
                .collect(),
            DType::DOUBLE => ints
                .iter()
                .flat_map(|&i| (i as f64).to_le_bytes())
                .collect(),
            _ => eval::encode_ints(dtype, &ints)?,
        };
        Some(Arc::new(Val {
            dtype,
            dims,
            bytes: bytes.into(),
        }))
    }

    /// The type of the value (`dtype` for element-wise dims: int64 unless
    /// declared otherwise).
    pub fn ty(&self, dtype: Option<DType>) -> Option<TensorType> {
        match self {
            Data::Const(v) => Some(TensorType::new(v.dtype, &v.dims)),
            Data::Dims { scalar, elems } => {
                let dims: &[i64] = if *scalar { &[] } else { &[elems.len() as i64] };
                Some(TensorType::new(dtype.unwrap_or(DType::INT64), dims))
            }
        }
    }
}

fn integral(v: impl Iterator<Item = f64>) -> Option<Vec<i64>> {
    v.map(|f| (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64))
        .collect()
}

/// Ops whose only rule is data propagation (their type follows from it).
pub(crate) const RULES: &[(&str, Rule)] = &[];

/// The node's single output computed by the evaluator when every present
/// input is a small constant.
pub(crate) fn evaluate(cx: &Ctx) -> Option<Data> {
    let op = cx.n.op_type();
    if !eval::can_evaluate(op) || cx.n.has_subgraphs() {
        return None;
    }
    let mut ins = Vec::with_capacity(cx.n_inputs());
    for i in 0..cx.n_inputs() {
        if !cx.has_input(i) {
            ins.push(None);
            continue;
        }
        ins.push(Some(Val::clone(&*cx.konst(i)?)));
    }
    let v = eval::evaluate(op, cx.n.attributes(), cx.opset(), &ins)?;
    (v.numel() as u64 <= MAX_CONST_ELEMS).then(|| Data::Const(Arc::new(v)))
}

/// The node's output as dims, from its inputs' dims, for the ops shape
/// arithmetic uses.
pub(crate) fn propagate(cx: &mut Ctx) {
    let Some(out) = propagate_op(cx) else { return };
    if let Data::Dims { elems, .. } = &out {
        if elems.len() > MAX_DIMS {
            return;
        }
    }
    cx.set_data(0, out);
}

fn elems(cx: &Ctx, i: usize) -> Option<(bool, Vec<Dim>)> {
    let d = cx.data(i)?;
    Some((d.is_scalar(), d.elems()?))
}

fn propagate_op(cx: &Ctx) -> Option<Data> {
    let op = cx.n.op_type();
    match op {
        "Identity" | "Floor" | "Ceil" | "Round" => {
            let (scalar, e) = elems(cx, 0)?;
            Some(Data::Dims { scalar, elems: e })
        }
        "Cast" | "CastLike" => {
            let (scalar, e) = elems(cx, 0)?;
            let to = cx.out.first()?.as_ref()?.dtype;
            let e = if to == DType::BOOL {
                e.iter()
                    .map(|d| match d {
                        Dim::Known(v) => Dim::Known((*v != 0) as i64),
                        _ => Dim::Unknown,
                    })
                    .collect()
            } else {
                e
            };
            Some(Data::Dims { scalar, elems: e })
        }
        "Gather" => {
            let (scalar, e) = elems(cx, 0)?;
            let axis = cx.int_attr("axis").unwrap_or(0);
            if scalar || !(axis == 0 || axis == -1) {
                return None;
            }
            let idx = cx.konst(1)?;
            let len = e.len() as i64;
            let picked = idx
                .ints()?
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + len } else { i };
                    (0..len).contains(&j).then(|| e[j as usize].clone())
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Data::Dims {
                scalar: idx.dims.is_empty(),
                elems: picked,
            })
        }
        "Slice" => {
            let (scalar, e) = elems(cx, 0)?;
            if scalar {
                return None;
            }
            let (starts, ends, axes, steps) = if cx.opset() < 10 {
                (
                    cx.ints_attr("starts")?,
                    cx.ints_attr("ends")?,
                    cx.ints_attr("axes"),
                    None,
                )
            } else {
                let opt = |i: usize| -> Option<Option<Vec<i64>>> {
                    if cx.has_input(i) {
                        Some(Some(cx.ints(i)?))
                    } else {
                        Some(None)
                    }
                };
                (cx.ints(1)?, cx.ints(2)?, opt(3)?, opt(4)?)
            };
            let index = Val::from_i64(
                vec![e.len() as i64],
                &(0..e.len() as i64).collect::<Vec<_>>(),
            );
            let picked = eval::slice(&index, &starts, &ends, axes.as_deref(), steps.as_deref())?;
            Some(Data::dims(
                picked
                    .ints()?
                    .iter()
                    .map(|&i| e[i as usize].clone())
                    .collect(),
            ))
        }
        "Concat" => {
            let mut all = Vec::new();
            for i in 0..cx.n_inputs() {
                let (scalar, e) = elems(cx, i)?;
                if scalar {
                    return None;
                }
                all.extend(e);
            }
            Some(Data::dims(all))
        }
        "Unsqueeze" => {
            let (scalar, e) = elems(cx, 0)?;
            let axes = if cx.opset() < 13 {
                cx.ints_attr("axes")?
            } else {
                cx.ints(1)?
            };
            (scalar && (axes == [0] || axes == [-1])).then(|| Data::dims(e))
        }
        "Squeeze" => {
            let (scalar, e) = elems(cx, 0)?;
            (!scalar && e.len() == 1).then(|| Data::scalar(e[0].clone()))
        }
        "Reshape" => {
            let (_, e) = elems(cx, 0)?;
            let target = cx.ints(1)?;
            match target.as_slice() {
                [] if e.len() == 1 => Some(Data::scalar(e[0].clone())),
                [-1] => Some(Data::dims(e)),
                [n] if *n as usize == e.len() => Some(Data::dims(e)),
                _ => None,
            }
        }
        "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" | "Equal" | "Less" | "Greater"
        | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or" => {
            if cx.n_inputs() != 2 {
                return None;
            }
            let float = cx.dtype(0).is_some_and(DType::is_float);
            binary(op, elems(cx, 0)?, elems(cx, 1)?, float)
        }
        "Neg" | "Abs" | "Not" => {
            let (scalar, e) = elems(cx, 0)?;
            let e = e
                .iter()
                .map(|d| match (op, d) {
                    ("Neg", _) => d.mul(&Dim::Known(-1)),
                    ("Abs", Dim::Known(v)) => Dim::Known(v.saturating_abs()),
                    ("Abs", _) if d.is_non_negative() => d.clone(),
                    ("Not", Dim::Known(v)) => Dim::Known((*v == 0) as i64),
                    _ => Dim::Unknown,
                })
                .collect();
            Some(Data::Dims { scalar, elems: e })
        }
        "Where" => {
            let (c, x, y) = (elems(cx, 0)?, elems(cx, 1)?, elems(cx, 2)?);
            let lens = [c.1.len(), x.1.len(), y.1.len()];
            let n = lens.into_iter().max()?;
            if lens.iter().any(|&l| l != 1 && l != n) {
                return None;
            }
            let pick = |e: &[Dim], i: usize| e[if e.len() == 1 { 0 } else { i }].clone();
            let e = (0..n)
                .map(|i| {
                    let (a, b) = (pick(&x.1, i), pick(&y.1, i));
                    match pick(&c.1, i) {
                        Dim::Known(0) => b,
                        Dim::Known(_) => a,
                        _ if a == b => a,
                        _ => Dim::Unknown,
                    }
                })
                .collect();
            Some(Data::Dims {
                scalar: c.0 && x.0 && y.0,
                elems: e,
            })
        }
        "ConstantOfShape" => {
            let shape = cx.ints(0)?;
            let fill = match cx.attrs().tensor("value").ok()? {
                Some(t) => {
                    let v = Val::of(&crate::tensor::Tensor::from_proto(t.clone()))?;
                    Data::Const(Arc::new(v)).elems()?.first()?.clone()
                }
                None => Dim::Known(0),
            };
            match shape.as_slice() {
                [] => Some(Data::scalar(fill)),
                [n] if (0..=MAX_DIMS as i64).contains(n) => {
                    Some(Data::dims(vec![fill; *n as usize]))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

type Elems = (bool, Vec<Dim>);

/// Numpy broadcasting of two 0-D/1-D operands into pairs.
fn broadcast_pairs(a: &Elems, b: &Elems) -> Option<(bool, Vec<(Dim, Dim)>)> {
    let (la, lb) = (a.1.len(), b.1.len());
    let n = if la == lb || lb == 1 {
        la
    } else if la == 1 {
        lb
    } else {
        return None;
    };
    let pick = |e: &Vec<Dim>, i: usize| e[if e.len() == 1 { 0 } else { i }].clone();
    Some((
        a.0 && b.0,
        (0..n).map(|i| (pick(&a.1, i), pick(&b.1, i))).collect(),
    ))
}

fn binary(op: &str, a: Elems, b: Elems, float: bool) -> Option<Data> {
    let (scalar, pairs) = broadcast_pairs(&a, &b)?;
    let bool_of = |v: Option<bool>| v.map_or(Dim::Unknown, |b| Dim::Known(b as i64));
    let elems = pairs
        .iter()
        .map(|(x, y)| match op {
            "Add" => x.add(y),
            "Sub" => x.sub(y),
            "Mul" => x.mul(y),
            "Div" => divide(x, y, float),
            "Max" | "Min" => match (x, y) {
                (Dim::Known(p), Dim::Known(q)) => {
                    Dim::Known(if op == "Max" { *p.max(q) } else { *p.min(q) })
                }
                _ if x == y => x.clone(),
                // A dim is never negative: max(d, k ≤ 0) = d.
                (d, Dim::Known(k)) | (Dim::Known(k), d)
                    if op == "Max" && *k <= 0 && d.is_non_negative() =>
                {
                    d.clone()
                }
                _ => Dim::Unknown,
            },
            "Equal" => bool_of(compare_eq(x, y)),
            "Less" => bool_of(less(x, y)),
            "Greater" => bool_of(less(y, x)),
            "LessOrEqual" => bool_of(less(y, x).map(|v| !v)),
            "GreaterOrEqual" => bool_of(less(x, y).map(|v| !v)),
            "And" | "Or" => match (x.known(), y.known()) {
                (Some(p), Some(q)) => {
                    let (p, q) = (p != 0, q != 0);
                    Dim::Known(if op == "And" { p && q } else { p || q } as i64)
                }
                _ => Dim::Unknown,
            },
            _ => Dim::Unknown,
        })
        .collect();
    Some(Data::Dims { scalar, elems })
}

/// Division as the runtime does it: integers truncate toward zero (for
/// dims, which are never negative, that is floor); float values are kept
/// only while they stay integers.
fn divide(x: &Dim, y: &Dim, float: bool) -> Dim {
    match (x, y) {
        (Dim::Known(a), Dim::Known(b)) if *b != 0 => {
            if float {
                if a % b == 0 {
                    Dim::Known(a / b)
                } else {
                    Dim::Unknown
                }
            } else {
                a.checked_div(*b).map_or(Dim::Unknown, Dim::Known)
            }
        }
        (_, Dim::Known(b)) if *b > 0 && !float && x.is_non_negative() => x.floor_div(*b),
        _ => x.div_exact(y),
    }
}

fn compare_eq(x: &Dim, y: &Dim) -> Option<bool> {
    match (x, y) {
        (Dim::Known(a), Dim::Known(b)) => Some(a == b),
        (Dim::Unknown, _) | (_, Dim::Unknown) => None,
        _ if x == y => Some(true),
        // A dim is never negative.
        (d, Dim::Known(k)) | (Dim::Known(k), d) if *k < 0 && d.is_non_negative() => Some(false),
        _ => None,
    }
}

fn less(x: &Dim, y: &Dim) -> Option<bool> {
    match (x, y) {
        (Dim::Known(a), Dim::Known(b)) => Some(a < b),
        _ if x == y && *x != Dim::Unknown => Some(false),
        (d, Dim::Known(k)) if *k <= 0 && d.is_non_negative() => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_on_symbols() {
        let n = Dim::sym("N");
        assert_eq!(compare_eq(&n, &n), Some(true));
        assert_eq!(compare_eq(&n, &Dim::Known(-1)), Some(false));
        assert_eq!(compare_eq(&n, &Dim::Known(3)), None);
        assert_eq!(less(&n, &Dim::Known(0)), Some(false));
        assert_eq!(
            divide(&n.mul(&Dim::Known(4)), &Dim::Known(2), false).to_string(),
            "2*N"
        );
        assert_eq!(
            divide(&Dim::Known(-7), &Dim::Known(2), false),
            Dim::Known(-3)
        );
        assert_eq!(divide(&Dim::Known(7), &Dim::Known(2), true), Dim::Unknown);
    }
}
