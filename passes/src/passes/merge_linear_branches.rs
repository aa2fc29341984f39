//! `merge-linear-branches`: parallel linear layers of one tensor, summed,
//! become one linear layer (REWRITES.md §9).
//!
//! Before:  y = Div(Add(Gemm(x, Wa, ba), Gemm(x, Wb, bb)), 2)
//!          (a distillation head: `(head(x) + head_dist(x)) / 2`)
//! After:   y = Div(Gemm(x, Wa + Wb, ba + bb), 2)
//!          (then `fold-batchnorm` folds the Div into the Gemm)
//!
//! The combination is a tree of `Add`, `Sub` and `Sum`, every inner result
//! read once, whose leaves are linear layers of the same `x`: `Gemm` with
//! transA = 0 (either transB), `MatMul` with a rank-2 constant weight, or
//! `MatMul` + `Add` of a per-column constant bias.
//! Formula: with `c_i = ±1` (negated under a `Sub`'s right side) and each
//! leaf read as `α_i·x·B_i + β_i·C_i` (`B_i` `[K,N]`),
//!   `W = Σ_i c_i·α_i·B_i`,   `b = Σ_i c_i·β_i·C_i`.
//! Per-channel scales inside the tree are folded into the layers first by
//! `fold-batchnorm` (Mul/Div by a constant after a Gemm/MatMul); the scale
//! after the sum folds into the merged layer the same way.
//! The merged layer is a Gemm when `x` has rank 2, else a MatMul (+ Add of
//! the bias when it is not all zeros). It never adds work: one `K×N`
//! product instead of several.
//!
//! Preconditions (else no rewrite; a skip with the reason when the leaves
//! are linear layers but cannot merge): at least two leaves, all reading
//! the same `x` (a head whose branches read different tensors is left
//! alone, with the reason); weights and biases float constants of one
//! dtype and the same `[K,N]`; every value in the tree of the output's
//! shape (no broadcasting).

use npuopt_ir::op::{Binary, Gemm};
use npuopt_ir::tensor::{F64Sink, FloatView};
use npuopt_ir::{DType, Graph, NodeId, Op, Tensor, ValueId};

use crate::change::Change;
use crate::pass::{Pass, PassContext, PassError};
use crate::rewrite::for_each_sum_last_first;

pub struct MergeLinearBranches;

const NAME: &str = "merge-linear-branches";
const RULE: &str = "sum-of-linear";

impl Pass for MergeLinearBranches {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "merge a sum (Add/Sub/Sum) of Gemm/MatMul layers of one tensor into one layer (distillation heads)"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let g = &mut model.graph;
        for_each_sum_last_first(g, cx, try_merge)
    }
}

/// One linear layer of the sum: `coef·(alpha·x·B + beta·C)`.
struct Leaf<'g> {
    coef: f64,
    x: ValueId,
    /// `B`, `[K, N]`, read in place from the layer's weight.
    b: LeafWeight<'g>,
    k: usize,
    n: usize,
    bias: Vec<f64>,
    dtype: DType,
    /// The nodes it is made of (the layer and its bias Add).
    nodes: Vec<NodeId>,
}

fn shape(g: &Graph, v: ValueId) -> Option<Vec<i64>> {
    g.ty(v)?.concrete()
}

/// A leaf's `B` as its weight stores it: `B[r, c]` is `alpha·W[c, r]`
/// (Gemm, transB), `alpha·W[r, c]` (Gemm) or `W[r, c]` (MatMul) — the f64
/// products the sum adds, computed as it reads them, so no f64 copy of a
/// head's weight is made.
struct LeafWeight<'g> {
    w: FloatView<'g>,
    trans_b: bool,
    /// `None` for a MatMul (no product at all).
    alpha: Option<f64>,
}

impl LeafWeight<'_> {
    fn at(&self, r: usize, c: usize, k: usize, n: usize) -> f64 {
        let w = if self.trans_b {
            self.w.get(c * k + r)
        } else {
            self.w.get(r * n + c)
        };
        match self.alpha {
            Some(alpha) => alpha * w,
            None => w,
        }
    }
}

fn matrix(g: &Graph, v: ValueId) -> Option<(FloatView<'_>, Vec<i64>, DType)> {
    let t = g.constant(v)?;
    if !t.dtype().is_float() || t.dims().len() != 2 {
        return None;
    }
    Some((t.float_view().ok()?, t.dims().to_vec(), t.dtype()))
}

