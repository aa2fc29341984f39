//! `merge-branches`: structural re-parameterization — a linear combination
//! of branches that are all linear in one tensor `x` becomes one Conv
//! (REWRITES.md §2).
//!
//! Before:  y = Add(Add(Conv3x3(x), Conv1x1(x)), BN(x))          (RepVGG)
//!          y = Add(x, Mul(γ, Sub(Add(Add(Conv1x1(x), BN(x)), Conv3x3(x)), BN(x))))
//!                                                              (FastViT)
//! After:   y = Conv3x3(x, W', b')
//!
//! The combination is a tree of `Add`, `Sub`, `Sum`, `Mul` by a per-channel
//! constant (`[C,1,1]`, `[1,C,1,1]`, a scalar), `Add`/`Sub` of such a
//! constant and inference `BatchNormalization` (a per-channel affine map),
//! every inner result read once. Its leaves are branches of `x`:
//! * a Conv of `x` (constant float weight and bias);
//! * an AveragePool of `x` (a depthwise conv with `1/(kh·kw)` taps), only
//!   with `count_include_pad=1` or no padding, and `ceil_mode=0`;
//! * an AveragePool of a 1×1 conv of `x` (DBB's avg branch; the conv's
//!   output read only by the pool, stride 1, no pads): the conv's weight
//!   spread over the pool's taps, `W[o,j,:,:] = W1[o,j]/(kh·kw)`. Exact when
//!   the pool has no padding (the bias averages to itself) or the conv has
//!   no bias — a padded border would average the bias with zeros;
//! * `x` itself (a 1×1 identity kernel; a BN of `x` is the identity with
//!   its affine map).
//!
//! Formula, with per-output-channel coefficients `c_i` (the product of the
//! Muls and BN scales above leaf `i`, negated under a `Sub`'s right side):
//!   `W'[o] = Σ_i c_i[o]·pad_K(expand_G(W_i))[o]`
//!   `b'[o] = Σ_i c_i[o]·b_i[o]` + (the constants and BN shifts, scaled)
//! `K` is the largest kernel per axis, each window placed at its offset in
//! it (`conv_algebra::align`: centred, per axis), `G = gcd(g_i)` with the
//! identity, BN and pool branches counting as depthwise (`g = C`), each
//! branch expanded block-diagonally to `G` groups.
//!
//! Preconditions (else no rewrite; a skip with the reason when the tree is
//! a combination of branches of one `x` but cannot merge):
//! * at least two branches, at least one Conv, AveragePool or BN absorbed;
//! * every branch has the same stride and dilation 1, and all windows
//!   align (same centre, same output shape); identity branches then need
//!   stride 1 and `Cin = Cout` (their shape is the output's);
//! * `auto_pad` is resolved exactly (VALID, or SAME with a known input
//!   size); weights and biases are float constants of one dtype;
//! * every value inside the tree has the output's shape (no broadcasting)
//!   and is read only inside it; a branch read elsewhere is reported.
//!
//! Cost: a merge that raises executed MACs or weight bytes (`x + BN(x)`
//! becomes a conv where there was none; a depthwise 3×3 beside a dense
//! 1×1 becomes a dense 3×3) is not applied without a target, and with one
//! only when the estimate falls by more than the target's margin
//! ([`crate::footprint`], [`PassContext::admit`]).
//!
//! The merged Conv is placed where the top node was and takes over its
//! output (so graph output names survive); the absorbed nodes are removed,
//! their initializers left for `eliminate-dead`.

use npuopt_ir::{DType, Dim, Graph, NodeId, Op, ValueId};

use crate::change::Change;
use crate::conv_algebra::{
    add_conv, align, bn_as_affine, combine, gcd, view_conv, BranchKernel, Geometry, NewConv,
};
use crate::gate::Proposal;
use crate::pass::{Pass, PassContext, PassError};
use crate::rewrite::{for_each_sum_last_first, per_channel_constant};

pub struct MergeBranches;

const NAME: &str = "merge-branches";
const RULE: &str = "linear-combination";

