//! `fold-batchnorm`: folds inference-mode BatchNormalization, and per-channel
//! constant Mul/Add, into the linear op that produces their input.
//!
//! Before:  y = BN(Conv(x, W, b), γ, β, μ, σ²)
//! After:   y = Conv(x, W', b')
//!
//! Formula (REWRITES.md §1), per output channel o, with s = γ / √(σ² + ε):
//!   `W'[o] = s[o]·W[o]`            `b'[o] = s[o]·(b[o] − μ[o]) + β[o]`
//! ConvTranspose's weight is `[Cin, Cout/G, k…]`: output channel
//! `o = g·(Cout/G) + j` scales `W[i, j]` for every input channel i of group g.
//! Gemm scales its output columns (rows of B when transB=1) and gets bias
//! C' = s·(β_gemm·C − μ) + β with β_gemm set to 1. MatMul (+ Add of a `[N]`
//! bias) on a rank-2 tensor scales the columns of its weight and gets (or
//! updates) the Add's bias.
//! Per-channel constant Mul/Add/Div/Sub after a Conv, Gemm or MatMul
//! (layer scale, a folded affine; rules `conv-*`, `linear-*`):
//!   Mul by m: W' = m·W, b' = m·b        Add of a: b' = b + a
//!   Div by d: as Mul by 1/d (d finite and non-zero: `x/0` is ±inf or NaN
//!   whatever the weights)                Sub of a: as Add of −a
//! For a Conv the constant is per output channel (`[C,1,1]`, `[1,C,1,1]`,
//! `[C]` on rank 2, a scalar); for Gemm/MatMul per column (`[N]`, `[1,N]`,
//! `[1,1,N]`, a scalar), on any rank of the MatMul's output. An Add after
//! a MatMul without a bias is the MatMul's bias already and stays; `c / x`
//! and `c − x` are not affine in the weights' sense and stay.
//!
//! Preconditions (else the rule does not fire, and the report says why for
//! BN nodes):
//! * the BN is in inference mode, per channel (no `training_mode=1`, no
//!   `spatial=0`, `is_test=1` before opset 7) and only its first output is
//!   read;
//! * BN parameters, the producer's weight and bias are constants, of a
//!   float type;
//! * the producer's output is read only by the BN (folding would change
//!   what its other readers see);
//! * the producer's output is NCHW-like with the channel count of the BN.
//!
//! Weights are folded in f64 and stored back in their own dtype (f16, bf16,
//! f32 or f64). A weight shared with another node is not changed in place:
//! the folded copy would be a new initializer, a second copy — so without
//! a target it is not folded (nothing gets heavier), with one the cost
//! model decides (a heavier model must win by the target's margin; the one
//! gate of every weight fold is `crate::fold_gate`).
//!
//! A BN behind a QuantizeLinear → DequantizeLinear pair of a linear op's
//! output is not folded (it acts on quantized values); the report says so.
//!
//! A standalone BN (no foldable producer: the identity branch of
//! RepVGG/MobileOne/RepGhost blocks) is left as a BatchNormalization node.
//! That is the canonical form `merge-branches` consumes: a per-channel
//! affine map, i.e. a depthwise 1×1 conv with `W[c] = s[c]`, `b = β − s·μ`.

use npuopt_ir::op::{BatchNorm, Gemm};
use npuopt_ir::{Graph, NodeId, Op, Tensor, ValueId};

use crate::change::Change;
use crate::fold_gate::{admit_fold, Fold};
use crate::pass::{for_each_live_node, Pass, PassContext, PassError};
use crate::rewrite::{
    const_f64, per_channel_constant, set_constant_input, set_constant_tensor, set_folded_bias,
    single_consumer,
};

pub struct FoldBatchNorm;

const NAME: &str = "fold-batchnorm";