fn per_column(g: &Graph, v: ValueId, n: usize) -> Option<Vec<f64>> {
    let t = g.constant(v)?;
    if !t.dtype().is_float() {
        return None;
    }
    let vals = t.to_f64().ok()?;
    match (t.dims(), vals.len()) {
        (_, 1) => Some(vec![vals[0]; n]),
        ([len] | [1, len], _) if *len as usize == n => Some(vals),
        _ => None,
    }
}

/// `v` as a linear layer of some `x`, if it is one (a single-use value).
fn leaf(g: &Graph, v: ValueId, coef: f64) -> Option<Leaf<'_>> {
    let p = g.producer(v)?;
    let node = g.node(p);
    match node.op() {
        Op::Gemm(gm) if !gm.trans_a && gm.broadcast.is_none() => {
            let x = node.input(0)?;
            let (w, dims, dtype) = matrix(g, node.input(1)?)?;
            let (k, n) = if gm.trans_b {
                (dims[1] as usize, dims[0] as usize)
            } else {
                (dims[0] as usize, dims[1] as usize)
            };
            let b = LeafWeight {
                w,
                trans_b: gm.trans_b,
                alpha: Some(gm.alpha as f64),
            };
            let bias = match node.input(2) {
                None => vec![0.0; n],
                Some(c) => per_column(g, c, n)?
                    .into_iter()
                    .map(|x| x * gm.beta as f64)
                    .collect(),
            };
            Some(Leaf {
                coef,
                x,
                b,
                k,
                n,
                bias,
                dtype,
                nodes: vec![p],
            })
        }
        Op::MatMul => {
            let x = node.input(0)?;
            let (w, dims, dtype) = matrix(g, node.input(1)?)?;
            let n = dims[1] as usize;
            Some(Leaf {
                coef,
                x,
                b: LeafWeight {
                    w,
                    trans_b: false,
                    alpha: None,
                },
                k: dims[0] as usize,
                n,
                bias: vec![0.0; n],
                dtype,
                nodes: vec![p],
            })
        }
        Op::Add(_) => {
            let (a, c) = (node.input(0)?, node.input(1)?);
            let (mm_out, bias_v) = if g.constant(c).is_some() {
                (a, c)
            } else {
                (c, a)
            };
            if g.constant(mm_out).is_some() || !g.has_single_use(mm_out) {
                return None;
            }
            let mm = g.producer(mm_out)?;
            if !matches!(g.node(mm).op(), Op::MatMul) || shape(g, mm_out) != shape(g, v) {
                return None;
            }
            let mut l = leaf(g, mm_out, coef)?;
            l.bias = per_column(g, bias_v, l.n)?;
            l.nodes.push(p);
            Some(l)
        }
        _ => None,
    }
}

/// Expands `v` (scaled by `coef`) into leaves; `false` when it is not a
/// sum of linear layers.
fn expand<'g>(
    g: &'g Graph,
    v: ValueId,
    coef: f64,
    out_shape: &[i64],
    leaves: &mut Vec<Leaf<'g>>,
    inner: &mut Vec<NodeId>,
) -> bool {
    if shape(g, v).as_deref() != Some(out_shape) || !g.has_single_use(v) {
        return false;
    }
    let Some(p) = g.producer(v) else { return false };
    let node = g.node(p);
    let operands: Vec<ValueId> = node.inputs().iter().flatten().copied().collect();
    let sub = matches!(node.op(), Op::Sub(_));
    let combination = match node.op() {
        Op::Add(b) | Op::Sub(b) => b.is_numpy_broadcast(g.opset()) && operands.len() == 2,
        Op::Sum => !operands.is_empty(),
        _ => false,
    };
    // A MatMul's bias Add is a leaf, not a combination.
    if combination && !operands.iter().any(|&o| g.constant(o).is_some()) {
        inner.push(p);
        return operands.iter().enumerate().all(|(i, &o)| {
            let c = if sub && i == 1 { -coef } else { coef };
            expand(g, o, c, out_shape, leaves, inner)
        });
    }
    match leaf(g, v, coef) {
        Some(l) => {
            leaves.push(l);
            true
        }
        None => false,
    }
}

