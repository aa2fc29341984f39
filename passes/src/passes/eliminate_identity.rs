//! `eliminate-identity`: removes nodes that compute their input unchanged.
//!
//! Before:  y = Identity(x);  z = Relu(y)
//! After:   z = Relu(x)
//!
//! Rules (each removes one node; its readers read the input instead):
//! * `identity`: Identity;
//! * `dropout`: Dropout at inference — its mask output unread; opset ≥ 12
//!   with no `training_mode` input or a constant false one, opsets 7–11
//!   always, opsets < 7 only with `is_test=1`; any ratio;
//! * `noop-reshape`: Reshape whose output shape equals its input shape, both
//!   fully known;
//! * `noop-flatten`: Flatten of a rank-2 input with axis 1 (or −1);
//! * `noop-transpose`: Transpose with the identity permutation (or no perm
//!   on a rank ≤ 1 input);
//! * `noop-cast`: Cast to the input's own dtype;
//! * `noop-pad`: Pad whose pads are constant and all zero (any mode);
//! * `noop-slice`: Slice with constant starts that normalise to 0, ends that
//!   reach the dim, steps 1, on axes of known size;
//! * `noop-expand`: Expand to a constant shape that broadcasts to the
//!   input's own (fully known) shape;
//! * `single-input`: Concat or Sum of a single input;
//! * `reshape-reshape`: a Reshape of a Reshape, Flatten, Squeeze or
//!   Unsqueeze read only by it reads the inner one's input instead (a
//!   reshape depends only on the element order, which none changes), when the outer shape is a constant
//!   without 0 (0 copies a dim of the input, which would change); the
//!   outer one may then be a no-op (LeViT's `bn(x.flatten(0, 1))
//!   .reshape_as(x)` once the BN is folded);
//! * `neutral-operand`: `x + 0`, `0 + x`, `x − 0`, `x · 1`, `1 · x`, `x / 1`
//!   with a constant of zeros (ones) that does not broadcast `x` to a
//!   bigger shape (TorchScript exports MobileOne's absent identity branch
//!   as `+ 0`). `x · 1`, `x / 1`, `x − (+0)` and `x + (−0)` are `x` bit for
//!   bit. `x + (+0)` and `x − (−0)` are not: at `x = −0` they give `+0`,
//!   and `Reciprocal(x + 0)` at `x = −0` is `+inf` where `Reciprocal(x)` is
//!   `−inf`. Those two are removed only when the sign of a zero cannot
//!   reach anything that tells ±0 apart (`zero_sign_observer`):
//!   every path from the result goes through ops whose *value* is the same
//!   for ±0 inputs (Conv, Gemm, MatMul, Add, Mul, Relu, pools, BN, shape
//!   ops, … — their own zero results may differ in sign only) and ends at
//!   a graph output (±0 compare equal), at an op that maps ±0 to one
//!   value (Sigmoid, Exp, Softmax, Abs, comparisons, …) or at a sum with a
//!   constant that has no zero (a conv's bias: `±0 + b = b`). A divisor,
//!   Reciprocal, Pow, an unknown op or a subgraph keeps the node, and the
//!   report says which.
//!
//! Preconditions: default domain; no other output read. Graph outputs keep
//! their names: when the removed node computes a graph output, its input
//! takes over that name, which needs the input to be a plain node output
//! (not a graph input, initializer or graph output, with no `value_info`
//! entry). An Identity from a graph input (or initializer) to a graph
//! output is the interface itself and is kept.

use npuopt_ir::attr::Attrs;
use npuopt_ir::{Graph, NodeId, Op, Use, ValueId};

use crate::change::Change;
use crate::pass::{for_each_live_node, Pass, PassContext, PassError};

pub struct EliminateIdentity;

const NAME: &str = "eliminate-identity";

impl Pass for EliminateIdentity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "remove Identity, inference Dropout and no-op Reshape/Flatten/Transpose/Cast/Pad/Slice/Expand/Concat/Sum"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let g = &mut model.graph;
        for_each_live_node(g, cx, |g, id, cx| {
            if collapse_reshapes(g, id, cx) {
                return;
            }
            let matched = match match_noop(g, id) {
                Some(rule) => g.node(id).input(0).map(|i| (rule, i, None)),
                None => match_neutral_operand(g, id),
            };
            let Some((rule, input, keep_reason)) = matched else {
                return;
            };
            let n = g.node(id);
            let name = n.name().to_string();
            let op_type = n.op_type().to_string();
            let Some(out) = n.output(0) else {
                return;
            };
            if let Err(why) = keep_reason.map_or_else(|| can_bypass(g, out, input), Err) {
                cx.skip(
                    NAME,
                    rule,
                    &name,
                    format!("{op_type} '{name}' is kept: {why}"),
                );
                return;
            }
            let in_name = g.value(input).name().to_string();
            crate::rewrite::bypass(g, id, input);
            cx.record(
                Change::new(
                    NAME,
                    rule,
                    &[&name],
                    format!("removed {op_type} '{name}': its readers now read '{in_name}'"),
                )
                .removed(&[&name]),
            );
        })
    }
}