impl Pass for FoldBatchNorm {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "fold inference BatchNormalization and per-channel Mul/Add/Div/Sub into the preceding Conv, ConvTranspose, Gemm or MatMul"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let g = &mut model.graph;
        for_each_live_node(g, cx, |g, id, cx| match g.node(id).op().clone() {
            Op::BatchNormalization(bn) => fold_bn(g, id, &bn, cx),
            Op::Mul(_) | Op::Add(_) | Op::Div(_) | Op::Sub(_) => fold_affine(g, id, cx),
            _ => {}
        })
    }
}

/// The linear op (and the rule that would fold into it) whose output a
/// QuantizeLinear → DequantizeLinear pair carries to `dq`: the shape of a
/// QDQ model quantized with its BNs still in place.
fn linear_behind_qdq(g: &Graph, dq: NodeId) -> Option<(NodeId, &'static str)> {
    if g.node(dq).op_type() != "DequantizeLinear" {
        return None;
    }
    let q = g.producer(g.node(dq).input(0)?)?;
    if g.node(q).op_type() != "QuantizeLinear" {
        return None;
    }
    let linear = g.producer(g.node(q).input(0)?)?;
    Some((linear, linear_bn_rule(g.node(linear).op())?))
}

/// The rule folding a BN into a linear op's output, for the ops it folds
/// into directly.
fn linear_bn_rule(op: &Op) -> Option<&'static str> {
    Some(match op {
        Op::Conv(_) => "conv-bn",
        Op::ConvTranspose(_) => "conv-transpose-bn",
        Op::Gemm(_) => "gemm-bn",
        Op::MatMul => "matmul-bn",
        _ => return None,
    })
}

/// The affine map of a BN: per-channel scale and shift.
struct Affine {
    scale: Vec<f64>,
    shift: Vec<f64>,
}

fn bn_affine(g: &Graph, id: NodeId, bn: &BatchNorm) -> Result<Affine, String> {
    let (scale, shift) = crate::conv_algebra::bn_as_affine(g, id, bn)?;
    Ok(Affine { scale, shift })
}

fn fold_bn(g: &mut Graph, id: NodeId, bn: &BatchNorm, cx: &mut PassContext) {
    let n = g.node(id);
    let name = n.name().to_string();
    let Some(x) = n.input(0) else { return };
    let Some(producer) = g.producer(x) else {
        return;
    };
    let producer_op = g.node(producer).op().clone();
    let rule = match linear_bn_rule(&producer_op) {
        Some(rule) => rule,
        None if matches!(producer_op, Op::Add(_)) && is_matmul_bias_add(g, producer) => "matmul-bn",
        None => {
            if let Some((linear, rule)) = linear_behind_qdq(g, producer) {
                let linear = g.node(linear).name().to_string();
                return cx.skip(
                    NAME,
                    rule,
                    &name,
                    format!(
                        "BN '{name}' is not folded into '{linear}': a QuantizeLinear/DequantizeLinear pair sits between them, so the BN acts on quantized values (folding would change what is quantized)"
                    ),
                );
            }
            // A standalone BN: kept for merge-branches (see the header).
            return;
        }
    };
    let producer_name = g.node(producer).name().to_string();
    let skip = |cx: &mut PassContext, reason: String| cx.skip(NAME, rule, &name, reason);
    if let Some(why) = bn.why_not_inference(g.opset()) {
        return skip(cx, format!("BN '{name}' is not folded: {why}"));
    }
    let extra_outputs_read = g.node(id).outputs()[1..]
        .iter()
        .flatten()
        .any(|&o| !g.value(o).uses().is_empty() || g.is_graph_output(o));
    if extra_outputs_read {
        return skip(
            cx,
            format!("BN '{name}' is not folded: its running statistics outputs are read"),
        );
    }
    if !g.has_single_use(x) {
        return skip(
            cx,
            format!("BN '{name}' is not folded: the output of '{producer_name}' has other readers"),
        );
    }
    let affine = match bn_affine(g, id, bn) {
        Ok(a) => a,
        Err(why) => return skip(cx, format!("BN '{name}' is not folded: {why}")),
    };
    let apply = |g: &mut Graph| -> Result<Change, String> {
        let folded = match producer_op {
            Op::Conv(_) => fold_into_conv(g, producer, &affine, false),
            Op::ConvTranspose(_) => fold_into_conv(g, producer, &affine, true),
            Op::Gemm(ref gemm) => fold_into_gemm(g, producer, gemm, &affine),
            _ => fold_into_matmul(g, producer, &affine, false),
        };
        folded.map_err(|why| format!("BN '{name}' is not folded into '{producer_name}': {why}"))?;
        let producer_out = g.node(producer).output(0).expect("output");
        crate::rewrite::bypass(g, id, producer_out);
        Ok(Change::new(
            NAME,
            rule,
            &[&producer_name, &name],
            format!(
                "folded BN '{name}' into {} '{producer_name}'",
                g.node(producer).op_type()
            ),
        )
        .removed(&[&name]))
    };
    let holder = weight_node(g, producer).unwrap_or(producer);
    let not_folded = format!("BN '{name}' is not folded");
    let fold = Fold {
        pass: NAME,
        rule,
        node: &name,
        not_folded: &not_folded,
        removed: id,
        weight_holder: holder,
    };
    admit_fold(g, cx, fold, apply);
}

