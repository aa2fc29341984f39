//! What a model costs to run whatever the hardware: executed MACs, weight
//! bytes and peak activation bytes — and the rule built on them, "without a
//! target, nothing gets heavier".
//!
//! A rewrite can be exact and still add work: SqueezeNet's fire module
//! combined into one conv turns its 1×1 expand into a 3×3 (+48% executed
//! MACs, +40% weights), a depthwise 3×3 merged with a dense 1×1 becomes a
//! dense 3×3, `x + BN(x)` merged becomes a conv where there was none.
//! Whether that pays is a question for a target's cost model. So the passes
//! of the default pipeline that may grow a model put each rewrite's
//! [`Growth`] to [`PassContext::admit`]:
//!
//! * not heavier (executed MACs and weight bytes both at most what the
//!   rewrite replaces): applied, with or without a target;
//! * heavier, no target: not applied; the skip gives both figures;
//! * heavier, with a target: proposed to the cost model
//!   ([`PassContext::propose`]) with the target's
//!   [`heavier_margin`](npuopt_targets::schema::CostRules::heavier_margin):
//!   applied only when the estimate falls by more than that fraction (an
//!   estimate 0.2% lower is inside the model's own error, and no reason to
//!   accept 7.8× the MACs). The decision carries the growth and the margin.
//!
//! The rewrites that call it replace a region by one conv whose output has
//! the shape of the region's output, and drop intermediate values: they
//! never raise the peak activation bytes, so the check is on MACs and
//! weights. [`Footprint::of`] measures all three on a whole graph (the test
//! that the default pipeline never adds work uses it).

use npuopt_ir::macs::node_macs;
use npuopt_ir::{Graph, NodeId, ValueId};

use crate::change::Change;
use crate::gate::{Outcome, Proposal};
use crate::pass::PassContext;

/// Whole-graph figures that do not depend on a target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// MACs as executed (zeros in a weight count): Conv, ConvTranspose,
    /// Gemm, MatMul; nodes with unknown shapes count 0.
    pub executed_macs: u64,
    /// Bytes of every constant read: initializers and Constant nodes.
    pub weight_bytes: u64,
    /// The most bytes of activations alive at once when the nodes run in
    /// the graph's topological order (graph inputs live from the start,
    /// outputs to the end; a value of unknown size counts 0).
    pub peak_activation_bytes: u64,
}

impl Footprint {
    pub fn of(g: &Graph) -> Footprint {
        let executed_macs = g
            .node_ids()
            .filter_map(|id| node_macs(g, id))
            .fold(0u64, u64::saturating_add);
        // Read initializers, and the values of Constant nodes (the same
        // thing in another form: folding one into the other is no growth).
        let read = |v: ValueId| !g.value(v).uses().is_empty() || g.is_graph_output(v);
        let initializers: u64 = g
            .initializers()
            .filter(|&v| read(v))
            .filter_map(|v| g.value(v).initializer())
            .map(|t| t.byte_size())
            .sum();
        let constant_nodes: u64 = g
            .node_ids()
            .filter_map(|n| match g.node(n).op() {
                npuopt_ir::Op::Constant(c) => {
                    let out = g.node(n).output(0)?;
                    read(out).then(|| c.tensor())?
                }
                _ => None,
            })
            .map(|t| npuopt_ir::Tensor::from_proto(t).byte_size())
            .sum();
        let weight_bytes = initializers + constant_nodes;
        Footprint {
            executed_macs,
            weight_bytes,
            peak_activation_bytes: peak_activation_bytes(g),
        }
    }
}

/// Bytes of a non-constant value of known shape; 0 otherwise.
fn activation_bytes(g: &Graph, v: ValueId) -> u64 {
    if g.constant(v).is_some() {
        return 0;
    }
    let Some(t) = g.ty(v) else { return 0 };
    let Some(dims) = t.concrete() else { return 0 };
    let n = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(u64::try_from(d).ok()?));
    n.and_then(|n| t.dtype.raw_len(n)).unwrap_or(0)
}