impl Pass for MergeBranches {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "merge a linear combination of Conv, BN, AveragePool and identity branches of one tensor into one Conv (RepVGG, MobileOne, RepGhost, DBB, ACNet, FastViT)"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let g = &mut model.graph;
        for_each_sum_last_first(g, cx, try_merge)
    }
}

/// One leaf of the combination, with its per-channel coefficient.
#[derive(Debug)]
enum Leaf {
    Identity(ValueId),
    Conv(NodeId),
    Pool(NodeId),
    /// `AveragePool(Conv1x1(x))`: (pool, conv).
    PoolOfConv(NodeId, NodeId),
}

#[derive(Debug)]
struct Term {
    coef: Vec<f64>,
    leaf: Leaf,
}

impl Term {
    fn input(&self, g: &Graph) -> Option<ValueId> {
        match self.leaf {
            Leaf::Identity(v) => Some(v),
            Leaf::Conv(n) | Leaf::Pool(n) | Leaf::PoolOfConv(_, n) => g.node(n).input(0),
        }
    }
}

/// The tree below a root: its leaves, the constant part, and the nodes it
/// absorbs (parents before children).
struct Tree {
    channels: usize,
    shape: Vec<Dim>,
    terms: Vec<Term>,
    bias: Vec<f64>,
    absorbed: Vec<NodeId>,
    bns: usize,
}

impl Tree {
    fn same_shape(&self, g: &Graph, v: ValueId) -> bool {
        g.ty(v).and_then(|t| t.shape.as_ref()) == Some(&self.shape)
            && !self.shape.iter().any(|d| matches!(d, Dim::Unknown))
    }

    /// Expands `v`, scaled by `coef`, into terms. `false` when the tree is
    /// not a linear combination this pass handles (no rewrite, no report).
    fn expand(&mut self, g: &Graph, v: ValueId, coef: Vec<f64>, root: bool) -> bool {
        if !self.same_shape(g, v) {
            return false;
        }
        let producer = g.producer(v);
        if !root && !g.has_single_use(v) || producer.is_none() {
            self.terms.push(Term {
                coef,
                leaf: Leaf::Identity(v),
            });
            return true;
        }
        let p = producer.expect("checked");
        let n = g.node(p);
        let c = self.channels;
        let operands: Vec<ValueId> = n.inputs().iter().flatten().copied().collect();
        let pc = |x: ValueId| per_channel_constant(g, x, c, 4);
        match n.op() {
            Op::Add(b) | Op::Sub(b) if b.is_numpy_broadcast(g.opset()) && operands.len() == 2 => {
                let sub = matches!(n.op(), Op::Sub(_));
                self.absorbed.push(p);
                for (i, &x) in operands.iter().enumerate() {
                    let sign = if sub && i == 1 { -1.0 } else { 1.0 };
                    let cf: Vec<f64> = coef.iter().map(|k| sign * k).collect();
                    if g.constant(x).is_some() {
                        let Some(vals) = pc(x) else { return false };
                        (0..c).for_each(|o| self.bias[o] += cf[o] * vals[o]);
                    } else if !self.expand(g, x, cf, false) {
                        return false;
                    }
                }
                true
            }
            Op::Sum if !operands.is_empty() => {
                self.absorbed.push(p);
                for &x in &operands {
                    if g.constant(x).is_some() {
                        let Some(vals) = pc(x) else { return false };
                        (0..c).for_each(|o| self.bias[o] += coef[o] * vals[o]);
                    } else if !self.expand(g, x, coef.clone(), false) {
                        return false;
                    }
                }
                true
            }
            Op::Mul(b) if !root && b.is_numpy_broadcast(g.opset()) && operands.len() == 2 => {
                let (x, k) = match (g.constant(operands[0]), g.constant(operands[1])) {
                    (None, Some(_)) => (operands[0], operands[1]),
                    (Some(_), None) => (operands[1], operands[0]),
                    _ => return self.leaf(v, coef),
                };
                let Some(vals) = pc(k) else {
                    return self.leaf(v, coef);
                };
                self.absorbed.push(p);
                let cf = (0..c).map(|o| coef[o] * vals[o]).collect();
                self.expand(g, x, cf, false)
            }
            Op::BatchNormalization(bn) if !root => {
                let Ok((s, t)) = bn_as_affine(g, p, bn) else {
                    return self.leaf(v, coef);
                };
                if s.len() != c {
                    return false;
                }
                self.absorbed.push(p);
                self.bns += 1;
                (0..c).for_each(|o| self.bias[o] += coef[o] * t[o]);
                let cf = (0..c).map(|o| coef[o] * s[o]).collect();
                self.expand(g, operands[0], cf, false)
            }
            Op::Conv(_) if !root => {
                self.absorbed.push(p);
                self.terms.push(Term {
                    coef,
                    leaf: Leaf::Conv(p),
                });
                true
            }
            Op::AveragePool(_) if !root => {
                self.absorbed.push(p);
                // A pool over a 1×1 conv read only by it is one branch of
                // the conv's input (DBB); anything else pools its input.
                let inner = g.node(p).input(0).and_then(|v| {
                    let c = g.producer(v)?;
                    let pointwise = view_conv(g, c).is_ok_and(|k| {
                        k.kh == 1
                            && k.kw == 1
                            && k.geometry.stride == [1, 1]
                            && k.geometry.pads == [0; 4]
                    });
                    (pointwise && g.has_single_use(v)).then_some(c)
                });
                let leaf = match inner {
                    Some(c) => {
                        self.absorbed.push(c);
                        Leaf::PoolOfConv(p, c)
                    }
                    None => Leaf::Pool(p),
                };
                self.terms.push(Term { coef, leaf });
                true
            }
            _ if root => false,
            _ => self.leaf(v, coef),
        }
    }

