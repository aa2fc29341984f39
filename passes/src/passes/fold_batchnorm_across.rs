//! `fold-batchnorm-across`: folds an inference BatchNormalization that does
//! not sit right after a linear op — into the linear op before it, across
//! shape-only ops, or into the linear op after it (REWRITES.md §8).
//!
//! Before:  y = BN(Reshape(MatMul(x, W)))                       (LeViT's BN1d)
//! After:   y = Reshape(Add(MatMul(x, W'), b'))
//!
//! Before:  y = Gemm(BN(x), W, b)            (BN1d before a Linear: heads)
//! After:   y = Gemm(x, W', b')
//!
//! With `s = γ/√(σ²+ε)`, `t = β − s·μ` per channel c:
//! * **backward** (rule `linear-shape-bn`): the BN reads a linear op's
//!   output through Reshape/Flatten/Transpose/Squeeze/Unsqueeze (or reads
//!   a MatMul without a bias directly). Output
//!   channel c of the op is scaled, `W'[c] = s_c·W[c]`, its bias
//!   `b'_c = s_c·b_c + t_c` (a MatMul without a bias gets an `Add` of
//!   `b'`, which every runtime fuses into the MatMul). Conv, Gemm and
//!   MatMul (+ bias Add) with a rank-2 constant weight.
//! * **forward** (rule `bn-linear`): the BN's output is read (directly or
//!   through shape-only ops) by a linear op as the input it reduces over:
//!   `W'[:,c] = W[:,c]·s_c`, `b' = b + Σ_c W[:,c]·t_c` (for a conv, summed
//!   over the taps too). Gemm (input A, transA = 0), MatMul (input A, rank-2
//!   constant B), Conv — only with no padding: a padded border sees `0`
//!   where the unfolded model saw `t_c`, so a padded 3×3 after a BN is left
//!   alone, with the reason.
//!
//! The channel axis must stay identifiable: every shape-only op between
//! maps it to exactly one axis, whole and in order (a reshape keeps axis
//! `a` of size C at axis `b` when `C` and the product of the dims before
//! it are the same; a transpose moves it). It must arrive at the BN's axis
//! 1 and at the linear op's output axis (backward: 1 for Conv, the last
//! for Gemm/MatMul) or its reduced input axis (forward). A reshape that
//! splits or merges the channel axis (`[N,C,H,W] → [N,C·H·W]`) refuses the
//! fold, with the reason.
//!
//! Preconditions: without a target, a weight no other node reads (else the
//! folded weight is a second copy; with a target the cost model decides,
//! `crate::fold_gate`); shapes along the way known; every
//! intermediate read once
//! (the BN's input for backward, the BN's output for forward); BN and
//! weights float constants; only the BN's first output read.
//! `fold-batchnorm` handles a BN right after its linear op; this pass
//! leaves those alone, but for a MatMul without a bias Add.

use npuopt_ir::attr::Attrs;
use npuopt_ir::op::{BatchNorm, Binary, Gemm};
use npuopt_ir::{Graph, NodeId, Op, Tensor, ValueId};

use crate::change::Change;
use crate::conv_algebra::bn_as_affine;
use crate::fold_gate::{admit_fold, Fold};
use crate::gate::Outcome;
use crate::pass::{for_each_live_node, Pass, PassContext, PassError};
use crate::rewrite::{
    const_f64, set_constant_input, set_constant_tensor, set_folded_bias, single_consumer,
};

pub struct FoldBatchNormAcross;

const NAME: &str = "fold-batchnorm-across";

impl Pass for FoldBatchNormAcross {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "fold BatchNormalization into the linear op before it across Reshape/Flatten/Transpose/Squeeze/Unsqueeze, or into the Gemm/MatMul/unpadded Conv after it"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let g = &mut model.graph;
        for_each_live_node(g, cx, |g, id, cx| {
            if let Op::BatchNormalization(bn) = g.node(id).op().clone() {
                try_fold(g, id, &bn, cx);
            }
        })
    }
}