/// See [`Footprint::peak_activation_bytes`].
pub fn peak_activation_bytes(g: &Graph) -> u64 {
    let Ok(order) = g.topo_order() else { return 0 };
    let pos: std::collections::HashMap<NodeId, usize> =
        order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    // Values a subgraph reads from this scope live until its node runs.
    let mut captured: std::collections::HashMap<ValueId, usize> = Default::default();
    for (i, &n) in order.iter().enumerate() {
        for &v in g.node(n).captures() {
            let e = captured.entry(v).or_insert(i);
            *e = (*e).max(i);
        }
    }
    // The step after which each value dies (usize::MAX: never). An
    // Identity's output is its input under another name (no runtime
    // copies it): it holds no bytes of its own and keeps its input alive.
    fn last_use(
        g: &Graph,
        v: ValueId,
        pos: &std::collections::HashMap<NodeId, usize>,
        captured: &std::collections::HashMap<ValueId, usize>,
        depth: usize,
    ) -> usize {
        if g.is_graph_output(v) || depth > 64 {
            return usize::MAX;
        }
        g.value(v)
            .uses()
            .iter()
            .map(|u| {
                let at = pos.get(&u.node()).copied().unwrap_or(0);
                let n = g.node(u.node());
                match (n.op(), n.output(0)) {
                    (npuopt_ir::Op::Identity, Some(o)) => {
                        at.max(last_use(g, o, pos, captured, depth + 1))
                    }
                    _ => at,
                }
            })
            .chain(captured.get(&v).copied())
            .max()
            .unwrap_or(0)
    }
    let last_use = |v: ValueId| last_use(g, v, &pos, &captured, 0);
    let activation_bytes = |g: &Graph, v: ValueId| {
        let identity = g
            .producer(v)
            .is_some_and(|p| matches!(g.node(p).op(), npuopt_ir::Op::Identity));
        if identity {
            0
        } else {
            activation_bytes(g, v)
        }
    };
    let mut live: u64 = g
        .inputs()
        .filter(|&v| g.constant(v).is_none())
        .map(|v| activation_bytes(g, v))
        .sum();
    let mut dies: Vec<Vec<u64>> = vec![Vec::new(); order.len()];
    for v in g.inputs() {
        let b = activation_bytes(g, v);
        let at = last_use(v);
        if b > 0 && at < order.len() {
            dies[at].push(b);
        }
    }
    let mut peak = live;
    for (i, &n) in order.iter().enumerate() {
        for v in g.node(n).outputs().iter().flatten() {
            let b = activation_bytes(g, *v);
            live += b;
            let at = last_use(*v).max(i);
            if b > 0 && at < order.len() {
                dies[at].push(b);
            }
        }
        peak = peak.max(live);
        for b in std::mem::take(&mut dies[i]) {
            live -= b;
        }
    }
    peak
}

/// Executed MACs and weight bytes of what a rewrite replaces and of what it
/// puts in its place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Growth {
    pub macs_before: u64,
    pub macs_after: u64,
    pub weight_bytes_before: u64,
    pub weight_bytes_after: u64,
}

impl Growth {
    /// True when the rewrite raises executed MACs or weight bytes.
    pub fn heavier(&self) -> bool {
        self.macs_after > self.macs_before || self.weight_bytes_after > self.weight_bytes_before
    }

    /// `executed MACs 1.2 M → 1.8 M (+48.0%), weights 10.0 kB → 14.0 kB (+40.0%)`.
    pub fn text(&self) -> String {
        format!(
            "executed MACs {} → {} ({}), weights {} → {} ({})",
            count_text(self.macs_before),
            count_text(self.macs_after),
            pct_text(self.macs_before, self.macs_after),
            bytes_text(self.weight_bytes_before),
            bytes_text(self.weight_bytes_after),
            pct_text(self.weight_bytes_before, self.weight_bytes_after),
        )
    }
}

fn pct_text(before: u64, after: u64) -> String {
    if before == 0 {
        return if after == 0 {
            "±0%".into()
        } else {
            "new".into()
        };
    }
    let (sign, pct) = signed_change(before, after);
    format!("{sign}{pct:.1}%")
}

/// The direction of `before → after` (`+`, `−` or `±`) and the size of the
/// change in percent of `before` (0 when `before` is 0).
pub fn signed_change(before: u64, after: u64) -> (&'static str, f64) {
    let pct = if before == 0 {
        0.0
    } else {
        (after as f64 - before as f64).abs() / before as f64 * 100.0
    };
    let sign = match after.cmp(&before) {
        std::cmp::Ordering::Greater => "+",
        std::cmp::Ordering::Less => "−",
        std::cmp::Ordering::Equal => "±",
    };
    (sign, pct)
}

fn count_text(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.2} G", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.2} M", f / 1e6)
    } else if f >= 1e4 {
        format!("{:.1} k", f / 1e3)
    } else {
        n.to_string()
    }
}

fn bytes_text(n: u64) -> String {
    let f = n as f64;
    if f >= 1e6 {
        format!("{:.2} MB", f / 1e6)
    } else if f >= 1e4 {
        format!("{:.1} kB", f / 1e3)
    } else {
        format!("{n} B")
    }
}

/// The executed MACs of `nodes` (`None` when a shape is unknown).
pub fn region_macs(g: &Graph, nodes: &[NodeId]) -> Option<u64> {
    nodes
        .iter()
        .try_fold(0u64, |a, &n| a.checked_add(node_macs(g, n)?))
}