    fn leaf(&mut self, v: ValueId, coef: Vec<f64>) -> bool {
        self.terms.push(Term {
            coef,
            leaf: Leaf::Identity(v),
        });
        true
    }
}

fn try_merge(g: &mut Graph, root: NodeId, cx: &mut PassContext) {
    let Some(out) = g.node(root).output(0) else {
        return;
    };
    let Some(shape) = g.ty(out).and_then(|t| t.shape.clone()) else {
        return;
    };
    if shape.len() != 4 {
        return;
    }
    let Some(c) = shape[1].known().filter(|&c| c > 0) else {
        return;
    };
    let c = c as usize;
    let mut tree = Tree {
        channels: c,
        shape,
        terms: Vec::new(),
        bias: vec![0.0; c],
        absorbed: Vec::new(),
        bns: 0,
    };
    if !tree.expand(g, out, vec![1.0; c], true) {
        return;
    }
    let convs_or_pools = tree
        .terms
        .iter()
        .filter(|t| !matches!(t.leaf, Leaf::Identity(_)))
        .count();
    if tree.terms.len() < 2 || convs_or_pools + tree.bns == 0 {
        return;
    }
    let root_name = g.node(root).name().to_string();
    // The common input of every branch.
    let inputs: Vec<ValueId> = tree.terms.iter().filter_map(|t| t.input(g)).collect();
    if inputs.len() != tree.terms.len() {
        return;
    }
    let x = most_common(&inputs);
    if inputs.iter().any(|&v| v != x) {
        // Not one combination of branches of x — unless a branch is
        // computed from x but read elsewhere too.
        for t in &tree.terms {
            if let Leaf::Identity(v) = t.leaf {
                let Some(p) = g.producer(v) else { continue };
                let pn = g.node(p);
                let linear = matches!(
                    pn.op(),
                    Op::Conv(_) | Op::AveragePool(_) | Op::BatchNormalization(_)
                );
                if linear && pn.input(0) == Some(x) && v != x {
                    cx.skip(
                        NAME,
                        RULE,
                        &root_name,
                        format!(
                            "'{root_name}' is not merged: the output of branch '{}' has other readers",
                            pn.name()
                        ),
                    );
                    return;
                }
            }
        }
        return;
    }
    if g.constant(x).is_some() {
        return;
    }
    match build(g, &tree, x) {
        Ok(merged) => {
            let growth = crate::footprint::conv_growth(g, &tree.absorbed, out, &merged.conv);
            let proposal = Proposal {
                pass: NAME,
                rule: RULE,
                node: &root_name,
                adds_capacity: false,
                veto: None,
            };
            cx.admit(g, proposal, growth, |g| {
                Ok(apply(g, root, &tree, x, merged))
            });
        }
        Err(why) => cx.skip(
            NAME,
            RULE,
            &root_name,
            format!("'{root_name}' is not merged: {why}"),
        ),
    }
}