fn is_shape_op(g: &Graph, n: NodeId) -> bool {
    let node = g.node(n);
    (node.domain().is_empty() || node.domain() == "ai.onnx")
        && matches!(
            node.op_type(),
            "Reshape" | "Flatten" | "Transpose" | "Squeeze" | "Unsqueeze"
        )
}

fn shape(g: &Graph, v: ValueId) -> Option<Vec<i64>> {
    g.ty(v)?.concrete()
}

/// Where axis `axis` of a shape-only op's input lands in its output, if it
/// lands whole and in order on one axis.
fn map_axis(g: &Graph, n: NodeId, axis: usize) -> Result<usize, String> {
    let node = g.node(n);
    let what = || format!("{} '{}'", node.op_type(), node.name());
    let (Some(i), Some(o)) = (node.input(0), node.output(0)) else {
        return Err(format!("{} has no input or output", what()));
    };
    let (Some(si), Some(so)) = (shape(g, i), shape(g, o)) else {
        return Err(format!("the shapes around {} are unknown", what()));
    };
    if node.op_type() == "Transpose" {
        let perm: Vec<i64> = match Attrs(node.attributes()).ints("perm") {
            Ok(Some(p)) => p,
            Ok(None) => (0..si.len() as i64).rev().collect(),
            Err(_) => return Err(format!("{} has an unreadable perm", what())),
        };
        return perm
            .iter()
            .position(|&p| p == axis as i64)
            .ok_or_else(|| format!("{} drops the channel axis", what()));
    }
    // A reshape in row-major order: the axis keeps its place in memory
    // when its size and the product of the dims before it are unchanged.
    let c = si[axis];
    let before: i64 = si[..axis].iter().product();
    let mut acc = 1i64;
    for (b, &d) in so.iter().enumerate() {
        if acc == before && d == c {
            return Ok(b);
        }
        acc *= d;
        if acc > before {
            break;
        }
    }
    Err(format!(
        "{} splits or merges the channel axis ({si:?} → {so:?})",
        what()
    ))
}

fn try_fold(g: &mut Graph, bn_id: NodeId, bn: &BatchNorm, cx: &mut PassContext) {
    let name = g.node(bn_id).name().to_string();
    let Some(x) = g.node(bn_id).input(0) else {
        return;
    };
    let Some(y) = g.node(bn_id).output(0) else {
        return;
    };
    // fold-batchnorm's case: a BN right after its linear op (but a MatMul
    // without a bias Add needs one, which this pass adds).
    let direct = g.producer(x).is_some_and(|p| {
        matches!(
            g.node(p).op(),
            Op::Conv(_) | Op::ConvTranspose(_) | Op::Gemm(_)
        )
    });
    let backward = if direct { None } else { backward_chain(g, x) };
    if let Some(chain) = backward {
        let before = format!("BN '{name}' is not folded into the op before it");
        match chain.and_then(|c| Ok((bn_as_affine(g, bn_id, bn)?, c))) {
            Ok((affine, c)) => {
                let holder = c.linear;
                let apply = |g: &mut Graph| -> Result<Change, String> {
                    let note =
                        fold_backward(g, &c, &affine).map_err(|why| format!("{before}: {why}"))?;
                    // Read again: a new bias Add may now sit before the BN.
                    let x = g.node(bn_id).input(0).expect("the BN's input");
                    crate::rewrite::bypass(g, bn_id, x);
                    Ok(Change::new(
                        NAME,
                        "linear-shape-bn",
                        &[&c.linear_name, &name],
                        format!("folded BN '{name}' into {note}"),
                    )
                    .removed(&[&name]))
                };
                let fold = Fold {
                    pass: NAME,
                    rule: "linear-shape-bn",
                    node: &name,
                    not_folded: &before,
                    removed: bn_id,
                    weight_holder: holder,
                };
                if admit_fold(g, cx, fold, apply) == Outcome::Applied {
                    return;
                }
            }
            // Forward may still work.
            Err(why) => cx.skip(NAME, "linear-shape-bn", &name, format!("{before}: {why}")),
        }
    }
    let Some(chain) = forward_chain(g, y) else {
        return;
    };
    let after = format!("BN '{name}' is not folded into the op after it");
    match chain.and_then(|c| Ok((bn_as_affine(g, bn_id, bn)?, c))) {
        Ok((affine, c)) => {
            let holder = c.linear;
            let apply = |g: &mut Graph| -> Result<Change, String> {
                let note = fold_forward(g, &c, &affine).map_err(|why| format!("{after}: {why}"))?;
                crate::rewrite::bypass(g, bn_id, x);
                Ok(Change::new(
                    NAME,
                    "bn-linear",
                    &[&name, &c.linear_name],
                    format!("folded BN '{name}' into {note}"),
                )
                .removed(&[&name]))
            };
            let fold = Fold {
                pass: NAME,
                rule: "bn-linear",
                node: &name,
                not_folded: &after,
                removed: bn_id,
                weight_holder: holder,
            };
            admit_fold(g, cx, fold, apply);
        }
        Err(why) => cx.skip(NAME, "bn-linear", &name, format!("{after}: {why}")),
    }
}