/// The bytes of the constants `nodes` read that nothing else reads: what
/// removing them frees. A weight shared with a node outside stays.
pub fn region_weight_bytes(g: &Graph, nodes: &[NodeId]) -> u64 {
    let mut seen = Vec::new();
    let mut total = 0;
    for &n in nodes {
        for v in g.node(n).inputs().iter().flatten() {
            if seen.contains(v) {
                continue;
            }
            seen.push(*v);
            let Some(t) = g.constant(*v) else { continue };
            let inside = g.value(*v).uses().iter().all(|u| nodes.contains(&u.node()));
            if inside && !g.is_graph_output(*v) {
                total += t.byte_size();
            }
        }
    }
    total
}

/// The growth of replacing the nodes `region` by the one conv `new`, whose
/// output takes the place of `out` (a value of the region's, of the same
/// shape). When a shape is unknown, MACs are compared per output position
/// (every branch of the rewrites that call this has the output's
/// positions; a conv before a pool is counted at the pool's, which only
/// makes the region look cheaper).
pub fn conv_growth(
    g: &Graph,
    region: &[NodeId],
    out: ValueId,
    new: &crate::conv_algebra::NewConv,
) -> Growth {
    let bias_len = if new.has_bias() {
        new.bias.len() as u64
    } else {
        0
    };
    conv_growth_of(
        g,
        region,
        out,
        new.weight.numel().unwrap_or(0),
        new.cout,
        bias_len,
        new.dtype,
    )
}

/// [`conv_growth`] from the new conv's figures alone — `numel` weights,
/// `cout` output channels, `bias_len` stored bias values (0 when none is
/// stored), in `dtype` — so a pass can weigh a rewrite before computing
/// its weights.
pub fn conv_growth_of(
    g: &Graph,
    region: &[NodeId],
    out: ValueId,
    numel: u64,
    cout: usize,
    bias_len: u64,
    dtype: npuopt_ir::DType,
) -> Growth {
    let cout = cout.max(1) as u64;
    let positions = g.ty(out).and_then(|t| t.concrete()).and_then(|d| {
        d.iter()
            .try_fold(1u64, |a, &x| a.checked_mul(u64::try_from(x).ok()?))
            .map(|n| n / cout)
    });
    let (macs_before, macs_after) = match (positions, region_macs(g, region)) {
        (Some(p), Some(m)) => (m, p.saturating_mul(numel)),
        _ => {
            let per_position: u64 = region
                .iter()
                .filter(|&&n| {
                    matches!(
                        g.node(n).op(),
                        npuopt_ir::Op::Conv(_) | npuopt_ir::Op::Gemm(_) | npuopt_ir::Op::MatMul
                    )
                })
                .filter_map(|&n| g.node(n).input(1).and_then(|w| g.constant(w)))
                .filter_map(|t| t.numel())
                .sum();
            (per_position, numel)
        }
    };
    Growth {
        macs_before,
        macs_after,
        weight_bytes_before: region_weight_bytes(g, region),
        weight_bytes_after: dtype.raw_len(numel + bias_len).unwrap_or(u64::MAX),
    }
}

impl PassContext {
    /// Applies a rewrite of a pass in the default pipeline unless it makes
    /// the model heavier (see the module doc): `apply` rewrites the graph
    /// in place (or a clone, when a target's cost model decides) and
    /// returns the change.
    pub fn admit<F>(&mut self, g: &mut Graph, p: Proposal, growth: Growth, apply: F) -> Outcome
    where
        F: FnOnce(&mut Graph) -> Result<Change, String>,
    {
        if !self.may_rewrite() {
            return Outcome::NotRun;
        }
        if !growth.heavier() {
            return match apply(g) {
                Ok(c) => {
                    self.record(c);
                    Outcome::Applied
                }
                Err(why) => {
                    self.skip(p.pass, p.rule, p.node, why);
                    Outcome::Refused
                }
            };
        }
        let Some(margin) = self.target().map(|t| t.cost.heavier_margin) else {
            self.skip(
                p.pass,
                p.rule,
                p.node,
                format!(
                    "'{}' is not rewritten: it would raise {} (without --target nothing gets heavier; a target's cost model may accept it)",
                    p.node,
                    growth.text()
                ),
            );
            return Outcome::Rejected;
        };
        let text = growth.text();
        self.propose_heavier(g, p, margin, &text, apply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_text_and_heavier() {
        let g = Growth {
            macs_before: 1_000_000,
            macs_after: 1_480_000,
            weight_bytes_before: 10_000,
            weight_bytes_after: 10_000,
        };
        assert!(g.heavier());
        assert_eq!(
            g.text(),
            "executed MACs 1.00 M → 1.48 M (+48.0%), weights 10.0 kB → 10.0 kB (±0.0%)"
        );
        let lighter = Growth {
            macs_after: 900_000,
            weight_bytes_after: 9_000,
            ..g
        };
        assert!(!lighter.heavier());
    }
}