fn most_common(vs: &[ValueId]) -> ValueId {
    let mut best = (vs[0], 0);
    for &v in vs {
        let n = vs.iter().filter(|&&w| w == v).count();
        if n > best.1 {
            best = (v, n);
        }
    }
    best.0
}

struct Merged {
    conv: NewConv,
    summary: String,
}

/// Computes the merged weight and bias, or why the branches cannot merge.
/// The window of an AveragePool branch, refusing what is not a fixed
/// linear map (ceil_mode, count_include_pad=0 over padding).
fn pool_geometry(g: &Graph, pool: NodeId, xty: &npuopt_ir::TensorType) -> Result<Geometry, String> {
    let node = g.node(pool);
    let name = node.name();
    let Op::AveragePool(p) = node.op() else {
        return Err(format!("'{name}' is not an AveragePool"));
    };
    let ks = p
        .window
        .kernel_shape
        .clone()
        .filter(|k| k.len() == 2)
        .ok_or_else(|| format!("branch '{name}' is not a 2-D pool"))?;
    let spatial = xty.concrete().map(|s| [s[2], s[3]]);
    let geom = Geometry::of_window(&p.window, [ks[0] as usize, ks[1] as usize], spatial)
        .map_err(|e| format!("branch '{name}': {e}"))?;
    if p.ceil_mode != 0 {
        return Err(format!("branch '{name}' has ceil_mode=1"));
    }
    if p.count_include_pad == 0 && geom.pads != [0; 4] {
        return Err(format!(
            "branch '{name}' averages with count_include_pad=0 over padding (the divisor varies at the border)"
        ));
    }
    Ok(geom)
}