/// Whether the readers of `out` can read `input` instead without the IR
/// having to re-create an Identity to keep a name alive.
fn can_bypass(g: &Graph, out: ValueId, input: ValueId) -> Result<(), String> {
    if g.value(out)
        .uses()
        .iter()
        .any(|u| matches!(u, Use::Capture { .. }))
    {
        return Err("its output is read by a subgraph".into());
    }
    if !g.is_graph_output(out) {
        return Ok(());
    }
    let v = g.value(input);
    if v.producer().is_none() {
        return Err(
            "it maps a graph input or initializer to a graph output (interface names)".into(),
        );
    }
    if g.is_graph_output(input) {
        return Err("its input and output are both graph outputs".into());
    }
    if g.has_value_info(input) {
        return Err(
            "its output is a graph output and its input has a value_info entry that would have to be renamed"
                .into(),
        );
    }
    Ok(())
}

fn concrete(g: &Graph, v: Option<ValueId>) -> Option<Vec<i64>> {
    g.ty(v?)?.concrete()
}

fn const_ints(g: &Graph, v: Option<ValueId>) -> Option<Vec<i64>> {
    g.constant(v?)?.to_i64().ok()
}

/// The rule under which node `id` is a no-op, if it is one.
/// `x + 0`, `x · 1` and friends: the operand that passes through.
fn match_neutral_operand(g: &Graph, id: NodeId) -> Option<(&'static str, ValueId, Option<String>)> {
    let n = g.node(id);
    if !(n.domain().is_empty() || n.domain() == "ai.onnx") {
        return None;
    }
    let (neutral, commutative) = match n.op() {
        Op::Add(b) if b.is_numpy_broadcast(g.opset()) => (0.0, true),
        Op::Sub(b) if b.is_numpy_broadcast(g.opset()) => (0.0, false),
        Op::Mul(b) if b.is_numpy_broadcast(g.opset()) => (1.0, true),
        Op::Div(b) if b.is_numpy_broadcast(g.opset()) => (1.0, false),
        _ => return None,
    };
    let (a, b) = (n.input(0)?, n.input(1)?);
    let is_neutral = |v: ValueId| {
        g.constant(v).is_some_and(|t| {
            t.dtype().is_float()
                && t.to_f64()
                    .is_ok_and(|vals| vals.iter().all(|&x| x == neutral))
        })
    };
    let (keep, constant) = if is_neutral(b) {
        (a, b)
    } else if commutative && is_neutral(a) {
        (b, a)
    } else {
        return None;
    };
    // `x + (+0)` and `x − (−0)` turn −0 into +0 (see the header).
    let flips_zero_sign = match n.op() {
        Op::Add(_) => Some(true),
        Op::Sub(_) => Some(false),
        _ => None,
    }
    .is_some_and(|positive_flips| {
        g.constant(constant)
            .and_then(|t| t.to_f64().ok())
            .is_some_and(|vals| vals.iter().any(|x| x.is_sign_positive() == positive_flips))
    });
    let keep_reason = if flips_zero_sign {
        zero_sign_observer(g, n.output(0)?)
            .map(|observer| format!("it turns −0 into +0, and {observer} tells the two apart"))
    } else {
        None
    };
    // The result must have exactly the kept operand's type: no broadcast
    // growth, no dtype change.
    let out_ty = g.ty(n.output(0)?)?;
    let keep_ty = g.ty(keep)?;
    if out_ty.concrete().is_none()
        || keep_ty.concrete() != out_ty.concrete()
        || keep_ty.dtype != out_ty.dtype
    {
        return None;
    }
    Some(("neutral-operand", keep, keep_reason))
}