/// `Add(MatMul(x, W), bias)` with a constant bias.
fn is_matmul_bias_add(g: &Graph, add: NodeId) -> bool {
    let n = g.node(add);
    let (Some(a), Some(b)) = (n.input(0), n.input(1)) else {
        return false;
    };
    let (x, c) = if g.constant(b).is_some() {
        (a, b)
    } else {
        (b, a)
    };
    g.constant(c).is_some()
        && g.producer(x)
            .is_some_and(|p| matches!(g.node(p).op(), Op::MatMul))
}

/// The constant float weight of a conv-like node (read where it lies: the
/// folds compute the new weight from it straight into its final buffer).
fn weight(g: &Graph, node: NodeId) -> Result<&Tensor, String> {
    let w = g.node(node).input(1).ok_or("it has no weight")?;
    let t = g.constant(w).ok_or("its weight is not a constant")?;
    if !t.dtype().is_float() {
        return Err(format!("its weight is {}, not a float type", t.dtype()));
    }
    Ok(t)
}

fn bias(g: &Graph, node: NodeId, slot: usize, len: usize) -> Result<Vec<f64>, String> {
    match g.node(node).input(slot) {
        None => Ok(vec![0.0; len]),
        Some(b) => {
            let v = const_f64(g, b).ok_or("its bias is not a float constant")?;
            if v.len() != len {
                return Err(format!("its bias has {} values, expected {len}", v.len()));
            }
            Ok(v)
        }
    }
}

/// Conv: output channel o is weight row o. ConvTranspose: output channel
/// o = g·(Cout/G) + j is column j of every input channel in group g.
fn fold_into_conv(g: &mut Graph, node: NodeId, a: &Affine, transpose: bool) -> Result<(), String> {
    if !transpose {
        return fold_into_plain_conv(g, node, a);
    }
    fold_into_conv_transpose(g, node, a)
}

