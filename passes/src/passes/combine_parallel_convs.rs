//! `combine-parallel-convs`: a channel Concat of convs of one input becomes
//! one conv with the output channels stacked (REWRITES.md §4).
//!
//! Before:  y = Concat_axis=1(Conv_a(x), Conv_b(x), …)
//!          y = Concat_axis=1(Relu(Conv_a(x)), Relu(Conv_b(x)), …)   (fire)
//! After:   y = Conv(x, W', b')            y = Relu(Conv(x, W', b'))
//!
//! Formula: `K` the largest kernel per axis; conv `i`'s window is placed at
//! its offset in `K` (`conv_algebra::align`: centred), its filters at rows
//! `Σ_{j<i} Cout_j …`; `b'` is the biases concatenated (zeros for a conv
//! without one).
//!
//! Preconditions (else no rewrite; a skip with the reason once every input
//! is a single-use conv of one `x`):
//! * the Concat is on the channel axis (1, or −3 of a rank-4 tensor) and
//!   every input is a conv output (optionally through one element-wise op)
//!   read only by the Concat;
//! * every conv has G = 1, the same stride, dilation 1, windows that align;
//!   float constant weights of one dtype;
//! * the element-wise op, if any, is the same on every branch: `Relu`, or
//!   `Clip` with identical bounds. It commutes with the Concat and is
//!   applied once after the combined conv.
//!
//! Cost: stacking a 1×1 beside a 3×3 makes it a 3×3 (SqueezeNet's fire
//! module: +48% executed MACs, +40% weights). A combination that raises
//! executed MACs or weight bytes is not applied without a target, and with
//! one only when the cost model's estimate falls by more than the target's
//! margin ([`crate::footprint`], [`PassContext::admit`]).

use npuopt_ir::{Graph, NodeId, Op, ValueId};

use crate::change::Change;
use crate::conv_algebra::{add_conv, align, read_conv, Kernel, NewConv};
use crate::gate::Proposal;
use crate::pass::{for_each_live_node, Pass, PassContext, PassError};
use crate::rewrite::single_consumer;

pub struct CombineParallelConvs;

const NAME: &str = "combine-parallel-convs";
const RULE: &str = "concat-of-convs";

impl Pass for CombineParallelConvs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "combine a channel Concat of convs of one input (optionally each followed by the same Relu/Clip) into one conv"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let g = &mut model.graph;
        for_each_live_node(g, cx, |g, id, cx| {
            if let Op::Concat { axis } = *g.node(id).op() {
                try_combine(g, id, axis, cx);
            }
        })
    }
}

/// One input of the Concat: the conv and the element-wise op after it.
struct Branch {
    conv: NodeId,
    act: Option<NodeId>,
}

fn try_combine(g: &mut Graph, concat: NodeId, axis: i64, cx: &mut PassContext) {
    let Some(out) = g.node(concat).output(0) else {
        return;
    };
    let Some(rank) = g.ty(out).and_then(|t| t.rank()) else {
        return;
    };
    if rank != 4 || !(axis == 1 || axis == -3) {
        return;
    }
    let inputs: Vec<Option<ValueId>> = g.node(concat).inputs().to_vec();
    if inputs.len() < 2 {
        return;
    }
    let mut branches = Vec::new();
    for v in inputs {
        let Some(v) = v else { return };
        if single_consumer(g, v) != Some(concat) {
            return;
        }
        let Some(p) = g.producer(v) else { return };
        match g.node(p).op() {
            Op::Conv(_) => branches.push(Branch { conv: p, act: None }),
            Op::Relu | Op::Clip(_) => {
                let Some(u) = g.node(p).input(0) else { return };
                let Some(c) = g.producer(u) else { return };
                if !matches!(g.node(c).op(), Op::Conv(_)) || single_consumer(g, u) != Some(p) {
                    return;
                }
                branches.push(Branch {
                    conv: c,
                    act: Some(p),
                });
            }
            _ => return,
        }
    }
    let x = g.node(branches[0].conv).input(0);
    if x.is_none() || branches.iter().any(|b| g.node(b.conv).input(0) != x) {
        return;
    }
    let x = x.expect("checked");
    let name = g.node(concat).name().to_string();
    let merged = match build(g, &branches) {
        Ok(m) => m,
        Err(why) => {
            return cx.skip(
                NAME,
                RULE,
                &name,
                format!("'{name}' is not combined: {why}"),
            )
        }
    };
    let mut region: Vec<NodeId> = branches.iter().map(|b| b.conv).collect();
    region.extend(branches.iter().filter_map(|b| b.act));
    region.push(concat);
    let growth = crate::footprint::conv_growth(g, &region, out, &merged);
    let proposal = Proposal {
        pass: NAME,
        rule: RULE,
        node: &name,
        adds_capacity: false,
        veto: None,
    };
    cx.admit(g, proposal, growth, |g| {
        Ok(apply(g, concat, out, x, &branches, &merged))
    });
}

