//! Which values a target's compiler knows before run time: initializers,
//! `Constant` nodes, `Shape` of a fully known shape, and whatever a
//! deterministic op computes from those alone. The compiler folds them
//! offline, so the nodes computing them cost nothing and their results are
//! weights, not activations.
//!
//! This makes the estimate of an export the estimate of its folded form
//! (`fold-constants`): a TorchScript export's `Transpose` of a Linear
//! weight, or a Gather from a constant attention-bias table, is folded
//! whether npuopt folds it or not.

use npuopt_ir::{Graph, NodeId, Op};

/// Ops whose result is not a function of their inputs.
const NONDETERMINISTIC: &[&str] = &[
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
];

/// `constant[v.index()]`: `v` is known before run time.
pub(crate) fn constant_values(g: &Graph, order: &[NodeId]) -> Vec<bool> {
    let len = g.value_ids().map(|v| v.index() + 1).max().unwrap_or(0);
    let mut c = vec![false; len];
    for v in g.value_ids() {
        if g.constant(v).is_some() {
            c[v.index()] = true;
        }
    }
    for &id in order {
        let n = g.node(id);
        let standard = n.domain().is_empty() || n.domain() == "ai.onnx";
        if !standard || n.has_subgraphs() || NONDETERMINISTIC.contains(&n.op_type()) {
            continue;
        }
        let mut inputs = n.inputs().iter().flatten().peekable();
        let known = match n.op() {
            Op::Constant(_) => true,
            _ if n.op_type() == "Shape" => n
                .input(0)
                .and_then(|v| g.ty(v))
                .is_some_and(|t| t.concrete().is_some()),
            _ => inputs.peek().is_some() && inputs.all(|v| c[v.index()]),
        };
        if known {
            for v in n.outputs().iter().flatten() {
                c[v.index()] = true;
            }
        }
    }
    c
}
