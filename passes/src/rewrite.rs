//! Small helpers every pass uses to read constants and splice nodes.

use npuopt_ir::{DType, Graph, NodeId, Op, Tensor, ValueId};

use crate::pass::{PassContext, PassError};

/// The values of a constant float tensor as f64.
pub fn const_f64(g: &Graph, v: ValueId) -> Option<Vec<f64>> {
    let t = g.constant(v)?;
    if !t.dtype().is_float() {
        return None;
    }
    t.to_f64().ok()
}

/// A constant that acts per channel on an NCHW-like tensor of `rank` with
/// `channels` channels: a scalar, `[C]`-broadcast shapes such as `[C,1,1]`
/// or `[1,C,1,1]`. Returns one value per channel.
pub fn per_channel_constant(
    g: &Graph,
    v: ValueId,
    channels: usize,
    rank: usize,
) -> Option<Vec<f64>> {
    let t = g.constant(v)?;
    if !t.dtype().is_float() {
        return None;
    }
    let dims = t.dims();
    let values = t.to_f64().ok()?;
    if values.len() == 1 && dims.len() <= rank {
        return Some(vec![values[0]; channels]);
    }
    // Right-aligned broadcasting: the channel axis of the data is 1, so the
    // constant's dim at position (1 - (rank - len)) must be C and all the
    // others 1.
    if dims.len() > rank || values.len() != channels {
        return None;
    }
    let channel_pos = 1 + dims.len() as isize - rank as isize;
    if channel_pos < 0 {
        return None;
    }
    let ok = dims.iter().enumerate().all(|(i, &d)| {
        if i as isize == channel_pos {
            d as usize == channels
        } else {
            d == 1
        }
    });
    ok.then_some(values)
}

/// The single consumer of `v`, if `v` is read exactly once and is not a
/// graph output.
pub fn single_consumer(g: &Graph, v: ValueId) -> Option<NodeId> {
    if !g.has_single_use(v) {
        return None;
    }
    g.consumers(v).next()
}

/// True when `v` is an initializer read only by `node` (so it may be
/// rewritten in place without affecting anyone else).
pub fn owned_initializer(g: &Graph, v: ValueId, node: NodeId) -> bool {
    let val = g.value(v);
    g.constant(v).is_some() && !g.is_graph_output(v) && val.uses().iter().all(|u| u.node() == node)
}

/// Writes new data for a constant input of `node`: in place when only
/// `node` reads it, else as a fresh initializer wired into `slot`.
pub fn set_constant_input(
    g: &mut Graph,
    node: NodeId,
    slot: usize,
    name_hint: &str,
    dtype: DType,
    dims: &[i64],
    data: &[f64],
) {
    set_constant_tensor(
        g,
        node,
        slot,
        name_hint,
        Tensor::from_f64_as(name_hint, dtype, dims, data),
    );
}

/// [`set_constant_input`] with the tensor already made (its name is set
/// here).
pub fn set_constant_tensor(
    g: &mut Graph,
    node: NodeId,
    slot: usize,
    name_hint: &str,
    mut t: Tensor,
) {
    match g.node(node).input(slot) {
        Some(v) if owned_initializer(g, v, node) => {
            let name = g.value(v).name().to_string();
            t.set_name(&name);
            g.set_initializer(v, t);
        }
        _ => {
            t.set_name(name_hint);
            let v = g.add_initializer(name_hint, t);
            g.set_input(node, slot, Some(v));
        }
    }
}

/// Makes every reader of `node`'s first output read `replacement`, then
/// removes `node` (it must have no other live outputs).
pub fn bypass(g: &mut Graph, node: NodeId, replacement: ValueId) {
    let out = g.node(node).output(0).expect("an output");
    g.replace_all_uses(out, replacement);
    let live: Vec<ValueId> = g.node(node).outputs().iter().flatten().copied().collect();
    if live
        .iter()
        .all(|&o| g.value(o).uses().is_empty() && !g.is_graph_output(o))
    {
        g.remove_node(node);
    }
}

/// Why folding into `node`'s weight (input 1) would make the model heavier:
/// the weight is a constant other nodes read too, so the folded weight is
/// a second copy. `None` when `node` owns it (or it is not a constant).
pub fn shared_weight(g: &Graph, node: NodeId) -> Option<String> {
    let w = g.node(node).input(1)?;
    g.constant(w)?;
    (!owned_initializer(g, w, node)).then(|| {
        format!(
            "the weight '{}' is shared with another node: folding would store a second copy (without --target nothing gets heavier)",
            g.value(w).name()
        )
    })
}

/// Calls `merge` on every Add, Sub and Sum node, last in topological order
/// first: the top of a nested sum is seen before its inner sums, which are
/// tried on their own only if the top is not merged. Nodes removed by an
/// earlier merge are skipped; a cancelled run stops.
pub fn for_each_sum_last_first(
    g: &mut Graph,
    cx: &mut PassContext,
    mut merge: impl FnMut(&mut Graph, NodeId, &mut PassContext),
) -> Result<(), PassError> {
    let order = g.topo_order()?;
    for &id in order.iter().rev() {
        if !cx.may_rewrite() {
            break;
        }
        if g.try_node(id).is_none() {
            continue;
        }
        if matches!(g.node(id).op(), Op::Add(_) | Op::Sub(_) | Op::Sum) {
            merge(g, id, cx);
        }
    }
    Ok(())
}

/// Sets a node's bias (input 2) to the folded values, named
/// `{base}.bias_folded` as every fold names the bias it computes.
pub fn set_folded_bias(
    g: &mut Graph,
    node: NodeId,
    base: &str,
    dtype: DType,
    dims: &[i64],
    bias: &[f64],
) {
    set_constant_input(
        g,
        node,
        2,
        &format!("{base}.bias_folded"),
        dtype,
        dims,
        bias,
    );
}
