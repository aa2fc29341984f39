//! Shape and dtype inference for the typed ops, keeping symbolic dims.
//!
//! Where inference cannot say (an opaque op, a data-dependent shape), the
//! type the model declared in `value_info` or the graph outputs is kept.

use crate::graph::Graph;
use crate::ids::{NodeId, ValueId};
use crate::op::{AutoPad, Op, Window};
use crate::shape::{Dim, TensorType};

/// Infers the type of every node output, in topological order. Declared
/// types are merged in: known dims win over symbols and unknowns.
pub fn infer_types(graph: &mut Graph) {
    let Ok(order) = graph.topo_order() else {
        return;
    };
    for id in order {
        infer_node(graph, id);
    }
}

/// Infers the types of one node's outputs from its inputs' types.
pub fn infer_node(graph: &mut Graph, id: NodeId) {
    let inferred = infer(graph, id);
    let outs: Vec<Option<ValueId>> = graph.node(id).outputs.clone();
    for (slot, out) in outs.into_iter().enumerate() {
        let Some(out) = out else { continue };
        let Some(Some(t)) = inferred.get(slot).cloned() else {
            continue;
        };
        let v = graph.value_mut(out);
        v.ty = Some(match &v.ty {
            Some(declared) => t.merge(declared),
            None => t,
        });
    }
}