/// A linear op and the shape-only ops between it and the BN.
struct Chain {
    linear: NodeId,
    linear_name: String,
    /// MatMul's bias Add (backward only).
    bias_add: Option<NodeId>,
}

/// The linear op before `x` through at least one shape-only op; `None`
/// when there is none (no report), `Err` when one is there but the fold
/// is not exact.
fn backward_chain(g: &Graph, x: ValueId) -> Option<Result<Chain, String>> {
    let mut shape_ops = Vec::new();
    let mut v = x;
    let mut p = g.producer(v)?;
    while is_shape_op(g, p) {
        shape_ops.push(p);
        if !g.has_single_use(v) {
            return None;
        }
        v = g.node(p).input(0)?;
        p = g.producer(v)?;
    }
    let bare_matmul = matches!(g.node(p).op(), Op::MatMul);
    if shape_ops.is_empty() && !bare_matmul || !g.has_single_use(v) {
        return None;
    }
    // A MatMul's bias Add counts as part of the linear op.
    let (linear, bias_add) = match g.node(p).op() {
        Op::Add(_) => {
            let n = g.node(p);
            let (a, b) = (n.input(0)?, n.input(1)?);
            let (mm_out, _) = if g.constant(b).is_some() {
                (a, b)
            } else {
                (b, a)
            };
            let mm = g.producer(mm_out)?;
            if !matches!(g.node(mm).op(), Op::MatMul) || !g.has_single_use(mm_out) {
                return None;
            }
            (mm, Some(p))
        }
        Op::Conv(_) | Op::Gemm(_) | Op::MatMul => (p, None),
        _ => return None,
    };
    let linear_name = g.node(linear).name().to_string();
    let out = g.node(linear).output(0)?;
    let Some(rank) = shape(g, out).map(|s| s.len()) else {
        return Some(Err(format!(
            "the output shape of '{linear_name}' is unknown"
        )));
    };
    let mut axis = match g.node(linear).op() {
        Op::Conv(_) => 1,
        _ => rank - 1,
    };
    for &op in shape_ops.iter().rev() {
        axis = match map_axis(g, op, axis) {
            Ok(a) => a,
            Err(why) => return Some(Err(why)),
        };
    }
    if axis != 1 {
        return Some(Err(format!(
            "the output channels of '{linear_name}' arrive at axis {axis} of the BN's input, not 1"
        )));
    }
    Some(Ok(Chain {
        linear,
        linear_name,
        bias_add,
    }))
}