/// ConvTranspose: output channel o = g·(Cout/G) + j is column j of every
/// input channel in group g; W' = s·W computed straight into the new
/// weight's buffer (the same f64 products, rounded once).
fn fold_into_conv_transpose(g: &mut Graph, node: NodeId, a: &Affine) -> Result<(), String> {
    let t = weight(g, node)?;
    let (dtype, dims) = (t.dtype(), t.dims().to_vec());
    if dims.len() < 3 {
        return Err("its weight has rank < 3".into());
    }
    let group = match g.node(node).op() {
        Op::ConvTranspose(ct) => ct.group.max(1) as usize,
        _ => 1,
    };
    let cin = dims[0] as usize;
    let cout_g = dims[1] as usize;
    let cout = cout_g * group;
    if a.scale.len() != cout || !cin.is_multiple_of(group) {
        return Err(format!("BN has {} channels, the op {cout}", a.scale.len()));
    }
    // Row r = i·(Cout/G) + j holds the k taps of input i, output column j
    // of i's group.
    let k: usize = dims[2..].iter().product::<i64>() as usize;
    let cin_g = (cin / group).max(1);
    let base = g.node(node).name().to_string();
    let name = format!("{base}.weight_folded");
    let folded = t.map_f64_rows(&name, k, |r, _, x| {
        let (i, j) = (r / cout_g, r % cout_g);
        x * a.scale[(i / cin_g) * cout_g + j]
    })?;
    let b = bias(g, node, 2, cout)?;
    let b: Vec<f64> = (0..cout).map(|o| a.scale[o] * b[o] + a.shift[o]).collect();
    set_constant_tensor(g, node, 1, &name, folded);
    set_folded_bias(g, node, &base, dtype, &[cout as i64], &b);
    Ok(())
}

/// Conv: output channel o is weight row o, so W'[o, …] = W[o, …]·scale[o],
/// computed element by element straight into the new weight's buffer (the
/// same f64 products, rounded once, as scaling an f64 copy).
fn fold_into_plain_conv(g: &mut Graph, node: NodeId, a: &Affine) -> Result<(), String> {
    let wv = g.node(node).input(1).ok_or("it has no weight")?;
    let t = g.constant(wv).ok_or("its weight is not a constant")?;
    if !t.dtype().is_float() {
        return Err(format!("its weight is {}, not a float type", t.dtype()));
    }
    let dtype = t.dtype();
    let dims = t.dims().to_vec();
    if dims.len() < 3 {
        return Err("its weight has rank < 3".into());
    }
    let cout = dims[0] as usize;
    if a.scale.len() != cout {
        return Err(format!(
            "BN has {} channels, the conv {cout}",
            a.scale.len()
        ));
    }
    let numel = t.numel().ok_or("its weight's dims overflow")? as usize;
    let per_out = numel.checked_div(cout).unwrap_or(0);
    let b = bias(g, node, 2, cout)?;
    let base = g.node(node).name().to_string();
    let name = format!("{base}.weight_folded");
    let folded = t.map_f64_rows(&name, per_out, |o, _, x| x * a.scale[o])?;
    let b: Vec<f64> = (0..cout).map(|o| a.scale[o] * b[o] + a.shift[o]).collect();
    set_constant_tensor(g, node, 1, &name, folded);
    set_folded_bias(g, node, &base, dtype, &[cout as i64], &b);
    Ok(())
}

fn fold_into_gemm(g: &mut Graph, node: NodeId, gemm: &Gemm, a: &Affine) -> Result<(), String> {
    if gemm.broadcast.is_some() {
        return Err("legacy broadcast attribute".into());
    }
    let out = g.node(node).output(0).expect("output");
    if g.ty(out).and_then(|t| t.rank()) != Some(2) {
        return Err("its output rank is unknown".into());
    }
    let t = weight(g, node)?;
    let (dtype, dims) = (t.dtype(), t.dims().to_vec());
    if dims.len() != 2 {
        return Err("its B is not a matrix".into());
    }
    let n = if gemm.trans_b { dims[0] } else { dims[1] } as usize;
    if a.scale.len() != n {
        return Err(format!("BN has {} channels, the Gemm {n}", a.scale.len()));
    }
    // Output column j is row j of B when transB=1, else column j.
    let base = g.node(node).name().to_string();
    let name = format!("{base}.weight_folded");
    let folded = if gemm.trans_b {
        t.map_f64_rows(&name, dims[1] as usize, |j, _, x| x * a.scale[j])?
    } else {
        t.map_f64_rows(&name, n, |_, j, x| x * a.scale[j])?
    };
    // C must broadcast per column: absent, a scalar, [N] or [1, N].
    let c = match g.node(node).input(2) {
        None => vec![0.0; n],
        Some(c) => {
            let t = g.constant(c).ok_or("its C is not a constant")?;
            let vals = t.to_f64().map_err(|e| e.to_string())?;
            match (t.dims(), vals.len()) {
                (_, 1) => vec![vals[0]; n],
                ([len] | [1, len], _) if *len as usize == n => vals,
                _ => return Err("its C is not per column".into()),
            }
        }
    };
    let beta = gemm.beta as f64;
    let c: Vec<f64> = (0..n)
        .map(|j| a.scale[j] * beta * c[j] + a.shift[j])
        .collect();
    set_constant_tensor(g, node, 1, &name, folded);
    set_folded_bias(g, node, &base, dtype, &[n as i64], &c);
    let mut new = gemm.clone();
    new.beta = 1.0;
    g.set_op(node, Op::Gemm(new));
    Ok(())
}

