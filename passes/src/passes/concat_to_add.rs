//! `concat-to-add`: a conv of a channel concat becomes a sum of convs, one
//! per concatenated input (REWRITES.md §5). Hardware pass: cost-gated, does
//! nothing without a target.
//!
//! Before:  c = Concat_axis=1(x_1, …, x_n);  y = Conv(P(c), W, b)
//! After:   y = Conv(P_1(x_1), W_1, b) + Conv(P_2(x_2), W_2) + … + Conv(P_n(x_n), W_n)
//!
//! `P` is a (possibly empty) chain of per-channel ops between the concat and
//! the conv; each moves into every branch with its parameters split to the
//! branch's channels `[o_i, o_i + C_i)`:
//! * BatchNormalization (inference form, constant parameters): a BN per
//!   branch with the sliced γ, β, μ, σ² and the same ε;
//! * Mul / Add by a per-channel or scalar constant: the sliced constant
//!   (`[C_i, 1, 1]`), or the same scalar;
//! * Relu, Clip: element-wise, so they commute with the concat exactly — a
//!   copy per branch with the same bounds.
//!
//! Formula: `W_i = W[:, o_i : o_i + C_i, :, :]`; `Conv(Concat(x)) =
//! Σ_i Conv(x_i, W_i) + b`, the bias on the first branch only. Exact (zero
//! padding of the concat is zero padding of every branch). The sum is a
//! chain of binary Adds — an add can ride in a conv's accumulator, which is
//! RepGhost's argument: a concat is a memory copy.
//!
//! Preconditions (else no rewrite; a skip with the reason once a chain
//! reaches a conv):
//! * the Concat joins ≥ 2 inputs of known channel counts on the channel
//!   axis of a rank-4 tensor, and is not a graph output;
//! * **every** consumer of the concat is such a chain ending in a conv (the
//!   concat disappears only when every consumer is rewritten); the values
//!   inside a chain are read once and are not graph outputs;
//! * each conv reads the chain on its data input, has G = 1 and float
//!   constant weights.
//!
//! Cost gate: [`PassContext::propose`]; under either intent the estimate
//! must fall (the rewrite adds no capacity).

use npuopt_ir::op::Binary;
use npuopt_ir::{DType, Graph, NodeId, Op, Tensor, ValueId};

use crate::change::Change;
use crate::conv_algebra::{bn_as_affine, conv_op, read_conv, ConvParams};
use crate::gate::Proposal;
use crate::pass::{for_each_live_node, Pass, PassContext, PassError};
use crate::rewrite::{const_f64, per_channel_constant};

pub struct ConcatToAdd;

const NAME: &str = "concat-to-add";
const RULE: &str = "conv-of-concat";

impl Pass for ConcatToAdd {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "needs --target: Conv(Concat(x_1..x_n)) → Σ Conv(x_i, W_i), per-channel ops (BN, Mul/Add, Relu, Clip) moved into the branches, where the cost model allows"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        if cx.target().is_none() {
            return Ok(());
        }
        let g = &mut model.graph;
        for_each_live_node(g, cx, |g, id, cx| {
            if let Op::Concat { axis } = *g.node(id).op() {
                try_split(g, id, axis, cx);
            }
        })
    }
}

/// A path from the concat to a conv.
#[derive(Clone, Debug)]
struct Chain {
    /// Per-channel ops, in order.
    steps: Vec<NodeId>,
    conv: NodeId,
    params: ConvParams,
}

/// Why a consumer is not a chain, and whether it reached a conv.
struct NotAChain {
    reached_conv: bool,
    why: String,
}

fn not_chain(reached_conv: bool, why: String) -> NotAChain {
    NotAChain { reached_conv, why }
}