fn infer(graph: &Graph, id: NodeId) -> Vec<Option<TensorType>> {
    let n = graph.node(id);
    let ty = |i: usize| n.input(i).and_then(|v| graph.value(v).ty.clone());
    let konst = |i: usize| -> Option<Vec<i64>> {
        n.input(i)
            .and_then(|v| graph.constant(v))
            .and_then(|t| t.to_i64().ok())
    };
    let one = |t: Option<TensorType>| vec![t];
    match n.op() {
        Op::Conv(c) => one(conv_out(ty(0), ty(1), &c.window, false)),
        Op::ConvTranspose(_) => vec![None],
        Op::BatchNormalization(_) => {
            let mut v = vec![ty(0)];
            v.resize(n.outputs.len(), None);
            v
        }
        Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) => one(broadcast(&[ty(0), ty(1)])),
        Op::Sum => one(broadcast(&(0..n.inputs.len()).map(ty).collect::<Vec<_>>())),
        Op::Relu
        | Op::Sigmoid
        | Op::HardSwish
        | Op::HardSigmoid { .. }
        | Op::Clip(_)
        | Op::Identity => one(ty(0)),
        Op::Dropout(_) => {
            let mut v = vec![ty(0)];
            if n.outputs.len() > 1 {
                v.push(ty(0).map(|t| TensorType {
                    dtype: crate::dtype::DType::BOOL,
                    shape: t.shape,
                }));
            }
            v
        }
        Op::Concat { axis } => one(concat(
            &(0..n.inputs.len()).map(ty).collect::<Vec<_>>(),
            *axis,
        )),
        Op::MaxPool(p) | Op::AveragePool(p) => {
            let out = pool_out(ty(0), &p.window, p.ceil_mode != 0);
            let mut v = vec![out];
            v.resize(n.outputs.len(), None);
            v
        }
        Op::GlobalAveragePool => one(ty(0).map(|t| TensorType {
            dtype: t.dtype,
            shape: t.shape.map(|s| {
                s.iter()
                    .enumerate()
                    .map(|(i, d)| if i < 2 { d.clone() } else { Dim::Known(1) })
                    .collect()
            }),
        })),
        Op::Gemm(g) => one(gemm_out(ty(0), ty(1), g.trans_a, g.trans_b)),
        Op::MatMul => one(matmul_out(ty(0), ty(1))),
        Op::Flatten { axis } => one(ty(0).and_then(|t| {
            let s = t.shape.as_ref()?;
            let r = s.len() as i64;
            let axis = if *axis < 0 { axis + r } else { *axis };
            if !(0..=r).contains(&axis) {
                return None;
            }
            let prod = |d: &[Dim]| -> Dim {
                // One dim is itself, symbolic or not (Flatten of [N, C, H, W]
                // keeps the batch N).
                if let [only] = d {
                    return only.clone();
                }
                d.iter()
                    .map(Dim::known)
                    .try_fold(1i64, |a, x| x.and_then(|x| a.checked_mul(x)))
                    .map(Dim::Known)
                    .unwrap_or(Dim::Unknown)
            };
            let (a, b) = s.split_at(axis as usize);
            Some(TensorType {
                dtype: t.dtype,
                shape: Some(vec![prod(a), prod(b)]),
            })
        })),
        Op::Reshape(r) => {
            let target = r.shape.clone().or_else(|| konst(1));
            one(ty(0).and_then(|t| reshape_out(&t, target?, r.allowzero != 0)))
        }
        Op::Transpose { perm } => one(ty(0).and_then(|t| {
            let s = t.shape.as_ref()?;
            let perm: Vec<i64> = perm
                .clone()
                .unwrap_or_else(|| (0..s.len() as i64).rev().collect());
            if perm.len() != s.len() {
                return None;
            }
            let shape = perm
                .iter()
                .map(|&p| s.get(p as usize).cloned())
                .collect::<Option<Vec<_>>>()?;
            Some(TensorType {
                dtype: t.dtype,
                shape: Some(shape),
            })
        })),
        Op::Constant(c) => one(c
            .tensor()
            .map(|t| TensorType::new(crate::dtype::DType(t.data_type.unwrap_or(0)), &t.dims))),
        Op::Pad(p) => {
            let pads = p.pads.clone().or_else(|| konst(1));
            one(ty(0).and_then(|t| {
                let s = t.shape.as_ref()?;
                let pads = pads?;
                if n.input(3).is_some() || pads.len() != 2 * s.len() {
                    return None;
                }
                let r = s.len();
                let shape = s
                    .iter()
                    .enumerate()
                    .map(|(i, d)| match d {
                        Dim::Known(v) => v
                            .checked_add(pads[i])
                            .and_then(|v| v.checked_add(pads[i + r]))
                            .map_or(Dim::Unknown, Dim::Known),
                        _ if pads[i] == 0 && pads[i + r] == 0 => d.clone(),
                        _ => Dim::Unknown,
                    })
                    .collect();
                Some(TensorType {
                    dtype: t.dtype,
                    shape: Some(shape),
                })
            }))
        }
        Op::Slice(sl) => {
            let (starts, ends, axes, steps) = match &sl.starts {
                Some(starts) => (Some(starts.clone()), sl.ends.clone(), sl.axes.clone(), None),
                None => (konst(1), konst(2), konst(3), konst(4)),
            };
            let absent_or_known =
                |slot: usize, v: &Option<Vec<i64>>| n.input(slot).is_none() || v.is_some();
            if sl.starts.is_none() && !(absent_or_known(3, &axes) && absent_or_known(4, &steps)) {
                return vec![None];
            }
            one(ty(0).and_then(|t| slice_out(&t, starts?, ends?, axes, steps)))
        }
        Op::Other if n.domain().is_empty() || n.domain() == "ai.onnx" => {
            let mut v = vec![infer_standard_other(
                n.op_type(),
                n.attributes(),
                ty(0),
                konst(1),
            )];
            v.resize(n.outputs.len(), None);
            v
        }
        Op::Split(_) | Op::Other => vec![None; n.outputs.len()],
    }
}