/// MatMul(x, W) on rank 2, optionally followed by Add(·, bias[N]).
/// `any_rank`: the affine acts on the last axis whatever the rank (a
/// per-column constant); a BN acts on axis 1, the last only at rank 2.
fn fold_into_matmul(g: &mut Graph, node: NodeId, a: &Affine, any_rank: bool) -> Result<(), String> {
    let (matmul, add) = match g.node(node).op() {
        Op::MatMul => (node, None),
        Op::Add(_) => {
            let n = g.node(node);
            let (lhs, rhs) = (n.input(0).ok_or("no input")?, n.input(1).ok_or("no input")?);
            let (mm_out, bias_v) = if g.constant(rhs).is_some() {
                (lhs, rhs)
            } else {
                (rhs, lhs)
            };
            let mm = g
                .producer(mm_out)
                .ok_or("the Add does not follow a MatMul")?;
            if !matches!(g.node(mm).op(), Op::MatMul) || !g.has_single_use(mm_out) {
                return Err("the Add does not follow a single-use MatMul".into());
            }
            (mm, Some((node, bias_v)))
        }
        _ => return Err("not a MatMul".into()),
    };
    let out = g.node(matmul).output(0).expect("output");
    let rank = g.ty(out).and_then(|t| t.rank());
    if !(rank == Some(2) || any_rank && rank.is_some_and(|r| r >= 2)) {
        return Err("the MatMul output is not known to be rank 2".into());
    }
    let t = weight(g, matmul)?;
    let (dtype, dims) = (t.dtype(), t.dims().to_vec());
    if dims.len() != 2 {
        return Err("its weight is not a matrix".into());
    }
    let n = dims[1] as usize;
    if a.scale.len() != n {
        return Err(format!("BN has {} channels, the MatMul {n}", a.scale.len()));
    }
    let base = g.node(matmul).name().to_string();
    let name = format!("{base}.weight_folded");
    // Column j of the weight scales output column j.
    let scaled = |t: &Tensor| t.map_f64_rows(&name, n, |_, j, x| x * a.scale[j]);
    match add {
        Some((add_node, bias_v)) => {
            let t = g
                .constant(bias_v)
                .ok_or("the Add's operand is not a constant")?;
            let vals = t.to_f64().map_err(|e| e.to_string())?;
            let bias: Vec<f64> = match (t.dims(), vals.len()) {
                (_, 1) => vec![vals[0]; n],
                ([len] | [1, len], _) if *len as usize == n => vals,
                _ => return Err("the Add's bias is not per column".into()),
            };
            let folded: Vec<f64> = (0..n).map(|j| a.scale[j] * bias[j] + a.shift[j]).collect();
            let slot = if g.node(add_node).input(1) == Some(bias_v) {
                1
            } else {
                0
            };
            let w = scaled(weight(g, matmul)?)?;
            set_constant_tensor(g, matmul, 1, &name, w);
            set_constant_input(
                g,
                add_node,
                slot,
                &format!("{base}.bias_folded"),
                dtype,
                &[n as i64],
                &folded,
            );
        }
        None if a.shift.iter().all(|&t| t == 0.0) => {
            let folded = scaled(weight(g, matmul)?)?;
            set_constant_tensor(g, matmul, 1, &name, folded);
        }
        None => {
            // A MatMul without bias would need a new Add for the shift
            // (fold-batchnorm-across adds one where it pays).
            return Err(
                "a MatMul without a bias Add is not folded (it would need a new Add)".into(),
            );
        }
    }
    Ok(())
}