/// The weight of a linear op as (values, dims, dtype), float constants only.
/// The float weight of linear op `n`, read where it lies.
fn weight(g: &Graph, n: NodeId) -> Result<&Tensor, String> {
    let name = g.node(n).name();
    let w = g
        .node(n)
        .input(1)
        .ok_or_else(|| format!("'{name}' has no weight"))?;
    let t = g
        .constant(w)
        .ok_or_else(|| format!("the weight of '{name}' is not a constant"))?;
    if !t.dtype().is_float() {
        return Err(format!("the weight of '{name}' is not a float"));
    }
    Ok(t)
}

/// Per-channel bias values of a constant (scalar, `[N]` or `[1, N]`).
fn per_column(g: &Graph, v: ValueId, n: usize) -> Option<Vec<f64>> {
    let t = g.constant(v)?;
    let vals = const_f64(g, v)?;
    match (t.dims(), vals.len()) {
        (_, 1) => Some(vec![vals[0]; n]),
        ([len] | [1, len], _) if *len as usize == n => Some(vals),
        _ => None,
    }
}

/// How a linear op's weight is laid out along its output (`out`) and
/// reduced (`red`) channels: the flat index of (out o, reduced k, tap j).
struct Layout {
    out: usize,
    red: usize,
    taps: usize,
    group: usize,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `[Cout, Cin/G, taps]`.
    Conv,
    /// `[K, N]`.
    KN,
    /// `[N, K]`.
    NK,
}

impl Layout {
    fn of(g: &Graph, n: NodeId, dims: &[i64]) -> Result<Layout, String> {
        let name = g.node(n).name();
        match g.node(n).op() {
            Op::Conv(c) => {
                if dims.len() < 3 {
                    return Err(format!("the weight of '{name}' has rank {}", dims.len()));
                }
                let group = c.group.max(1) as usize;
                Ok(Layout {
                    out: dims[0] as usize,
                    red: dims[1] as usize * group,
                    taps: dims[2..].iter().product::<i64>() as usize,
                    group,
                    kind: Kind::Conv,
                })
            }
            Op::Gemm(gm) if dims.len() == 2 => {
                let (k, nn) = if gm.trans_b {
                    (dims[1], dims[0])
                } else {
                    (dims[0], dims[1])
                };
                Ok(Layout {
                    out: nn as usize,
                    red: k as usize,
                    taps: 1,
                    group: 1,
                    kind: if gm.trans_b { Kind::NK } else { Kind::KN },
                })
            }
            Op::MatMul if dims.len() == 2 => Ok(Layout {
                out: dims[1] as usize,
                red: dims[0] as usize,
                taps: 1,
                group: 1,
                kind: Kind::KN,
            }),
            _ => Err(format!("the weight of '{name}' is not a matrix")),
        }
    }

    /// The weight `t` with element `x` of output channel `o` and reduced
    /// channel `k` replaced by `f(x, o, k)`, visited in flat order (so a
    /// sum `f` keeps is summed in that order), computed straight into the
    /// new tensor's buffer: the same bytes as scaling an f64 copy and
    /// storing it with `Tensor::from_f64_as`, without the copy.
    fn map(
        &self,
        t: &Tensor,
        name: &str,
        mut f: impl FnMut(f64, usize, usize) -> f64,
    ) -> Result<Tensor, String> {
        match self.kind {
            Kind::Conv => {
                let (cout_g, cin_g) = (self.out / self.group, self.red / self.group);
                let (cout_g, taps) = (cout_g.max(1), self.taps.max(1));
                // Row o holds input channels j of o's group, `taps` each.
                t.map_f64_rows(name, cin_g * taps, |o, c, x| {
                    f(x, o, (o / cout_g) * cin_g + c / taps)
                })
            }
            Kind::KN => t.map_f64_rows(name, self.out, |k, o, x| f(x, o, k)),
            Kind::NK => t.map_f64_rows(name, self.red, |o, k, x| f(x, o, k)),
        }
    }
}