/// Types of common standard ops the IR keeps opaque: shape-preserving
/// element-wise ops and the reductions (SE blocks' ReduceMean).
fn infer_standard_other(
    op_type: &str,
    attrs: &[crate::proto::AttributeProto],
    x: Option<TensorType>,
    axes_input: Option<Vec<i64>>,
) -> Option<TensorType> {
    let a = crate::attr::Attrs(attrs);
    match op_type {
        "Erf"
        | "Tanh"
        | "Exp"
        | "Log"
        | "Neg"
        | "Sqrt"
        | "Abs"
        | "Reciprocal"
        | "LeakyRelu"
        | "Elu"
        | "Selu"
        | "Softplus"
        | "Softsign"
        | "Gelu"
        | "Mish"
        | "PRelu"
        | "Softmax"
        | "LogSoftmax"
        | "Floor"
        | "Ceil"
        | "Round"
        | "Sign"
        | "Celu"
        | "ThresholdedRelu"
        | "LRN"
        | "InstanceNormalization"
        | "LayerNormalization" => x,
        "Cast" => {
            let to = a.int("to").ok()??;
            x.map(|t| TensorType {
                dtype: crate::dtype::DType(to as i32),
                shape: t.shape,
            })
        }
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL2"
        | "ReduceL1" => {
            let x = x?;
            let s = x.shape.as_ref()?;
            let r = s.len() as i64;
            let keep = a.int("keepdims").ok()?.unwrap_or(1) != 0;
            let axes = match a.ints("axes").ok()? {
                Some(v) => v,
                None => axes_input.unwrap_or_else(|| (0..r).collect()),
            };
            let axes: Vec<i64> = axes
                .iter()
                .map(|&v| if v < 0 { v + r } else { v })
                .collect();
            let mut out = Vec::new();
            for (i, d) in s.iter().enumerate() {
                if axes.contains(&(i as i64)) {
                    if keep {
                        out.push(Dim::Known(1));
                    }
                } else {
                    out.push(d.clone());
                }
            }
            Some(TensorType {
                dtype: x.dtype,
                shape: Some(out),
            })
        }
        _ => None,
    }
}

/// Output spatial size of a window op along one axis.
fn window_dim(
    input: &Dim,
    k: i64,
    stride: i64,
    dilation: i64,
    pad: (i64, i64),
    auto_pad: AutoPad,
    ceil: bool,
) -> Dim {
    let Dim::Known(x) = *input else {
        return Dim::Unknown;
    };
    // A stride of 0 would divide by zero, and attributes from the file can
    // overflow i64: both leave the dim unknown rather than panic.
    if stride <= 0 {
        return Dim::Unknown;
    }
    let v = (|| {
        let ek = (k - 1).checked_mul(dilation)?.checked_add(1)?;
        Some(match auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => x.checked_add(stride - 1)? / stride,
            AutoPad::Valid => x.checked_sub(ek)? / stride + 1,
            AutoPad::NotSet => {
                let span = x.checked_add(pad.0)?.checked_add(pad.1)?.checked_sub(ek)?;
                if span < 0 {
                    return None;
                }
                if ceil {
                    let mut o = span.checked_add(stride - 1)? / stride + 1;
                    // The last window must start inside the input or left pad.
                    if (o - 1).checked_mul(stride)? >= x.checked_add(pad.0)? {
                        o -= 1;
                    }
                    o
                } else {
                    span / stride + 1
                }
            }
        })
    })();
    match v {
        Some(v) if v > 0 => Dim::Known(v),
        _ => Dim::Unknown,
    }
}

fn spatial(x: &[Dim], kernel: &[i64], w: &Window, ceil: bool) -> Option<Vec<Dim>> {
    let n = kernel.len();
    if x.len() != n + 2 {
        return None;
    }
    let (s, d, p) = (w.strides(n), w.dilations(n), w.pads(n));
    if s.len() != n || d.len() != n || p.len() != 2 * n {
        return None;
    }
    Some(
        (0..n)
            .map(|i| {
                window_dim(
                    &x[i + 2],
                    kernel[i],
                    s[i],
                    d[i],
                    (p[i], p[i + n]),
                    w.auto_pad,
                    ceil,
                )
            })
            .collect(),
    )
}