/// Replaces the Concat and its branches by the combined conv (and the
/// element-wise op after it).
fn apply(
    g: &mut Graph,
    concat: NodeId,
    out: ValueId,
    x: ValueId,
    branches: &[Branch],
    merged: &NewConv,
) -> Change {
    let name = g.node(concat).name().to_string();
    let (conv, conv_out) = add_conv(g, &format!("{name}_conv"), x, merged, concat);
    let mut added = vec![g.node(conv).name().to_string()];
    let final_out = match branches[0].act {
        None => conv_out,
        Some(a) => {
            let op = g.node(a).op().clone();
            let mut ins: Vec<Option<ValueId>> = g.node(a).inputs().to_vec();
            ins[0] = Some(conv_out);
            let act_name = g.node(a).name().to_string();
            let node_name = format!("{name}_{}", g.node(a).op_type().to_lowercase());
            let (id, outs) = g.add_node(
                &node_name,
                op,
                &ins,
                &[&format!("{act_name}_combined")],
                Some(conv),
            );
            added.push(g.node(id).name().to_string());
            outs[0]
        }
    };
    g.replace_all_uses(out, final_out);
    let mut removed = vec![name.clone()];
    g.remove_node(concat);
    for b in branches {
        for n in b.act.into_iter().chain([b.conv]) {
            removed.push(g.node(n).name().to_string());
            g.remove_node(n);
        }
    }
    let refs: Vec<&str> = removed.iter().map(String::as_str).collect();
    let added_refs: Vec<&str> = added.iter().map(String::as_str).collect();
    let k = merged.geometry.kernel;
    Change::new(
        NAME,
        RULE,
        &refs,
        format!(
            "combined {} convs into one {}×{} conv with {} output channels{}",
            branches.len(),
            k[0],
            k[1],
            merged.cout,
            if branches[0].act.is_some() {
                " and one element-wise op after it"
            } else {
                ""
            }
        ),
    )
    .removed(&refs)
    .added(&added_refs)
}

/// True when two element-wise ops compute the same function.
fn same_act(g: &Graph, a: NodeId, b: NodeId) -> bool {
    let (na, nb) = (g.node(a), g.node(b));
    if na.op() != nb.op() {
        return false;
    }
    let (ia, ib) = (na.inputs(), nb.inputs());
    if ia.len() != ib.len() {
        return false;
    }
    ia.iter().zip(ib).skip(1).all(|(x, y)| match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) if x == y => true,
        (Some(x), Some(y)) => match (g.constant(*x), g.constant(*y)) {
            (Some(tx), Some(ty)) => {
                tx.dtype() == ty.dtype()
                    && tx.dims() == ty.dims()
                    && tx.to_f64().ok() == ty.to_f64().ok()
            }
            _ => false,
        },
        _ => false,
    })
}

fn build(g: &Graph, branches: &[Branch]) -> Result<NewConv, String> {
    let first_act = branches[0].act;
    for b in branches {
        let same = match (first_act, b.act) {
            (None, None) => true,
            (Some(a), Some(c)) => same_act(g, a, c),
            _ => false,
        };
        if !same {
            return Err("the branches apply different element-wise ops".into());
        }
    }
    let mut params = Vec::new();
    for b in branches {
        let name = g.node(b.conv).name();
        let p = read_conv(g, b.conv).map_err(|e| format!("conv '{name}': {e}"))?;
        if p.weight.group != 1 {
            return Err(format!(
                "conv '{name}' has {} groups (only G = 1 combines)",
                p.weight.group
            ));
        }
        params.push(p);
    }
    let dtype = params[0].dtype;
    if params.iter().any(|p| p.dtype != dtype) {
        return Err("the weights differ in dtype".into());
    }
    let cin = params[0].weight.cin;
    if params.iter().any(|p| p.weight.cin != cin) {
        return Err("the convs read different channel counts".into());
    }
    let geoms: Vec<_> = params.iter().map(|p| p.geometry).collect();
    let aligned = align(&geoms)?;
    let [kh, kw] = aligned.merged.kernel;
    let cout: usize = params.iter().map(|p| p.weight.cout).sum();
    let mut w = Kernel::zeros(cout, cin, 1, kh, kw);
    let mut bias = Vec::with_capacity(cout);
    let mut row = 0;
    for (p, off) in params.iter().zip(&aligned.offsets) {
        let k = &p.weight;
        for o in 0..k.cout {
            for j in 0..cin {
                for y in 0..k.kh {
                    for xx in 0..k.kw {
                        let d = w.idx(row + o, j, off[0] + y, off[1] + xx);
                        w.data[d] = k.data[k.idx(o, j, y, xx)];
                    }
                }
            }
        }
        bias.extend_from_slice(&p.bias);
        row += k.cout;
    }
    Ok(NewConv::from_kernel(w, bias, dtype, aligned.merged))
}