/// Backward: scale output channel c by s_c, bias s·b + t.
fn fold_backward(
    g: &mut Graph,
    c: &Chain,
    (s, t): &(Vec<f64>, Vec<f64>),
) -> Result<String, String> {
    let n = c.linear;
    let name = c.linear_name.clone();
    let t_w = weight(g, n)?;
    let (dims, dtype) = (t_w.dims().to_vec(), t_w.dtype());
    if let Op::Gemm(gm) = g.node(n).op() {
        if gm.broadcast.is_some() {
            return Err(format!("'{name}' uses the legacy broadcast attribute"));
        }
    }
    let lay = Layout::of(g, n, &dims)?;
    if lay.out != s.len() {
        return Err(format!(
            "the BN has {} channels, '{name}' {} outputs",
            s.len(),
            lay.out
        ));
    }
    // The current bias, and where it goes.
    let bias_now: Vec<f64> = match (g.node(n).op().clone(), c.bias_add) {
        (Op::MatMul, Some(add)) => {
            let an = g.node(add);
            let bv = [an.input(0), an.input(1)]
                .into_iter()
                .flatten()
                .find(|&v| g.constant(v).is_some())
                .ok_or("the bias Add has no constant")?;
            per_column(g, bv, lay.out).ok_or("the bias Add is not per column")?
        }
        (Op::Gemm(gm), _) => match g.node(n).input(2) {
            None => vec![0.0; lay.out],
            Some(cv) => per_column(g, cv, lay.out)
                .ok_or("the Gemm's C is not per column")?
                .into_iter()
                .map(|x| x * gm.beta as f64)
                .collect(),
        },
        (Op::Conv(_), _) => match g.node(n).input(2) {
            None => vec![0.0; lay.out],
            Some(bv) => const_f64(g, bv).ok_or("the conv's bias is not a constant")?,
        },
        _ => vec![0.0; lay.out],
    };
    if matches!(g.node(n).op(), Op::MatMul) && c.bias_add.is_none() {
        bias_add_readers(g, n)?;
    }
    let w_name = format!("{name}.weight_folded");
    let w = lay.map(weight(g, n)?, &w_name, |x, o, _| x * s[o])?;
    let bias: Vec<f64> = (0..lay.out).map(|o| s[o] * bias_now[o] + t[o]).collect();
    set_constant_tensor(g, n, 1, &w_name, w);
    let bdims = [lay.out as i64];
    match (g.node(n).op().clone(), c.bias_add) {
        (Op::MatMul, Some(add)) => {
            let slot = if g
                .node(add)
                .input(1)
                .is_some_and(|v| g.constant(v).is_some())
            {
                1
            } else {
                0
            };
            set_constant_input(
                g,
                add,
                slot,
                &format!("{name}.bias_folded"),
                dtype,
                &bdims,
                &bias,
            );
            Ok(format!("MatMul '{name}' and its bias Add"))
        }
        (Op::MatMul, None) => {
            // The MatMul gets the bias Add a Linear with a bias exports.
            let add_name = insert_bias_add(g, n, dtype, &bias)?;
            Ok(format!(
                "MatMul '{name}' (with a new bias Add '{add_name}')"
            ))
        }
        (Op::Gemm(gm), _) => Ok(set_gemm_bias(g, n, &gm, &name, dtype, &bias)),
        _ => {
            set_folded_bias(g, n, &name, dtype, &bdims, &bias);
            Ok(format!("Conv '{name}'"))
        }
    }
}