fn conv_out(
    x: Option<TensorType>,
    w: Option<TensorType>,
    win: &Window,
    ceil: bool,
) -> Option<TensorType> {
    let x = x?;
    let ws = w?.shape?;
    let xs = x.shape.as_ref()?;
    if ws.len() < 3 {
        return None;
    }
    let kernel: Vec<i64> = match &win.kernel_shape {
        Some(k) => k.clone(),
        None => ws[2..].iter().map(Dim::known).collect::<Option<_>>()?,
    };
    let mut shape = vec![xs.first()?.clone(), ws[0].clone()];
    shape.extend(spatial(xs, &kernel, win, ceil)?);
    Some(TensorType {
        dtype: x.dtype,
        shape: Some(shape),
    })
}

fn pool_out(x: Option<TensorType>, win: &Window, ceil: bool) -> Option<TensorType> {
    let x = x?;
    let xs = x.shape.as_ref()?;
    let kernel = win.kernel_shape.clone()?;
    let mut shape = vec![xs.first()?.clone(), xs.get(1)?.clone()];
    shape.extend(spatial(xs, &kernel, win, ceil)?);
    Some(TensorType {
        dtype: x.dtype,
        shape: Some(shape),
    })
}

/// Numpy-style broadcast of several inputs.
pub fn broadcast(ts: &[Option<TensorType>]) -> Option<TensorType> {
    let ts: Vec<&TensorType> = ts.iter().map(Option::as_ref).collect::<Option<_>>()?;
    let dtype = ts.first()?.dtype;
    let shapes: Vec<&Vec<Dim>> = ts.iter().map(|t| t.shape.as_ref()).collect::<Option<_>>()?;
    let rank = shapes.iter().map(|s| s.len()).max()?;
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let mut d = Dim::Known(1);
        for s in &shapes {
            let off = rank - s.len();
            if i < off {
                continue;
            }
            let x = &s[i - off];
            d = match (&d, x) {
                (Dim::Known(1), _) => x.clone(),
                (_, Dim::Known(1)) => d,
                (Dim::Known(a), Dim::Known(b)) if a == b => d,
                (Dim::Known(_), Dim::Known(_)) => return None,
                (Dim::Known(_), _) => d,
                (_, Dim::Known(_)) => x.clone(),
                (Dim::Sym(a), Dim::Sym(b)) if a == b => d,
                _ => Dim::Unknown,
            };
        }
        out.push(d);
    }
    Some(TensorType {
        dtype,
        shape: Some(out),
    })
}

fn concat(ts: &[Option<TensorType>], axis: i64) -> Option<TensorType> {
    let ts: Vec<&TensorType> = ts.iter().map(Option::as_ref).collect::<Option<_>>()?;
    let first = ts.first()?;
    let mut shape = first.shape.clone()?;
    let r = shape.len() as i64;
    let axis = if axis < 0 { axis + r } else { axis };
    if !(0..r).contains(&axis) {
        return None;
    }
    let a = axis as usize;
    let mut total = Some(0i64);
    for t in &ts {
        let s = t.shape.as_ref()?;
        if s.len() != shape.len() {
            return None;
        }
        total = match (total, s[a].known()) {
            (Some(acc), Some(v)) => acc.checked_add(v),
            _ => None,
        };
    }
    shape[a] = total.map(Dim::Known).unwrap_or(Dim::Unknown);
    Some(TensorType {
        dtype: first.dtype,
        shape: Some(shape),
    })
}

fn gemm_out(
    a: Option<TensorType>,
    b: Option<TensorType>,
    ta: bool,
    tb: bool,
) -> Option<TensorType> {
    let a = a?;
    let (sa, sb) = (a.shape.as_ref()?, b?.shape?);
    if sa.len() != 2 || sb.len() != 2 {
        return None;
    }
    let m = if ta { sa[1].clone() } else { sa[0].clone() };
    let n = if tb { sb[0].clone() } else { sb[1].clone() };
    Some(TensorType {
        dtype: a.dtype,
        shape: Some(vec![m, n]),
    })
}