fn build(g: &Graph, tree: &Tree, x: ValueId) -> Result<Merged, String> {
    let c = tree.channels;
    let xty = g.ty(x).ok_or("the input's type is unknown")?;
    let cin = xty
        .shape
        .as_ref()
        .filter(|s| s.len() == 4)
        .and_then(|s| s[1].known())
        .ok_or("the input's channel count is unknown")? as usize;
    // Each branch as (kernel, window), the kernels read in place.
    let mut kernels: Vec<(BranchKernel, Geometry)> = Vec::new();
    let mut bias = tree.bias.clone();
    let mut dtype: Option<DType> = None;
    let (mut n_conv, mut n_pool, mut n_id) = (0, 0, 0);
    for t in &tree.terms {
        match t.leaf {
            Leaf::Identity(_) => {
                n_id += 1;
                kernels.push((
                    BranchKernel::diagonal(1, 1, vec![1.0; c]),
                    Geometry::point(),
                ));
            }
            Leaf::Conv(n) => {
                n_conv += 1;
                let name = g.node(n).name();
                let p = view_conv(g, n).map_err(|e| format!("branch '{name}': {e}"))?;
                if p.cout != c || p.cin != cin {
                    return Err(format!("branch '{name}' has other channel counts"));
                }
                if dtype.is_some_and(|d| d != p.dtype) {
                    return Err("the branches' weights differ in dtype".into());
                }
                dtype = Some(p.dtype);
                (0..c).for_each(|o| bias[o] += t.coef[o] * p.bias[o]);
                let geometry = p.geometry;
                kernels.push((BranchKernel::weight(p), geometry));
            }
            Leaf::PoolOfConv(pool, conv) => {
                n_pool += 1;
                n_conv += 1;
                let name = g.node(pool).name();
                let p1 = view_conv(g, conv).map_err(|e| format!("branch '{name}': {e}"))?;
                if p1.cout != c || p1.cin != cin {
                    return Err(format!("branch '{name}' has other channel counts"));
                }
                if dtype.is_some_and(|d| d != p1.dtype) {
                    return Err("the branches' weights differ in dtype".into());
                }
                dtype = Some(p1.dtype);
                let geom = pool_geometry(g, pool, xty)?;
                let biased = p1.bias.iter().any(|&b| b != 0.0);
                if biased && geom.pads != [0; 4] {
                    return Err(format!(
                        "branch '{name}' pads with zeros where the merged conv would see the 1×1 conv's bias"
                    ));
                }
                (0..c).for_each(|o| bias[o] += t.coef[o] * p1.bias[o]);
                let (kh, kw) = (geom.kernel[0], geom.kernel[1]);
                let tap = 1.0 / (kh * kw) as f64;
                kernels.push((BranchKernel::spread(p1, kh, kw, tap), geom));
            }
            Leaf::Pool(n) => {
                n_pool += 1;
                let name = g.node(n).name();
                let geom = pool_geometry(g, n, xty)?;
                if cin != c {
                    return Err(format!("branch '{name}' changes the channel count"));
                }
                let (kh, kw) = (geom.kernel[0], geom.kernel[1]);
                let tap = 1.0 / (kh * kw) as f64;
                kernels.push((BranchKernel::diagonal(kh, kw, vec![tap; c]), geom));
            }
        }
    }
    if n_id > 0 && cin != c {
        return Err("the identity branch needs Cin = Cout".into());
    }
    let dtype = match dtype {
        Some(d) => d,
        None => xty.dtype,
    };
    if !dtype.is_float() {
        return Err(format!("the weights are {dtype}, not a float type"));
    }
    let geoms: Vec<Geometry> = kernels.iter().map(|(_, g)| *g).collect();
    let aligned = align(&geoms)?;
    let group = kernels.iter().fold(c, |acc, (k, _)| gcd(acc, k.group));
    if !cin.is_multiple_of(group) {
        return Err("the merged group count does not divide the input channels".into());
    }
    let [kh, kw] = aligned.merged.kernel;
    // Summed output channel by output channel straight into the merged
    // weight's buffer, in the weights' dtype (see `combine`).
    let branches: Vec<(BranchKernel, &[f64], [usize; 2])> = kernels
        .into_iter()
        .zip(&tree.terms)
        .zip(&aligned.offsets)
        .map(|(((k, _), t), off)| (k, t.coef.as_slice(), *off))
        .collect();
    let weight = combine(&branches, c, cin, group, kh, kw, dtype);
    let mut parts = Vec::new();
    if n_conv > 0 {
        parts.push(format!("{n_conv} conv"));
    }
    if n_pool > 0 {
        parts.push(format!("{n_pool} avg-pool"));
    }
    if n_id > 0 {
        parts.push(format!("{n_id} identity"));
    }
    if tree.bns > 0 {
        parts.push(format!("{} BN", tree.bns));
    }
    let summary = format!(
        "{} into one {kh}×{kw} conv (group {group}, stride {})",
        parts.join(" + "),
        aligned.merged.stride[0]
    );
    Ok(Merged {
        conv: NewConv {
            weight,
            cout: c,
            cin,
            group,
            bias,
            dtype,
            geometry: aligned.merged,
        },
        summary,
    })
}

fn apply(g: &mut Graph, root: NodeId, tree: &Tree, x: ValueId, m: Merged) -> Change {
    let root_name = g.node(root).name().to_string();
    let out = g.node(root).output(0).expect("an output");
    let (id, new_out) = add_conv(g, &format!("{root_name}_merged"), x, &m.conv, root);
    g.replace_all_uses(out, new_out);
    let names: Vec<String> = tree
        .absorbed
        .iter()
        .map(|&n| g.node(n).name().to_string())
        .collect();
    for &n in &tree.absorbed {
        g.remove_node(n);
    }
    let x_name = g.value(x).name().to_string();
    let new_name = g.node(id).name().to_string();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    Change::new(
        NAME,
        RULE,
        &refs,
        format!("merged branches of '{x_name}': {}", m.summary),
    )
    .removed(&refs)
    .added(&[&new_name])
}
