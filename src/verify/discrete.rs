//! Discrete outputs: those computed from a decision (`TopK`, `ArgMax`,
//! `ArgMin`, `NonZero`, `NonMaxSuppression`, `Unique`).
//!
//! Such a decision is not a continuous function of its input: two scores
//! within float noise of each other may come out in either order, and the
//! rows an output gathers with them swap. Comparing those outputs element
//! by element fails (or passes) by chance. So verification also reads the
//! tensor each decision is made on — its *feed*, an intermediate value that
//! keeps its name in both models — and compares it numerically. A discrete
//! output that does not match element by element passes when
//!
//! 1. every feed passes the noise verdict, and
//! 2. its rows (last-axis vectors of a rank ≥ 3 output, elements
//!    otherwise) match as a multiset within the output's tolerance, except
//!    for at most as many rows as the reference's feed has near-ties at
//!    the decision boundary (for `TopK`, scores outside the top k within
//!    twice the feed's tolerance of the k-th; for `ArgMax`/`ArgMin`,
//!    reductions whose best two are that close).

use std::collections::HashSet;

use tract_onnx::pb;

const DISCRETE_OPS: [&str; 6] = [
    "TopK",
    "ArgMax",
    "ArgMin",
    "NonZero",
    "NonMaxSuppression",
    "Unique",
];

/// One decision node of the reference.
#[derive(Clone, Debug)]
pub(crate) struct DecisionNode {
    pub(crate) op: String,
    pub(crate) name: String,
    /// The tensor the decision is made on.
    pub(crate) feed: String,
    /// `TopK`: its values output, whose size along `axis` is k.
    pub(crate) values: Option<String>,
    pub(crate) axis: i64,
    /// `TopK largest=0` and `ArgMin` select the smallest.
    pub(crate) smallest: bool,
}

/// The decisions of a model and the outputs computed from them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Decisions {
    pub(crate) nodes: Vec<DecisionNode>,
    /// Model outputs computed (transitively) from a decision.
    pub(crate) downstream: HashSet<String>,
    /// Intermediate values added as outputs to both models, in order.
    pub(crate) extra: Vec<String>,
}

fn int_attr(n: &pb::NodeProto, name: &str, default: i64) -> i64 {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map_or(default, |a| a.i)
}

/// Finds the reference's decisions whose feeds the candidate also
/// computes, and adds those feeds (and `TopK` values) as outputs of both
/// models.
pub(crate) fn analyse(reference: &mut pb::ModelProto, candidate: &mut pb::ModelProto) -> Decisions {
    let (Some(rg), Some(cg)) = (reference.graph.as_ref(), candidate.graph.as_ref()) else {
        return Decisions::default();
    };
    let known = |g: &pb::GraphProto, name: &str| {
        g.node.iter().any(|n| n.output.iter().any(|o| o == name))
            || g.input.iter().any(|i| i.name == name)
    };
    let mut d = Decisions::default();
    let mut tainted: HashSet<&str> = HashSet::new();
    for n in &rg.node {
        let is_decision = n.domain.is_empty() && DISCRETE_OPS.contains(&n.op_type.as_str());
        if is_decision || n.input.iter().any(|i| tainted.contains(i.as_str())) {
            tainted.extend(n.output.iter().map(|s| s.as_str()));
        }
        if !is_decision {
            continue;
        }
        let Some(feed) = n.input.first().filter(|f| !f.is_empty()) else {
            continue;
        };
        if !known(cg, feed) {
            continue;
        }
        let values = (n.op_type == "TopK")
            .then(|| n.output.first().cloned())
            .flatten()
            .filter(|v| !v.is_empty() && known(cg, v));
        d.nodes.push(DecisionNode {
            op: n.op_type.clone(),
            name: n.name.clone(),
            feed: feed.clone(),
            values,
            axis: int_attr(n, "axis", if n.op_type == "TopK" { -1 } else { 0 }),
            smallest: (n.op_type == "TopK" && int_attr(n, "largest", 1) == 0)
                || n.op_type == "ArgMin",
        });
    }
    d.downstream = rg
        .output
        .iter()
        .filter(|o| tainted.contains(o.name.as_str()))
        .map(|o| o.name.clone())
        .collect();
    if d.downstream.is_empty() {
        d.nodes.clear();
        return d;
    }
    let outputs: HashSet<&str> = rg.output.iter().map(|o| o.name.as_str()).collect();
    for n in &d.nodes {
        for name in std::iter::once(&n.feed).chain(&n.values) {
            if !outputs.contains(name.as_str()) && !d.extra.contains(name) {
                d.extra.push(name.clone());
            }
        }
    }
    for g in [reference.graph.as_mut(), candidate.graph.as_mut()]
        .into_iter()
        .flatten()
    {
        for name in &d.extra {
            g.output.push(pb::ValueInfoProto {
                name: name.clone(),
                ..Default::default()
            });
        }
    }
    d
}