/// The slot of `v` in node `n` when `n` is a per-channel op on `v`
/// (`channels` channels) that moves into the branches.
fn per_channel_step(g: &Graph, n: NodeId, v: ValueId, channels: usize) -> Result<(), String> {
    let node = g.node(n);
    let name = node.name();
    let data_slot = node.inputs().iter().position(|i| *i == Some(v));
    if data_slot != Some(0) && !matches!(node.op(), Op::Mul(_) | Op::Add(_)) {
        return Err(format!("'{name}' does not read the concat as its data"));
    }
    match node.op() {
        Op::Relu => Ok(()),
        Op::Clip(_) => {
            if node.inputs()[1..].iter().flatten().any(|b| *b == v) {
                return Err(format!("'{name}' reads the concat as a bound"));
            }
            Ok(())
        }
        Op::BatchNormalization(bn) => bn_as_affine(g, n, bn)
            .map(|_| ())
            .map_err(|e| format!("BN '{name}': {e}")),
        Op::Mul(b) | Op::Add(b) => {
            if !b.is_numpy_broadcast(g.opset()) {
                return Err(format!("'{name}' uses legacy broadcasting"));
            }
            let (Some(d), [Some(x), Some(y)]) = (data_slot, node.inputs()) else {
                return Err(format!("'{name}' is not binary"));
            };
            let c = if d == 0 { *y } else { *x };
            if c == v {
                return Err(format!("'{name}' reads the concat twice"));
            }
            per_channel_constant(g, c, channels, 4)
                .map(|_| ())
                .ok_or_else(|| format!("'{name}' is not by a per-channel constant"))
        }
        _ => Err(format!(
            "'{name}' ({}) is not a per-channel op or a conv",
            node.op_type()
        )),
    }
}

/// Follows `first` (a consumer of `start`) down to a conv.
fn chain(g: &Graph, start: ValueId, first: NodeId, channels: usize) -> Result<Chain, NotAChain> {
    let mut v = start;
    let mut n = first;
    let mut steps = Vec::new();
    loop {
        let node = g.node(n);
        let name = node.name().to_string();
        if let Op::Conv(_) = node.op() {
            if node.input(0) != Some(v) || node.inputs()[1..].iter().flatten().any(|i| *i == v) {
                return Err(not_chain(
                    true,
                    format!("conv '{name}' reads the concat as a parameter"),
                ));
            }
            let params =
                read_conv(g, n).map_err(|e| not_chain(true, format!("conv '{name}': {e}")))?;
            if params.weight.group != 1 {
                return Err(not_chain(
                    true,
                    format!(
                        "conv '{name}' has {} groups (only G = 1 splits)",
                        params.weight.group
                    ),
                ));
            }
            if params.weight.cin != channels {
                return Err(not_chain(
                    true,
                    format!("conv '{name}' reads {} channels", params.weight.cin),
                ));
            }
            return Ok(Chain {
                steps,
                conv: n,
                params,
            });
        }
        per_channel_step(g, n, v, channels).map_err(|why| not_chain(false, why))?;
        steps.push(n);
        let Some(out) = node.output(0) else {
            return Err(not_chain(false, format!("'{name}' has no output")));
        };
        if node.outputs().len() > 1
            && node.outputs()[1..]
                .iter()
                .flatten()
                .any(|o| !g.value(*o).uses().is_empty() || g.is_graph_output(*o))
        {
            return Err(not_chain(false, format!("'{name}' has other outputs read")));
        }
        if g.is_graph_output(out) || !g.has_single_use(out) {
            return Err(not_chain(
                false,
                format!("the output of '{name}' is read more than once"),
            ));
        }
        v = out;
        n = g.consumers(out).next().expect("single use");
    }
}