/// The linear op reading `y` (through shape-only ops) as the input it
/// reduces over.
fn forward_chain(g: &Graph, y: ValueId) -> Option<Result<Chain, String>> {
    let mut axis = 1usize;
    let mut v = y;
    let mut reader = single_consumer(g, v)?;
    while is_shape_op(g, reader) {
        if g.node(reader).input(0) != Some(v) {
            return None;
        }
        axis = match map_axis(g, reader, axis) {
            Ok(a) => a,
            Err(why) => return Some(Err(why)),
        };
        v = g.node(reader).output(0)?;
        reader = single_consumer(g, v)?;
    }
    let n = g.node(reader);
    if n.input(0) != Some(v) || n.inputs().iter().skip(1).any(|&i| i == Some(v)) {
        return None;
    }
    let linear_name = n.name().to_string();
    let rank = shape(g, v).map(|s| s.len());
    let reduced = match n.op() {
        Op::Gemm(gm) if !gm.trans_a => 1,
        Op::Gemm(_) => return Some(Err(format!("'{linear_name}' has transA = 1"))),
        Op::MatMul => match rank {
            Some(r) if r >= 2 => r - 1,
            _ => return Some(Err(format!("the input rank of '{linear_name}' is unknown"))),
        },
        Op::Conv(c) => {
            let pads_zero = c
                .window
                .pads
                .as_ref()
                .is_none_or(|p| p.iter().all(|&x| x == 0));
            let auto_ok = matches!(
                c.window.auto_pad,
                npuopt_ir::op::AutoPad::NotSet | npuopt_ir::op::AutoPad::Valid
            );
            let padded = !pads_zero || !auto_ok;
            if padded {
                return Some(Err(format!(
                    "conv '{linear_name}' pads its input: the border would see 0 where the unfolded model sees the BN's shift"
                )));
            }
            1
        }
        _ => return None,
    };
    if axis != reduced {
        return Some(Err(format!(
            "the BN's channels arrive at axis {axis} of the input of '{linear_name}', which reduces axis {reduced}"
        )));
    }
    Some(Ok(Chain {
        linear: reader,
        linear_name,
        bias_add: None,
    }))
}

/// Forward: `W'[:,c] = W[:,c]·s_c`, `b' = b + Σ_c W[:,c]·t_c`.
fn fold_forward(g: &mut Graph, c: &Chain, (s, t): &(Vec<f64>, Vec<f64>)) -> Result<String, String> {
    let n = c.linear;
    let name = c.linear_name.clone();
    let t_w = weight(g, n)?;
    let (dims, dtype) = (t_w.dims().to_vec(), t_w.dtype());
    let lay = Layout::of(g, n, &dims)?;
    if lay.red != s.len() {
        return Err(format!(
            "the BN has {} channels, '{name}' reads {}",
            s.len(),
            lay.red
        ));
    }
    let mut shift = vec![0.0; lay.out];
    let w_name = format!("{name}.weight_folded");
    let w = lay.map(weight(g, n)?, &w_name, |x, o, k| {
        shift[o] += x * t[k];
        x * s[k]
    })?;
    let op = g.node(n).op().clone();
    let bdims = [lay.out as i64];
    match op {
        Op::Gemm(gm) => {
            if gm.broadcast.is_some() {
                return Err(format!("'{name}' uses the legacy broadcast attribute"));
            }
            let c_now = match g.node(n).input(2) {
                None => vec![0.0; lay.out],
                Some(cv) => per_column(g, cv, lay.out).ok_or("the Gemm's C is not per column")?,
            };
            let alpha = gm.alpha as f64;
            let bias: Vec<f64> = (0..lay.out)
                .map(|o| gm.beta as f64 * c_now[o] + alpha * shift[o])
                .collect();
            set_constant_tensor(g, n, 1, &w_name, w);
            Ok(set_gemm_bias(g, n, &gm, &name, dtype, &bias))
        }
        Op::Conv(_) => {
            let b_now = match g.node(n).input(2) {
                None => vec![0.0; lay.out],
                Some(bv) => const_f64(g, bv).ok_or("the conv's bias is not a constant")?,
            };
            let bias: Vec<f64> = (0..lay.out).map(|o| b_now[o] + shift[o]).collect();
            set_constant_tensor(g, n, 1, &w_name, w);
            set_folded_bias(g, n, &name, dtype, &bdims, &bias);
            Ok(format!("Conv '{name}'"))
        }
        _ => {
            // MatMul: the shift goes into its bias Add (or a new one).
            let out = g.node(n).output(0).expect("an output");
            let add = single_consumer(g, out).filter(|&a| {
                matches!(g.node(a).op(), Op::Add(_))
                    && [g.node(a).input(0), g.node(a).input(1)]
                        .into_iter()
                        .flatten()
                        .any(|v| v != out && per_column(g, v, lay.out).is_some())
            });
            if add.is_none() {
                bias_add_readers(g, n)?;
            }
            set_constant_tensor(g, n, 1, &w_name, w);
            match add {
                Some(a) => {
                    let an = g.node(a);
                    let slot = if an.input(0) == Some(out) { 1 } else { 0 };
                    let bv = an.input(slot).expect("checked");
                    let b_now = per_column(g, bv, lay.out).expect("checked");
                    let bias: Vec<f64> = (0..lay.out).map(|o| b_now[o] + shift[o]).collect();
                    set_constant_input(
                        g,
                        a,
                        slot,
                        &format!("{name}.bias_folded"),
                        dtype,
                        &bdims,
                        &bias,
                    );
                    Ok(format!("MatMul '{name}' and its bias Add"))
                }
                None => {
                    let add_name = insert_bias_add(g, n, dtype, &shift)?;
                    Ok(format!(
                        "MatMul '{name}' (with a new bias Add '{add_name}')"
                    ))
                }
            }
        }
    }
}