/// The first node, following the readers of `v`, where the sign of a zero
/// in `v` could change a value (see the module header), described for the
/// report; `None` when there is none. A sum with a constant that has no
/// zero (a conv's or Gemm's bias, an Add of one) ends the path: `±0 + b`
/// is `b`. Gives up (returns the reason) past 4096 values.
fn zero_sign_observer(g: &Graph, v: ValueId) -> Option<String> {
    // Same value for ±0 inputs; a zero result may carry either sign.
    const TRANSPARENT: &[&str] = &[
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "Add",
        "Sub",
        "Mul",
        "Sum",
        "Relu",
        "LeakyRelu",
        "PRelu",
        "Clip",
        "Max",
        "Min",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "BatchNormalization",
        "InstanceNormalization",
        "Concat",
        "Reshape",
        "Flatten",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Slice",
        "Identity",
        "Dropout",
        "Pad",
        "Resize",
        "Upsample",
        "Split",
        "Gather",
        "Expand",
        "Tile",
        "DepthToSpace",
        "SpaceToDepth",
        "Neg",
        "Sqrt",
        "Tanh",
        "Sin",
        "HardSwish",
        "HardSigmoid",
        "Elu",
        "Selu",
        "Celu",
        "Gelu",
        "Mish",
        "Erf",
        // Normalizations divide by √(var + ε) > 0; sampling interpolates.
        "LayerNormalization",
        "GroupNormalization",
        "GridSample",
        "Einsum",
        "ReduceSum",
        "ReduceMean",
        "ReduceMax",
        "ReduceMin",
        "Round",
        "Floor",
        "Ceil",
        "Sign",
        "Cast",
    ];
    // One value for ±0: the sign of a zero stops here.
    const ABSORBING: &[&str] = &[
        "Sigmoid",
        "Exp",
        "Softmax",
        "LogSoftmax",
        "Cos",
        "Abs",
        "Equal",
        "Greater",
        "Less",
        "GreaterOrEqual",
        "LessOrEqual",
        "Shape",
        "Size",
        "Log",
        "Softplus",
        "ReduceL2",
        "ReduceSumSquare",
    ];
    // A constant with no zero (and finite) added to a sum makes the sum's
    // value independent of the sign of a zero term: `±0 + b = b`.
    let nonzero = |v: Option<ValueId>| {
        v.and_then(|v| g.constant(v))
            .and_then(|t| t.to_f64().ok())
            .is_some_and(|vals| vals.iter().all(|x| *x != 0.0 && x.is_finite()))
    };
    let mut stack = vec![v];
    let mut visited = std::collections::HashSet::new();
    while let Some(v) = stack.pop() {
        if !visited.insert(v) {
            continue;
        }
        if visited.len() > 4096 {
            return Some("a reader more than 4096 values away".into());
        }
        for u in g.value(v).uses() {
            let Use::Input { node, slot } = *u else {
                return Some("a subgraph that reads it".into());
            };
            let n = g.node(node);
            let name = || format!("{} '{}'", n.op_type(), n.name());
            let default_domain = n.domain().is_empty() || n.domain() == "ai.onnx";
            if !default_domain {
                return Some(name());
            }
            let op = n.op_type();
            if ABSORBING.contains(&op) {
                continue;
            }
            // A bias with no zero: every output is a sum with it.
            let biased = match op {
                "Conv" | "ConvTranspose" | "Gemm" => nonzero(n.input(2)),
                "Add" | "Sub" => nonzero(n.input(1 - slot.min(1))),
                _ => false,
            };
            if biased {
                continue;
            }
            // Dividing by a zero: its sign is the sign of the infinity.
            if op == "Div" && slot == 0 || TRANSPARENT.contains(&op) {
                stack.extend(n.outputs().iter().flatten().copied());
                continue;
            }
            return Some(name());
        }
    }
    None
}

