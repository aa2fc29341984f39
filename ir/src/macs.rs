//! Multiply-accumulate counts of the compute-heavy ops, from inferred shapes.

use crate::graph::Graph;
use crate::ids::NodeId;
use crate::op::Op;

/// Binds a symbolic dim's name to a value (`None`: unbound).
pub type Bind<'a> = &'a dyn Fn(&str) -> Option<i64>;

/// MACs of one node, when its shapes are known: Conv, ConvTranspose, Gemm
/// and MatMul. Other ops count as 0 (their cost is memory, not MACs).
pub fn node_macs(graph: &Graph, id: NodeId) -> Option<u64> {
    node_macs_with(graph, id, &|_| None)
}

/// [`node_macs`] with symbolic dims bound by `bind`.
pub fn node_macs_with(graph: &Graph, id: NodeId, bind: Bind) -> Option<u64> {
    let n = graph.node(id);
    let shape =
        |v: Option<crate::ids::ValueId>| -> Option<Vec<i64>> { graph.ty(v?)?.concrete_with(bind) };
    let prod = |s: &[i64]| {
        s.iter()
            .try_fold(1u64, |a, &d| a.checked_mul(u64::try_from(d).ok()?))
    };
    match n.op() {
        Op::Conv(_) => {
            // Every output element takes (Cin/G)·k… MACs: the weight's
            // per-filter size.
            let out = shape(n.output(0))?;
            let w = shape(n.input(1))?;
            prod(&out)?.checked_mul(prod(&w[1..])?)
        }
        Op::ConvTranspose(_) => {
            // Every input element scatters into Cout/G · k… outputs.
            let x = shape(n.input(0))?;
            let w = shape(n.input(1))?;
            prod(&x)?.checked_mul(prod(&w[1..])?)
        }
        Op::Gemm(g) => {
            let a = shape(n.input(0))?;
            let out = shape(n.output(0))?;
            let k = if g.trans_a { a.first()? } else { a.get(1)? };
            prod(&out)?.checked_mul(u64::try_from(*k).ok()?)
        }
        Op::MatMul => {
            let a = shape(n.input(0))?;
            let out = shape(n.output(0))?;
            prod(&out)?.checked_mul(u64::try_from(*a.last()?).ok()?)
        }
        _ => Some(0),
    }
}

/// Total MACs of the graph; nodes whose shapes are unknown count as 0 and
/// are reported in the second field.
pub fn total_macs(graph: &Graph) -> (u64, usize) {
    total_with(graph, &|_| None, node_macs_with)
}

/// Total useful MACs (see [`useful_node_macs`]), and the unknown count.
pub fn total_useful_macs(graph: &Graph) -> (u64, usize) {
    total_with(graph, &|_| None, useful_node_macs_with)
}

/// [`total_macs`] and [`total_useful_macs`] with symbols bound by `bind`.
pub fn totals_with(graph: &Graph, bind: Bind) -> (u64, u64, usize) {
    count_weight_nonzeros(graph);
    let (dense, unknown) = total_with(graph, bind, node_macs_with);
    let (useful, _) = total_with(graph, bind, useful_node_macs_with);
    (dense, useful, unknown)
}

fn total_with(
    graph: &Graph,
    bind: Bind,
    f: fn(&Graph, NodeId, Bind) -> Option<u64>,
) -> (u64, usize) {
    let mut total = 0u64;
    let mut unknown = 0;
    for id in graph.node_ids() {
        match f(graph, id, bind) {
            Some(m) => total = total.saturating_add(m),
            None => unknown += 1,
        }
    }
    (total, unknown)
}

/// The constant weight whose zeros [`useful_node_macs`] discounts.
fn useful_weight(graph: &Graph, id: NodeId) -> Option<&crate::tensor::Tensor> {
    let n = graph.node(id);
    let weight_slot = match n.op() {
        Op::Conv(_) | Op::ConvTranspose(_) | Op::Gemm(_) | Op::MatMul => 1,
        _ => return None,
    };
    n.input(weight_slot).and_then(|v| graph.constant(v))
}

/// Counts the non-zero elements of every weight [`useful_node_macs`] reads
/// (each tensor once, cached in it) on up to four threads, the weights
/// split between them by size. The count is the same whichever thread
/// makes it. A whole-model estimate reads every weight of the model once:
/// on RT-DETR-l (107 MiB of weights) this was a third of `inspect
/// --target`.
pub fn count_weight_nonzeros(graph: &Graph) {
    let mut seen = std::collections::HashSet::new();
    let mut todo: Vec<&crate::tensor::Tensor> = graph
        .node_ids()
        .filter_map(|id| useful_weight(graph, id))
        .filter(|t| !t.nonzero_is_known() && seen.insert(*t as *const _))
        .collect();
    let bytes = |t: &crate::tensor::Tensor| t.proto().raw_data.as_ref().map_or(0, |r| r.len());
    let total: usize = todo.iter().map(|t| bytes(t)).sum();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(total / (4 << 20) + 1);
    if threads < 2 {
        for t in todo {
            let _ = t.count_nonzero();
        }
        return;
    }
    // Largest first, each to the least loaded share.
    todo.sort_by_key(|t| std::cmp::Reverse(bytes(t)));
    let mut shares: Vec<(usize, Vec<&crate::tensor::Tensor>)> = vec![(0, Vec::new()); threads];
    for t in todo {
        let least = shares.iter_mut().min_by_key(|s| s.0).expect("a share");
        least.0 += bytes(t);
        least.1.push(t);
    }
    std::thread::scope(|scope| {
        let mut shares = shares.into_iter();
        let own = shares.next().expect("a share");
        for (_, share) in shares {
            scope.spawn(move || {
                for t in share {
                    let _ = t.count_nonzero();
                }
            });
        }
        for t in own.1 {
            let _ = t.count_nonzero();
        }
    });
}

/// Useful MACs of one node: like [`node_macs`], but multiplications by a
/// weight that is exactly zero are not counted. Zeros a rewrite adds — the
/// off-diagonal blocks of a depthwise conv made a group conv, the filters of
/// padded channels — are never useful work. Without a constant weight, all
/// MACs count.
pub fn useful_node_macs(graph: &Graph, id: NodeId) -> Option<u64> {
    useful_node_macs_with(graph, id, &|_| None)
}

/// [`useful_node_macs`] with symbolic dims bound by `bind`.
pub fn useful_node_macs_with(graph: &Graph, id: NodeId, bind: Bind) -> Option<u64> {
    let dense = node_macs_with(graph, id, bind)?;
    let Some(w) = useful_weight(graph, id) else {
        return Some(dense);
    };
    let Some(total) = w.numel().filter(|&t| t > 0) else {
        return Some(dense);
    };
    let Ok(nonzero) = w.count_nonzero() else {
        return Some(dense);
    };
    // Every weight element takes part in the same number of MACs, so the
    // useful share is the non-zero share (exact: dense is a multiple of
    // the weight count).
    Some(dense / total * nonzero + (dense % total) * nonzero / total)
}