/// Stores `bias` as Gemm `n`'s C, with beta 1 (the folded bias already
/// carries the old beta); returns the change's description.
fn set_gemm_bias(
    g: &mut Graph,
    n: NodeId,
    gm: &Gemm,
    name: &str,
    dtype: npuopt_ir::DType,
    bias: &[f64],
) -> String {
    let dims = [bias.len() as i64];
    set_folded_bias(g, n, name, dtype, &dims, bias);
    let mut new = gm.clone();
    new.beta = 1.0;
    g.set_op(n, Op::Gemm(new));
    format!("Gemm '{name}'")
}

/// Puts `Add(out, bias)` after the MatMul `n`; its readers read the Add.
/// Refused (before anything changes) when the MatMul's output is a graph
/// output or read by a subgraph.
fn insert_bias_add(
    g: &mut Graph,
    n: NodeId,
    dtype: npuopt_ir::DType,
    bias: &[f64],
) -> Result<String, String> {
    let (out, readers) = bias_add_readers(g, n)?;
    let name = g.node(n).name().to_string();
    let bv = g.add_initializer(
        &format!("{name}.bias_folded"),
        npuopt_ir::Tensor::from_f64_as("", dtype, &[bias.len() as i64], bias),
    );
    let add_name = g.unique_node_name(&format!("{name}_bias"));
    let (_, outs) = g.add_node(
        &add_name,
        Op::Add(Binary::default()),
        &[Some(out), Some(bv)],
        &[&format!("{add_name}_output")],
        Some(n),
    );
    for (node, slot) in readers {
        g.set_input(node, slot, Some(outs[0]));
    }
    Ok(add_name)
}

/// The output of MatMul `n` and its readers, when a bias Add can go after
/// it (checked before anything changes).
fn bias_add_readers(g: &Graph, n: NodeId) -> Result<(ValueId, Vec<(NodeId, usize)>), String> {
    let out = g.node(n).output(0).ok_or("no output")?;
    let name = g.node(n).name();
    if g.is_graph_output(out) {
        return Err(format!("the output of '{name}' is a graph output"));
    }
    let readers = g
        .value(out)
        .uses()
        .iter()
        .map(|u| match *u {
            npuopt_ir::Use::Input { node, slot } => Ok((node, slot)),
            npuopt_ir::Use::Capture { .. } => {
                Err(format!("the output of '{name}' is read by a subgraph"))
            }
        })
        .collect::<Result<_, _>>()?;
    Ok((out, readers))
}