fn match_noop(g: &Graph, id: NodeId) -> Option<&'static str> {
    let n = g.node(id);
    if !(n.domain().is_empty() || n.domain() == "ai.onnx") || n.has_subgraphs() {
        return None;
    }
    let a = Attrs(n.attributes());
    let extra_outputs_live = n.outputs()[1..]
        .iter()
        .flatten()
        .any(|&o| !g.value(o).uses().is_empty() || g.is_graph_output(o));
    if extra_outputs_live || n.input(0).is_none() || n.output(0).is_none() {
        return None;
    }
    let opset = g.opset();
    let in_ty = g.ty(n.input(0)?);
    match n.op_type() {
        "Identity" => Some("identity"),
        "Dropout" => {
            let Op::Dropout(d) = n.op() else { return None };
            let inference = if opset < 7 {
                d.is_test == Some(1)
            } else if opset < 12 {
                true
            } else {
                match n.input(2) {
                    None => true,
                    Some(t) => g
                        .constant(t)
                        .and_then(|t| t.to_i64().ok())
                        .is_some_and(|v| v.iter().all(|&x| x == 0)),
                }
            };
            inference.then_some("dropout")
        }
        "Reshape" => {
            let i = concrete(g, n.input(0))?;
            (Some(i) == concrete(g, n.output(0))).then_some("noop-reshape")
        }
        "Flatten" => {
            let axis = a.int("axis").ok()?.unwrap_or(1);
            (in_ty?.rank()? == 2 && (axis == 1 || axis == -1)).then_some("noop-flatten")
        }
        "Transpose" => {
            let ok = match a.ints("perm").ok()? {
                Some(p) => {
                    p.iter().enumerate().all(|(i, &x)| x == i as i64)
                        && in_ty.and_then(|t| t.rank()).is_none_or(|r| r == p.len())
                }
                None => in_ty?.rank()? <= 1,
            };
            ok.then_some("noop-transpose")
        }
        "Cast" => {
            let to = a.int("to").ok()??;
            let from = in_ty?.dtype;
            (from.0 != 0 && i64::from(from.0) == to).then_some("noop-cast")
        }
        "Pad" => {
            let pads = if opset < 11 {
                a.ints("pads").ok()??
            } else {
                const_ints(g, n.input(1))?
            };
            pads.iter().all(|&p| p == 0).then_some("noop-pad")
        }
        "Slice" => {
            let dims = concrete(g, n.input(0))?;
            let (starts, ends, axes, steps) = if opset < 10 {
                (
                    a.ints("starts").ok()??,
                    a.ints("ends").ok()??,
                    a.ints("axes").ok()?,
                    None,
                )
            } else {
                let opt = |i: usize| -> Option<Option<Vec<i64>>> {
                    match n.input(i) {
                        None => Some(None),
                        v => Some(Some(const_ints(g, v)?)),
                    }
                };
                (
                    const_ints(g, n.input(1))?,
                    const_ints(g, n.input(2))?,
                    opt(3)?,
                    opt(4)?,
                )
            };
            let k = starts.len();
            let axes = axes.unwrap_or_else(|| (0..k as i64).collect());
            let steps = steps.unwrap_or_else(|| vec![1; k]);
            if ends.len() != k || axes.len() != k || steps.len() != k {
                return None;
            }
            let r = dims.len() as i64;
            let mut seen = Vec::new();
            for j in 0..k {
                let ax = if axes[j] < 0 { axes[j] + r } else { axes[j] };
                if !(0..r).contains(&ax) || seen.contains(&ax) || steps[j] != 1 {
                    return None;
                }
                seen.push(ax);
                let d = dims[ax as usize];
                let s = if starts[j] < 0 {
                    starts[j].saturating_add(d)
                } else {
                    starts[j]
                };
                let e = if ends[j] < 0 {
                    ends[j].saturating_add(d)
                } else {
                    ends[j]
                };
                if s.clamp(0, d) != 0 || e.clamp(0, d) != d {
                    return None;
                }
            }
            Some("noop-slice")
        }
        "Expand" => {
            let dims = concrete(g, n.input(0))?;
            let shape = const_ints(g, n.input(1))?;
            if shape.len() > dims.len() {
                return None;
            }
            let off = dims.len() - shape.len();
            shape
                .iter()
                .enumerate()
                .all(|(j, &s)| s == 1 || s == dims[off + j])
                .then_some("noop-expand")
        }
        "Concat" | "Sum" => (n.inputs().len() == 1).then_some("single-input"),
        _ => None,
    }
}

/// `Reshape(Reshape(x, s1), s2)` → `Reshape(x, s2)` (rule
/// `reshape-reshape`, see the module doc). True when it fired.
fn collapse_reshapes(g: &mut Graph, id: NodeId, cx: &mut PassContext) -> bool {
    let n = g.node(id);
    if n.op_type() != "Reshape" || !(n.domain().is_empty() || n.domain() == "ai.onnx") {
        return false;
    }
    let (Some(mid), Some(shape)) = (n.input(0), n.input(1)) else {
        return false;
    };
    let Some(inner) = g.producer(mid) else {
        return false;
    };
    let inner_node = g.node(inner);
    let reshaping = matches!(
        inner_node.op_type(),
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze"
    );
    if !reshaping
        || !(inner_node.domain().is_empty() || inner_node.domain() == "ai.onnx")
        || !g.has_single_use(mid)
        || g.value(mid)
            .uses()
            .iter()
            .any(|u| matches!(u, Use::Capture { .. }))
    {
        return false;
    }
    let Some(x) = inner_node.input(0) else {
        return false;
    };
    if !const_ints(g, Some(shape)).is_some_and(|s| s.iter().all(|&d| d != 0)) {
        return false;
    }
    let (name, inner_name) = (n.name().to_string(), inner_node.name().to_string());
    let inner_op = inner_node.op_type().to_string();
    g.set_input(id, 0, Some(x));
    g.remove_node(inner);
    cx.record(
        Change::new(
            NAME,
            "reshape-reshape",
            &[&inner_name, &name],
            format!("Reshape '{name}' reads the input of {inner_op} '{inner_name}', which is gone"),
        )
        .removed(&[&inner_name]),
    );
    true
}