fn try_split(g: &mut Graph, concat: NodeId, axis: i64, cx: &mut PassContext) {
    let Some(out) = g.node(concat).output(0) else {
        return;
    };
    if g.ty(out).and_then(|t| t.rank()) != Some(4) || !(axis == 1 || axis == -3) {
        return;
    }
    let inputs: Vec<Option<ValueId>> = g.node(concat).inputs().to_vec();
    if inputs.len() < 2 || inputs.iter().any(Option::is_none) {
        return;
    }
    let mut widths = Vec::new();
    for v in inputs.iter().flatten() {
        match g.ty(*v).and_then(|t| t.concrete()) {
            Some(s) if s.len() == 4 && s[1] > 0 => widths.push(s[1] as usize),
            _ => return,
        }
    }
    let channels: usize = widths.iter().sum();
    let mut consumers: Vec<NodeId> = g.consumers(out).collect();
    consumers.sort();
    consumers.dedup();
    if consumers.is_empty() {
        return;
    }
    let name = g.node(concat).name().to_string();
    let mut chains = Vec::new();
    let mut failure: Option<NotAChain> = None;
    for &c in &consumers {
        match chain(g, out, c, channels) {
            Ok(ch) => chains.push(ch),
            Err(e) => {
                if failure
                    .as_ref()
                    .is_none_or(|f| !f.reached_conv && e.reached_conv)
                {
                    failure = Some(e);
                }
            }
        }
    }
    if let Some(f) = failure {
        if f.reached_conv || !chains.is_empty() {
            cx.skip(
                NAME,
                RULE,
                &name,
                format!("'{name}' is not split: {}", f.why),
            );
        }
        return;
    }
    if g.is_graph_output(out) {
        return cx.skip(
            NAME,
            RULE,
            &name,
            format!("'{name}' is not split: the concat is a graph output"),
        );
    }
    let xs: Vec<ValueId> = inputs.into_iter().flatten().collect();
    let proposal = Proposal {
        pass: NAME,
        rule: RULE,
        node: &name,
        adds_capacity: false,
        veto: None,
    };
    cx.propose(g, proposal, |g| Ok(split(g, concat, &xs, &widths, &chains)));
}

/// The rewrite, on the graph the gate hands over.
fn split(
    g: &mut Graph,
    concat: NodeId,
    xs: &[ValueId],
    widths: &[usize],
    chains: &[Chain],
) -> Change {
    let cname = g.node(concat).name().to_string();
    let channels: usize = widths.iter().sum();
    let mut matched = vec![cname.clone()];
    let mut added = Vec::new();
    let mut moved: Vec<String> = Vec::new();
    for ch in chains {
        let conv_name = g.node(ch.conv).name().to_string();
        let mut terms = Vec::new();
        let mut offset = 0;
        for (i, (&x, &c)) in xs.iter().zip(widths).enumerate() {
            let mut v = x;
            for &s in &ch.steps {
                let (id, o) = branch_step(g, s, v, channels, (offset, c), i);
                added.push(g.node(id).name().to_string());
                v = o;
            }
            let (id, o) = branch_conv(g, ch, &conv_name, v, offset, c, i);
            added.push(g.node(id).name().to_string());
            terms.push(o);
            offset += c;
        }
        let mut acc = terms[0];
        for (k, &t) in terms.iter().enumerate().skip(1) {
            let (id, outs) = g.add_node(
                &format!("{conv_name}_sum{k}"),
                Op::Add(Binary::default()),
                &[Some(acc), Some(t)],
                &[&format!("{conv_name}_sum{k}_output")],
                Some(ch.conv),
            );
            added.push(g.node(id).name().to_string());
            acc = outs[0];
        }
        let out = g.node(ch.conv).output(0).expect("an output");
        g.replace_all_uses(out, acc);
        matched.push(conv_name.clone());
        g.remove_node(ch.conv);
        for &s in ch.steps.iter().rev() {
            let n = g.node(s);
            let label = n.op_type().to_string();
            if !moved.contains(&label) {
                moved.push(label);
            }
            matched.push(n.name().to_string());
            g.remove_node(s);
        }
    }
    g.remove_node(concat);
    let refs: Vec<&str> = matched.iter().map(String::as_str).collect();
    let added_refs: Vec<&str> = added.iter().map(String::as_str).collect();
    let split: Vec<String> = widths.iter().map(|w| w.to_string()).collect();
    Change::new(
        NAME,
        RULE,
        &refs,
        format!(
            "Concat '{cname}' ({} channels) → {} conv{} of {} branches summed{}",
            split.join(" + "),
            chains.len(),
            if chains.len() == 1 { "" } else { "s" },
            xs.len(),
            if moved.is_empty() {
                String::new()
            } else {
                format!("; moved {} into the branches", moved.join(", "))
            }
        ),
    )
    .removed(&refs)
    .added(&added_refs)
}