fn matmul_out(a: Option<TensorType>, b: Option<TensorType>) -> Option<TensorType> {
    let a = a?;
    let (sa, sb) = (a.shape.clone()?, b?.shape?);
    if sa.len() < 2 || sb.len() < 2 {
        return None;
    }
    let batch_a = TensorType {
        dtype: a.dtype,
        shape: Some(sa[..sa.len() - 2].to_vec()),
    };
    let batch_b = TensorType {
        dtype: a.dtype,
        shape: Some(sb[..sb.len() - 2].to_vec()),
    };
    let mut shape = broadcast(&[Some(batch_a), Some(batch_b)])?.shape?;
    shape.push(sa[sa.len() - 2].clone());
    shape.push(sb[sb.len() - 1].clone());
    Some(TensorType {
        dtype: a.dtype,
        shape: Some(shape),
    })
}

/// Output shape of Slice, with ONNX's clamping of starts and ends.
fn slice_out(
    x: &TensorType,
    starts: Vec<i64>,
    ends: Vec<i64>,
    axes: Option<Vec<i64>>,
    steps: Option<Vec<i64>>,
) -> Option<TensorType> {
    let s = x.shape.as_ref()?;
    let r = s.len() as i64;
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return None;
    }
    let mut out = s.clone();
    for i in 0..starts.len() {
        let axis = if axes[i] < 0 { axes[i] + r } else { axes[i] };
        if !(0..r).contains(&axis) || steps[i] == 0 {
            return None;
        }
        let Dim::Known(d) = s[axis as usize] else {
            out[axis as usize] = Dim::Unknown;
            continue;
        };
        if d <= 0 {
            // An empty dim stays empty (the clamp ranges below would be
            // empty, and `clamp` panics); a negative declared dim is unknown.
            out[axis as usize] = if d == 0 { Dim::Known(0) } else { Dim::Unknown };
            continue;
        }
        let step = steps[i];
        let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (start, end) = if step > 0 {
            (norm(starts[i]).clamp(0, d), norm(ends[i]).clamp(0, d))
        } else {
            (
                norm(starts[i]).clamp(0, d - 1),
                norm(ends[i]).clamp(-1, d - 1),
            )
        };
        // ceil(span / |step|) as (span - 1) / |step| + 1: no overflow for
        // steps near i64::MAX or i64::MIN.
        let len = if step > 0 {
            if end > start {
                (end - start - 1) / step + 1
            } else {
                0
            }
        } else if start > end {
            ((start - end - 1) as u64 / step.unsigned_abs()) as i64 + 1
        } else {
            0
        };
        out[axis as usize] = Dim::Known(len);
    }
    Some(TensorType {
        dtype: x.dtype,
        shape: Some(out),
    })
}

fn reshape_out(x: &TensorType, target: Vec<i64>, allowzero: bool) -> Option<TensorType> {
    let s = x.shape.as_ref()?;
    let mut out: Vec<Dim> = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &t) in target.iter().enumerate() {
        out.push(match t {
            0 if !allowzero => s.get(i)?.clone(),
            -1 => {
                infer_at = Some(i);
                Dim::Unknown
            }
            v if v >= 0 => Dim::Known(v),
            _ => return None,
        });
    }
    if let Some(i) = infer_at {
        let total: Option<i64> = s
            .iter()
            .map(Dim::known)
            .try_fold(1i64, |a, d| d.and_then(|d| a.checked_mul(d)));
        let known: Option<i64> = out
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, d)| d.known())
            .try_fold(1i64, |a, d| d.and_then(|d| a.checked_mul(d)));
        if let (Some(t), Some(k)) = (total, known) {
            // checked: k may be 0, and i64::MIN % -1 overflows.
            if t.checked_rem(k) == Some(0) {
                out[i] = Dim::Known(t / k);
            }
        }
    }
    Some(TensorType {
        dtype: x.dtype,
        shape: Some(out),
    })
}