/// A per-channel constant after a linear op: Conv (`[C,1,1]`, `[1,C,1,1]`,
/// `[C]` on the channel axis, a scalar), Gemm or MatMul (`[N]`, `[1,N]`,
/// … on the last axis, a scalar).
fn fold_affine(g: &mut Graph, id: NodeId, cx: &mut PassContext) {
    let n = g.node(id);
    let (Some(a), Some(b)) = (n.input(0), n.input(1)) else {
        return;
    };
    let (what, commutative) = match n.op() {
        Op::Mul(bin) if bin.is_numpy_broadcast(g.opset()) => ("Mul", true),
        Op::Add(bin) if bin.is_numpy_broadcast(g.opset()) => ("Add", true),
        Op::Div(bin) if bin.is_numpy_broadcast(g.opset()) => ("Div", false),
        Op::Sub(bin) if bin.is_numpy_broadcast(g.opset()) => ("Sub", false),
        _ => return,
    };
    let (x, c) = if g.constant(b).is_some() {
        (a, b)
    } else if commutative && g.constant(a).is_some() {
        (b, a)
    } else {
        return;
    };
    if g.constant(x).is_some() || single_consumer(g, x) != Some(id) {
        return;
    }
    let Some(producer) = g.producer(x) else {
        return;
    };
    let Some(rank) = g.ty(x).and_then(|t| t.rank()) else {
        return;
    };
    // The output's shape must not grow by broadcasting against the constant.
    if g.ty(n.output(0).expect("output")).and_then(|t| t.rank()) != Some(rank) {
        return;
    }
    let name = n.name().to_string();
    // The producer, what it is, and its output channels.
    let (kind, channels) = match g.node(producer).op() {
        Op::Conv(_) => match weight(g, producer).map(|t| t.dims()) {
            Ok(dims) => ("conv", dims[0] as usize),
            Err(_) => return,
        },
        Op::Gemm(gm) => match weight(g, producer).map(|t| t.dims()) {
            Ok(dims) if dims.len() == 2 => {
                ("gemm", if gm.trans_b { dims[0] } else { dims[1] } as usize)
            }
            _ => return,
        },
        Op::MatMul => match weight(g, producer).map(|t| t.dims()) {
            // A MatMul + Add of a per-column constant is already a Linear
            // with a bias: only a scale folds into it.
            Ok(dims) if dims.len() == 2 && matches!(what, "Mul" | "Div") => {
                ("matmul", dims[1] as usize)
            }
            _ => return,
        },
        Op::Add(_) if is_matmul_bias_add(g, producer) && g.has_single_use(x) => {
            let mm_out = [g.node(producer).input(0), g.node(producer).input(1)]
                .into_iter()
                .flatten()
                .find(|&v| g.constant(v).is_none())
                .expect("a MatMul input");
            let mm = g.producer(mm_out).expect("a MatMul");
            match weight(g, mm).map(|t| t.dims()) {
                Ok(dims) if dims.len() == 2 => ("matmul", dims[1] as usize),
                _ => return,
            }
        }
        _ => return,
    };
    let vals = if kind == "conv" {
        per_channel_constant(g, c, channels, rank)
    } else {
        per_last_axis_constant(g, c, channels, rank)
    };
    let Some(vals) = vals else { return };
    let affine = match what {
        "Mul" => Affine {
            scale: vals,
            shift: vec![0.0; channels],
        },
        "Div" => {
            // x / 0 is ±inf or NaN whatever the weights: not a scale.
            if vals.iter().any(|v| *v == 0.0 || !v.is_finite()) {
                return;
            }
            Affine {
                scale: vals.iter().map(|v| 1.0 / v).collect(),
                shift: vec![0.0; channels],
            }
        }
        "Add" => Affine {
            scale: vec![1.0; channels],
            shift: vals,
        },
        _ => Affine {
            scale: vec![1.0; channels],
            shift: vals.iter().map(|v| -v).collect(),
        },
    };
    if affine
        .scale
        .iter()
        .chain(&affine.shift)
        .any(|v| !v.is_finite())
    {
        return;
    }
    let producer_name = g.node(producer).name().to_string();
    let rule = match (kind, what) {
        ("conv", "Mul") => "conv-mul",
        ("conv", "Add") => "conv-add",
        ("conv", "Div") => "conv-div",
        ("conv", _) => "conv-sub",
        (_, "Mul") => "linear-mul",
        (_, "Add") => "linear-add",
        (_, "Div") => "linear-div",
        _ => "linear-sub",
    };
    let not_folded = format!("{what} '{name}' is not folded into '{producer_name}'");
    let apply = |g: &mut Graph| -> Result<Change, String> {
        let folded = match g.node(producer).op().clone() {
            Op::Conv(_) => fold_into_conv(g, producer, &affine, false),
            Op::Gemm(ref gemm) => fold_into_gemm(g, producer, gemm, &affine),
            _ => fold_into_matmul(g, producer, &affine, true),
        };
        folded.map_err(|why| format!("{not_folded}: {why}"))?;
        let out = g.node(producer).output(0).expect("output");
        crate::rewrite::bypass(g, id, out);
        let target = match g.node(producer).op() {
            Op::Conv(_) => format!("conv '{producer_name}'"),
            Op::Add(_) => {
                let mm = [g.node(producer).input(0), g.node(producer).input(1)]
                    .into_iter()
                    .flatten()
                    .filter_map(|v| g.producer(v))
                    .map(|p| g.node(p).name().to_string())
                    .next()
                    .unwrap_or_default();
                format!("MatMul '{mm}' and its bias Add '{producer_name}'")
            }
            _ => format!("{} '{producer_name}'", g.node(producer).op_type()),
        };
        Ok(Change::new(
            NAME,
            rule,
            &[&producer_name, &name],
            format!("folded per-channel {what} '{name}' into {target}"),
        )
        .removed(&[&name]))
    };
    let fold = Fold {
        pass: NAME,
        rule,
        node: &name,
        not_folded: &not_folded,
        removed: id,
        weight_holder: weight_node(g, producer).unwrap_or(producer),
    };
    admit_fold(g, cx, fold, apply);
}

/// A constant that acts per column on a `[…, N]` tensor of `rank`: a
/// scalar, or `[N]`, `[1, N]`, `[1, 1, N]` … (every other dim 1).
fn per_last_axis_constant(g: &Graph, v: ValueId, n: usize, rank: usize) -> Option<Vec<f64>> {
    let t = g.constant(v)?;
    if !t.dtype().is_float() {
        return None;
    }
    let dims = t.dims();
    let vals = t.to_f64().ok()?;
    if dims.len() > rank {
        return None;
    }
    if vals.len() == 1 {
        return Some(vec![vals[0]; n]);
    }
    let (last, rest) = dims.split_last()?;
    (*last as usize == n && rest.iter().all(|&d| d == 1)).then_some(vals)
}

/// The node holding the weight of a linear producer: itself, or the MatMul
/// behind a bias Add.
fn weight_node(g: &Graph, producer: NodeId) -> Option<NodeId> {
    match g.node(producer).op() {
        Op::Add(_) => [g.node(producer).input(0), g.node(producer).input(1)]
            .into_iter()
            .flatten()
            .filter_map(|v| g.producer(v))
            .find(|&p| matches!(g.node(p).op(), Op::MatMul)),
        _ => Some(producer),
    }
}