/// A constant slice `[offset, offset + c)` of per-channel values as a new
/// `[c, 1, 1]` initializer.
fn sliced_constant(
    g: &mut Graph,
    name: &str,
    dtype: DType,
    values: &[f64],
    offset: usize,
    c: usize,
    dims: &[i64],
) -> ValueId {
    g.add_initializer(
        name,
        Tensor::from_f64_as(name, dtype, dims, &values[offset..offset + c]),
    )
}

/// Copies per-channel op `s` onto branch input `v` (channels
/// `[offset, offset + c)`).
fn branch_step(
    g: &mut Graph,
    s: NodeId,
    v: ValueId,
    channels: usize,
    (offset, c): (usize, usize),
    i: usize,
) -> (NodeId, ValueId) {
    let node = g.node(s);
    let op = node.op().clone();
    let base = format!("{}_b{i}", node.name());
    let mut inputs: Vec<Option<ValueId>> = node.inputs().to_vec();
    match &op {
        Op::BatchNormalization(_) => {
            inputs[0] = Some(v);
            for (slot, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")] {
                let p = inputs[slot].expect("checked");
                let dtype = g.constant(p).expect("checked").dtype();
                let vals = const_f64(g, p).expect("checked");
                inputs[slot] = Some(sliced_constant(
                    g,
                    &format!("{base}.{what}"),
                    dtype,
                    &vals,
                    offset,
                    c,
                    &[c as i64],
                ));
            }
        }
        Op::Mul(_) | Op::Add(_) => {
            let data_slot = if is_chain_data(g, s, 0) { 0 } else { 1 };
            let k = inputs[1 - data_slot].expect("checked");
            inputs[data_slot] = Some(v);
            let t = g.constant(k).expect("checked");
            if t.dims().iter().product::<i64>() != 1 {
                let dtype = t.dtype();
                let vals = per_channel_constant(g, k, channels, 4).expect("checked");
                inputs[1 - data_slot] = Some(sliced_constant(
                    g,
                    &format!("{base}.value"),
                    dtype,
                    &vals,
                    offset,
                    c,
                    &[c as i64, 1, 1],
                ));
            }
        }
        _ => inputs[0] = Some(v),
    }
    let (id, outs) = g.add_node(&base, op, &inputs, &[&format!("{base}_output")], Some(s));
    (id, outs[0])
}

/// True when input `slot` of binary `s` is the non-constant operand.
fn is_chain_data(g: &Graph, s: NodeId, slot: usize) -> bool {
    g.node(s)
        .input(slot)
        .is_some_and(|v| g.constant(v).is_none())
}

/// The conv of branch `i`: input channels `[offset, offset + c)` of the
/// original weight; the bias on branch 0 only.
fn branch_conv(
    g: &mut Graph,
    ch: &Chain,
    conv_name: &str,
    x: ValueId,
    offset: usize,
    c: usize,
    i: usize,
) -> (NodeId, ValueId) {
    let w = &ch.params.weight;
    let taps = w.kh * w.kw;
    let mut data = Vec::with_capacity(w.cout * c * taps);
    for o in 0..w.cout {
        let row = o * w.cin * taps;
        data.extend_from_slice(&w.data[row + offset * taps..row + (offset + c) * taps]);
    }
    let base = g.unique_node_name(&format!("{conv_name}_b{i}"));
    let dtype = ch.params.dtype;
    let wv = g.add_initializer(
        &format!("{base}.weight"),
        Tensor::from_f64_as(
            "",
            dtype,
            &[w.cout as i64, c as i64, w.kh as i64, w.kw as i64],
            &data,
        ),
    );
    let bias = (i == 0 && ch.params.has_bias).then(|| {
        g.add_initializer(
            &format!("{base}.bias"),
            Tensor::from_f64_as("", dtype, &[w.cout as i64], &ch.params.bias),
        )
    });
    let mut inputs = vec![Some(x), Some(wv)];
    if bias.is_some() {
        inputs.push(bias);
    }
    let (id, outs) = g.add_node(
        &base,
        conv_op(&ch.params.geometry, 1),
        &inputs,
        &[&format!("{base}_output")],
        Some(ch.conv),
    );
    (id, outs[0])
}
