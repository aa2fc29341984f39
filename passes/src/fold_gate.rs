//! The one gate of every fold that rewrites a linear op's weight
//! (`fold-batchnorm`'s BN and per-channel Mul/Add/Div/Sub folds,
//! `fold-batchnorm-across`).
//!
//! A weight the linear op owns is rewritten in place: the fold removes a
//! node and adds nothing, so it is applied. A weight other nodes read too
//! cannot change in place — the folded weight is a second copy, and the
//! model gets heavier. Without a target that fold is refused (nothing gets
//! heavier); with one, the cost model decides like for any heavier rewrite:
//! the estimate must fall by more than the target's margin.

use npuopt_ir::{Graph, NodeId};

use crate::change::Change;
use crate::footprint::{region_weight_bytes, Growth};
use crate::gate::{Outcome, Proposal};
use crate::pass::PassContext;
use crate::rewrite::shared_weight;

/// A fold of `removed` (the BN, Mul, …) into the weight of `weight_holder`.
pub struct Fold<'a> {
    pub pass: &'static str,
    pub rule: &'static str,
    /// The node the rule matched, for the report.
    pub node: &'a str,
    /// What a refusal says before its reason, e.g. `BN 'bn1' is not folded`.
    pub not_folded: &'a str,
    pub removed: NodeId,
    /// The node whose input 1 is the weight the fold rewrites.
    pub weight_holder: NodeId,
}

/// Applies the fold when it makes nothing heavier, else asks the target's
/// cost model (or refuses without a target). `apply` returns the change, or
/// the full reason it refused.
pub fn admit_fold<F>(g: &mut Graph, cx: &mut PassContext, f: Fold, apply: F) -> Outcome
where
    F: FnOnce(&mut Graph) -> Result<Change, String>,
{
    let Some(why) = shared_weight(g, f.weight_holder) else {
        return match apply(g) {
            Ok(change) => {
                cx.record(change);
                Outcome::Applied
            }
            Err(why) => {
                cx.skip(f.pass, f.rule, f.node, why);
                Outcome::Refused
            }
        };
    };
    if cx.target().is_none() {
        cx.skip(f.pass, f.rule, f.node, format!("{}: {why}", f.not_folded));
        return Outcome::Rejected;
    }
    let copy = g
        .node(f.weight_holder)
        .input(1)
        .and_then(|w| g.constant(w))
        .map_or(0, |t| t.byte_size());
    let growth = Growth {
        macs_before: 0,
        macs_after: 0,
        weight_bytes_before: region_weight_bytes(g, &[f.removed]),
        weight_bytes_after: copy,
    };
    let proposal = Proposal {
        pass: f.pass,
        rule: f.rule,
        node: f.node,
        adds_capacity: false,
        veto: None,
    };
    cx.admit(g, proposal, growth, apply)
}