fn try_merge(g: &mut Graph, root: NodeId, cx: &mut PassContext) {
    let Some(out) = g.node(root).output(0) else {
        return;
    };
    let Some(out_shape) = shape(g, out) else {
        return;
    };
    let operands: Vec<ValueId> = g.node(root).inputs().iter().flatten().copied().collect();
    if operands.len() < 2 || operands.iter().any(|&o| g.constant(o).is_some()) {
        return;
    }
    let sub = matches!(g.node(root).op(), Op::Sub(_));
    match g.node(root).op() {
        Op::Add(b) | Op::Sub(b) if !b.is_numpy_broadcast(g.opset()) => return,
        _ => {}
    }
    let mut leaves = Vec::new();
    let mut inner = vec![root];
    for (i, &o) in operands.iter().enumerate() {
        let c = if sub && i == 1 { -1.0 } else { 1.0 };
        if !expand(g, o, c, &out_shape, &mut leaves, &mut inner) {
            return;
        }
    }
    let name = g.node(root).name().to_string();
    let x = leaves[0].x;
    let first = &leaves[0];
    let why = if leaves.iter().any(|l| l.x != x) {
        Some("its branches read different tensors".to_string())
    } else if leaves
        .iter()
        .any(|l| l.k != first.k || l.n != first.n || l.dtype != first.dtype)
    {
        Some("its layers differ in shape or dtype".to_string())
    } else {
        None
    };
    if let Some(why) = why {
        return cx.skip(NAME, RULE, &name, format!("'{name}' is not merged: {why}"));
    }
    let (k, n, dtype) = (first.k, first.n, first.dtype);
    // W = Σ coef·B, row by row straight into the merged weight (each
    // element summed from 0.0 over the leaves in order, as a full f64
    // matrix was).
    let mut w = F64Sink::new(dtype, k * n);
    let mut row = vec![0.0; n];
    for r in 0..k {
        row.fill(0.0);
        for l in &leaves {
            for (c, a) in row.iter_mut().enumerate() {
                *a += l.coef * l.b.at(r, c, k, n);
            }
        }
        w.extend(&row);
    }
    let w = w.finish("", &[k as i64, n as i64]);
    let mut bias = vec![0.0; n];
    for l in &leaves {
        bias.iter_mut()
            .zip(&l.bias)
            .for_each(|(a, b)| *a += l.coef * b);
    }
    let leaf_count = leaves.len();
    let leaf_nodes: Vec<NodeId> = leaves
        .iter()
        .flat_map(|l| l.nodes.iter().rev().copied())
        .collect();
    drop(leaves);
    let rank2 = shape(g, x).is_some_and(|s| s.len() == 2);
    let node_name = g.unique_node_name(&format!("{name}_merged"));
    let wv = g.add_initializer(&format!("{node_name}.weight"), w);
    let has_bias = bias.iter().any(|&b| b != 0.0);
    let bv = has_bias.then(|| {
        g.add_initializer(
            &format!("{node_name}.bias"),
            Tensor::from_f64_as("", dtype, &[n as i64], &bias),
        )
    });
    let mut added = vec![node_name.clone()];
    let new_out = if rank2 {
        let op = Op::Gemm(Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
            broadcast: None,
        });
        let ins = [Some(x), Some(wv), bv];
        let (_, outs) = g.add_node(
            &node_name,
            op,
            &ins[..if has_bias { 3 } else { 2 }],
            &[&format!("{node_name}_output")],
            Some(root),
        );
        outs[0]
    } else {
        let (_, outs) = g.add_node(
            &node_name,
            Op::MatMul,
            &[Some(x), Some(wv)],
            &[&format!("{node_name}_output")],
            Some(root),
        );
        match bv {
            None => outs[0],
            Some(bv) => {
                let add_name = g.unique_node_name(&format!("{node_name}_bias"));
                let (_, o) = g.add_node(
                    &add_name,
                    Op::Add(Binary::default()),
                    &[Some(outs[0]), Some(bv)],
                    &[&format!("{add_name}_output")],
                    Some(root),
                );
                added.push(add_name);
                o[0]
            }
        }
    };
    g.replace_all_uses(out, new_out);
    let mut removed: Vec<String> = Vec::new();
    for id in inner.iter().copied().chain(leaf_nodes) {
        removed.push(g.node(id).name().to_string());
        g.remove_node(id);
    }
    let refs: Vec<&str> = removed.iter().map(String::as_str).collect();
    let added_refs: Vec<&str> = added.iter().map(String::as_str).collect();
    cx.record(
        Change::new(
            NAME,
            RULE,
            &refs,
            format!(
                "merged {} linear layers of '{}' into one {}×{} {}",
                leaf_count,
                g.value(x).name(),
                k,
                n,
                if rank2 { "Gemm" } else { "MatMul" }
            ),
        )
        .removed(&refs)
        .added(&added_refs),
    );
}
