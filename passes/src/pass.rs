//! What a pass is, and the context it records its rewrites in.

use npuopt_ir::{Graph, IrError, Model, NodeId};

use crate::cancel::Cancel;
use crate::change::{Change, Skip};
use crate::gate::{Decision, Figures, GateOptions};

/// Calls `visit` on every node of `g`, in the topological order of the
/// graph as the walk starts, while the rewrite budget lasts — skipping the
/// nodes an earlier visit removed. The walk every rewriting pass makes.
pub fn for_each_live_node(
    g: &mut Graph,
    cx: &mut PassContext,
    mut visit: impl FnMut(&mut Graph, NodeId, &mut PassContext),
) -> Result<(), PassError> {
    for id in g.topo_order()? {
        if !cx.may_rewrite() {
            break;
        }
        if g.try_node(id).is_some() {
            visit(g, id, cx);
        }
    }
    Ok(())
}

/// A rewrite pass. `run` applies as many rewrites as it finds, asking
/// [`PassContext::may_rewrite`] before each one and recording each with
/// [`PassContext::record`]. A precondition that fails is not an error: the
/// rule simply does not fire.
pub trait Pass {
    /// Stable kebab-case name, as `--passes` takes it.
    fn name(&self) -> &'static str;
    /// One line for `npuopt passes`.
    fn description(&self) -> &'static str;
    fn run(&self, model: &mut Model, cx: &mut PassContext) -> Result<(), PassError>;
}

/// Why a pass could not complete. A model left half-rewritten is never
/// written: the caller discards it.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("{0}")]
    Ir(#[from] IrError),
    #[error("node '{node}': {message}")]
    Node { node: String, message: String },
}

/// Collects the changes of a run and enforces the rewrite budget. With a
/// target it also gates hardware-dependent rewrites through the cost model
/// ([`PassContext::propose`], see [`crate::gate`]).
#[derive(Debug, Default)]
pub struct PassContext {
    changes: Vec<Change>,
    skips: Vec<Skip>,
    /// Rewrites still allowed (`--max-rewrites`); `None` is unlimited.
    budget: Option<usize>,
    /// Target, intent and forced passes of the run.
    pub(crate) gate: GateOptions,
    /// Cost-gated decisions, applied or rejected.
    pub(crate) decisions: Vec<Decision>,
    /// The whole-model estimate and the graph generation it is of.
    pub(crate) cached: Option<(u64, Figures)>,
    /// The run's cancellation flag: once it fires, no more rewrites.
    pub(crate) cancel: Cancel,
    /// Leave content hashes out of change notes (see
    /// [`crate::PipelineOptions::skip_note_hashes`]).
    pub skip_note_hashes: bool,
}

impl PassContext {
    pub fn new(max_rewrites: Option<usize>) -> PassContext {
        PassContext {
            budget: max_rewrites,
            ..Default::default()
        }
    }

    /// A context whose hardware-dependent rewrites are gated by `gate`'s
    /// target (none: they do nothing).
    pub fn with_gate(max_rewrites: Option<usize>, gate: GateOptions) -> PassContext {
        PassContext {
            budget: max_rewrites,
            gate,
            ..Default::default()
        }
    }

    /// False once the rewrite budget is spent or the run was cancelled:
    /// the pass must stop rewriting.
    pub fn may_rewrite(&self) -> bool {
        self.budget != Some(0) && !self.cancel.is_cancelled()
    }

    /// Records one applied rewrite.
    pub fn record(&mut self, change: Change) {
        if let Some(b) = &mut self.budget {
            *b = b.saturating_sub(1);
        }
        self.changes.push(change);
    }

    /// Records that a rule matched `node` but must not fire, and why.
    pub fn skip(&mut self, pass: &'static str, rule: &'static str, node: &str, reason: String) {
        self.skips.push(Skip {
            pass,
            rule,
            node: node.to_string(),
            reason,
        });
    }

    pub fn skips(&self) -> &[Skip] {
        &self.skips
    }

    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    pub fn applied(&self) -> usize {
        self.changes.len()
    }

    pub fn into_parts(self) -> (Vec<Change>, Vec<Skip>) {
        (self.changes, self.skips)
    }

    /// Changes, skips and cost-gated decisions.
    pub fn into_all_parts(self) -> (Vec<Change>, Vec<Skip>, Vec<Decision>) {
        (self.changes, self.skips, self.decisions)
    }

    pub fn budget_spent(&self) -> bool {
        self.budget == Some(0)
    }
}