/// The slices of `shape` along `axis`: (offset of the first element,
/// stride, length) of each.
fn lanes(shape: &[usize], axis: usize) -> Vec<(usize, usize, usize)> {
    let len = shape[axis];
    let stride: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let mut out = Vec::with_capacity(outer * stride);
    for o in 0..outer {
        for i in 0..stride {
            out.push((o * len * stride + i, stride, len));
        }
    }
    out
}

/// How many of the reference's decisions could go either way within `tol`
/// (see the module docs). `k` is `TopK`'s k.
pub(crate) fn near_ties(
    node: &DecisionNode,
    feed: &[f64],
    shape: &[usize],
    k: Option<usize>,
    tol: f64,
) -> usize {
    if shape.is_empty() {
        return 0;
    }
    let rank = shape.len() as i64;
    let axis = if node.axis < 0 {
        node.axis + rank
    } else {
        node.axis
    };
    if !(0..rank).contains(&axis) {
        return 0;
    }
    let sign = if node.smallest { -1.0 } else { 1.0 };
    let mut count = 0;
    for (start, stride, len) in lanes(shape, axis as usize) {
        let mut v: Vec<f64> = (0..len).map(|i| sign * feed[start + i * stride]).collect();
        v.sort_by(|a, b| b.total_cmp(a));
        match node.op.as_str() {
            "TopK" => {
                let Some(k) = k.filter(|&k| k >= 1 && k <= len) else {
                    continue;
                };
                let kth = v[k - 1];
                count += v[k..].iter().filter(|&&x| kth - x <= 2.0 * tol).count();
            }
            "ArgMax" | "ArgMin" if len >= 2 && v[0] - v[1] <= 2.0 * tol => count += 1,
            _ => {}
        }
    }
    count
}

/// How many rows of `reference` find no row of `candidate` within `tol`
/// (each matched once). Rows are last-axis vectors for rank ≥ 3, elements
/// otherwise. `None` when there are too many rows to match.
pub(crate) fn unmatched_rows(
    reference: &[f64],
    candidate: &[f64],
    shape: &[usize],
    tol: f64,
) -> Option<usize> {
    let width = if shape.len() >= 3 {
        *shape.last().unwrap_or(&1)
    } else {
        1
    };
    if width == 0 || reference.len() != candidate.len() {
        return Some(0);
    }
    let rows = reference.len() / width;
    if rows > 20_000 {
        return None;
    }
    let close = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol || (x.is_nan() && y.is_nan()))
    };
    let mut used = vec![false; rows];
    let mut unmatched = 0;
    for r in reference.chunks_exact(width) {
        let found = candidate
            .chunks_exact(width)
            .enumerate()
            .position(|(j, c)| !used[j] && close(r, c));
        match found {
            Some(j) => used[j] = true,
            None => unmatched += 1,
        }
    }
    Some(unmatched)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topk(k_axis: i64) -> DecisionNode {
        DecisionNode {
            op: "TopK".into(),
            name: "t".into(),
            feed: "s".into(),
            values: None,
            axis: k_axis,
            smallest: false,
        }
    }

    #[test]
    fn near_ties_count_scores_at_the_topk_boundary() {
        let feed = [0.9, 0.5, 0.5 - 1e-7, 0.1];
        assert_eq!(near_ties(&topk(-1), &feed, &[1, 4], Some(2), 1e-6), 1);
        assert_eq!(near_ties(&topk(-1), &feed, &[1, 4], Some(1), 1e-6), 0);
        assert_eq!(near_ties(&topk(-1), &feed, &[1, 4], Some(2), 1e-9), 0);
    }

    #[test]
    fn rows_match_as_a_multiset() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let swapped = [3.0, 4.0, 1.0, 2.0, 5.0, 6.0];
        assert_eq!(unmatched_rows(&a, &swapped, &[1, 3, 2], 0.0), Some(0));
        let moved = [3.0, 4.0, 1.0, 2.0, 5.0, 7.0];
        assert_eq!(unmatched_rows(&a, &moved, &[1, 3, 2], 0.0), Some(1));
        assert_eq!(unmatched_rows(&a, &moved, &[1, 3, 2], 1.0), Some(0));
    }
}
