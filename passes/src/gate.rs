//! Cost gating: hardware-dependent rewrites are *proposed*, and the
//! target's cost model decides.
//!
//! A pass whose value depends on the hardware (depthwise→group, concat→add,
//! channel padding, a MAC-growing conv merge) calls [`PassContext::propose`]
//! with a closure that applies the rewrite. The context
//!
//! 1. estimates the whole model's cycles on the target (cached between
//!    proposals while the graph is unchanged);
//! 2. applies the rewrite to a **clone** of the graph, re-infers its types
//!    and estimates again;
//! 3. keeps the clone when the rule of the run says so (below), and records
//!    the decision either way: an applied rewrite is a [`Change`] whose note
//!    carries both estimates, a rejected one a skip with both estimates and
//!    the reason — and both are a [`Decision`] for the report.
//!
//! The rule: `--force-pass NAME` always applies; a proposal with a `veto`
//! (e.g. "group conv is lowered to split + concat on ethos-u55-256") is
//! rejected; a rewrite whose region (the nodes it matched, removed or
//! added) holds a layer the cost model cannot size is rejected with that
//! reason, as is one that leaves more layers unsized; otherwise
//! with [`Intent::Deploy`] the estimate must fall (a tie keeps the model as
//! it is: no gain is no reason to change it), and with [`Intent::Capacity`]
//! a proposal that adds trainable capacity (`adds_capacity`) is applied when
//! the model's estimate stays within the capacity budget
//! ([`GateOptions::capacity_budget`]: the input as a deployment flow would
//! run it) — AXSpine's "more capacity at the same latency", spent first
//! come first served in graph order; other proposals use the deploy rule.
//!
//! Known cost: one graph clone, one type inference and one whole-graph
//! estimate per proposal — simple, and exact with respect to the cost
//! model (fused activations, in-place concats and the like are seen as the
//! target sees them). Both are linear in the graph, so a pass proposing at
//! every conv is quadratic in the worst case; fine for models of a few
//! thousand nodes.
//!
//! Without a target nothing is proposed and nothing is recorded: the
//! hardware passes are no-ops (they are not in the default pipeline
//! without `--target`).

use std::sync::Arc;

use npuopt_ir::Graph;
use npuopt_targets::{cost, Target};

use crate::change::Change;
use crate::pass::PassContext;

/// What the optimized model is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Intent {
    /// Minimise the estimated latency (the default).
    #[default]
    Deploy,
    /// AXSpine's move: apply exact rewrites that add trainable capacity
    /// (depthwise→group, channel padding) while the model's estimated
    /// latency stays within the input's. The result is a model to
    /// fine-tune, not to deploy.
    Capacity,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Deploy => "deploy",
            Intent::Capacity => "capacity",
        }
    }

    pub fn parse(s: &str) -> Option<Intent> {
        match s {
            "deploy" => Some(Intent::Deploy),
            "capacity" => Some(Intent::Capacity),
            _ => None,
        }
    }
}

impl std::fmt::Display for Intent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What gates hardware-dependent rewrites in a run.
#[derive(Clone, Debug, Default)]
pub struct GateOptions {
    /// The target whose cost model decides; `None`: hardware passes do
    /// nothing.
    pub target: Option<Arc<Target>>,
    pub intent: Intent,
    /// Passes applied whatever the estimate (`--force-pass`).
    pub force: Vec<String>,
    /// [`Intent::Capacity`]'s latency budget in estimated cycles: a
    /// capacity-adding rewrite is applied while the model's estimate stays
    /// within it. `npuopt::optimize` sets it to the input's estimate after
    /// the target-independent default passes (BN folding, branch merging),
    /// capped at the input's own. `None`: the pipeline sets it from the
    /// model it starts with.
    pub capacity_budget: Option<u64>,
}

/// A rewrite put to the cost model.
#[derive(Clone, Debug)]
pub struct Proposal<'a> {
    pub pass: &'static str,
    pub rule: &'static str,
    /// The node the rule matched (for the skip and the report).
    pub node: &'a str,
    /// The rewrite adds trainable capacity (zeros that fine-tuning may
    /// fill): under [`Intent::Capacity`] it is applied while the model's
    /// estimate stays within [`GateOptions::capacity_budget`].
    pub adds_capacity: bool,
    /// A reason to refuse whatever the estimate (unless forced), e.g. "group
    /// conv is lowered to split + concat on ethos-u55-256". The estimates
    /// are still computed and reported.
    pub veto: Option<String>,
}

/// What became of a proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied: the graph is the rewritten clone.
    Applied,
    /// Rejected by the cost model or a veto; the graph is unchanged.
    Rejected,
    /// No target, or the rewrite budget is spent: nothing was tried or
    /// recorded.
    NotRun,
    /// The rewrite itself refused (its closure returned the reason, which
    /// was recorded as a skip); the graph is unchanged.
    Refused,
}

/// One cost-gated decision, for the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub pass: &'static str,
    pub rule: &'static str,
    pub node: String,
    pub target: String,
    pub intent: Intent,
    pub applied: bool,
    /// Applied because of `--force-pass`, whatever the estimate.
    pub forced: bool,
    /// Estimated cycles of the whole model before and after the rewrite.
    pub cycles_before: u64,
    pub cycles_after: u64,
    /// The same at the target's clock, in milliseconds.
    pub latency_ms_before: f64,
    pub latency_ms_after: f64,
    /// Applied: the change's note. Rejected: why.
    pub reason: String,
    /// What the rewrite does (or would have done): the change's note
    /// before the estimates are added. Tells apart two proposals at one
    /// node (pad-channels trying 40 → 64, then 40 → 48).
    pub proposed: String,
    /// For a rewrite that makes the model heavier (executed MACs or
    /// weights, see [`crate::footprint`]): how, and the margin by which the
    /// estimate had to fall (the target's `[cost] heavier_margin`).
    pub heavier: Option<(String, f64)>,
}

/// The figures of one whole-model estimate the gate keeps.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Figures {
    pub cycles: u64,
    pub latency_ms: f64,
    /// Layers the cost model could not size.
    pub unsized_layers: Vec<cost::Unsized>,
}

impl Figures {
    fn of(g: &Graph, t: &Target) -> Figures {
        let e = cost::totals(g, t);
        Figures {
            cycles: e.total_cycles,
            latency_ms: e.latency_ms,
            unsized_layers: e.unsized_layers,
        }
    }

    /// The first of `nodes` the cost model could not size.
    fn unsized_among<'a>(&'a self, nodes: &[&String]) -> Option<&'a cost::Unsized> {
        self.unsized_layers
            .iter()
            .find(|u| !u.node.is_empty() && nodes.contains(&&u.node))
    }
}

/// `1.23 M`, `45.6 k`, `789`.
pub fn cycles_text(c: u64) -> String {
    let f = c as f64;
    if f >= 1e6 {
        format!("{:.2} M", f / 1e6)
    } else if f >= 1e4 {
        format!("{:.1} k", f / 1e3)
    } else {
        c.to_string()
    }
}

/// `est. 1.23 M → 1.10 M cycles (−10.6%)`; `(+37 cycles)` when the change rounds to 0.0%.
pub fn estimate_text(before: u64, after: u64) -> String {
    let (sign, pct) = crate::footprint::signed_change(before, after);
    // A change too small for one decimal of a percent still says which
    // way it went, and by how much.
    let change = if before != after && pct < 0.05 {
        format!("{sign}{} cycles", before.abs_diff(after))
    } else {
        format!("{sign}{pct:.1}%")
    };
    format!(
        "est. {} → {} cycles ({change})",
        cycles_text(before),
        cycles_text(after),
    )
}

impl PassContext {
    /// The target whose cost model gates hardware rewrites, if any.
    pub fn target(&self) -> Option<&Target> {
        self.gate.target.as_deref()
    }

    pub fn intent(&self) -> Intent {
        self.gate.intent
    }

    /// True when `--force-pass` names `pass`.
    pub fn is_forced(&self, pass: &str) -> bool {
        self.gate.force.iter().any(|f| f == pass)
    }

    /// The gate's decisions so far.
    pub fn decisions(&self) -> &[Decision] {
        &self.decisions
    }

    /// The whole model's estimate, cached while the graph is unchanged.
    fn current_figures(&mut self, g: &mut Graph, t: &Target) -> Figures {
        if let Some((generation, f)) = &self.cached {
            if *generation == g.generation() {
                return f.clone();
            }
        }
        npuopt_ir::infer::infer_types(g);
        let f = Figures::of(g, t);
        self.cached = Some((g.generation(), f.clone()));
        f
    }

    /// Proposes a hardware-dependent rewrite (see the module doc): `apply`
    /// rewrites a clone of `g` and returns the change (or why it cannot);
    /// the clone replaces `g` only if the cost model (or `--force-pass`)
    /// says so. Every decision is recorded.
    pub fn propose<F>(&mut self, g: &mut Graph, p: Proposal, apply: F) -> Outcome
    where
        F: FnOnce(&mut Graph) -> Result<Change, String>,
    {
        self.propose_inner(g, p, None, apply)
    }

    /// [`PassContext::propose`] for a rewrite that makes the model heavier
    /// (`growth` says how, see [`crate::footprint`]): the estimate must fall
    /// by more than `margin` (a fraction of the model's cycles), a tie or a
    /// smaller gain keeps the model as it is. The decision's reason names
    /// the growth and the margin.
    pub fn propose_heavier<F>(
        &mut self,
        g: &mut Graph,
        p: Proposal,
        margin: f64,
        growth: &str,
        apply: F,
    ) -> Outcome
    where
        F: FnOnce(&mut Graph) -> Result<Change, String>,
    {
        self.propose_inner(g, p, Some((margin, growth)), apply)
    }

    fn propose_inner<F>(
        &mut self,
        g: &mut Graph,
        p: Proposal,
        heavier: Option<(f64, &str)>,
        apply: F,
    ) -> Outcome
    where
        F: FnOnce(&mut Graph) -> Result<Change, String>,
    {
        let Some(target) = self.gate.target.clone() else {
            return Outcome::NotRun;
        };
        if !self.may_rewrite() {
            return Outcome::NotRun;
        }
        let before = self.current_figures(g, &target);
        let mut candidate = g.clone();
        let change = match apply(&mut candidate) {
            Ok(c) => c,
            Err(why) => {
                self.skip(p.pass, p.rule, p.node, why);
                return Outcome::Refused;
            }
        };
        npuopt_ir::infer::infer_types(&mut candidate);
        let after = Figures::of(&candidate, &target);
        let forced = self.is_forced(p.pass);
        let capacity = p.adds_capacity && self.gate.intent == Intent::Capacity;
        let est = estimate_text(before.cycles, after.cycles);
        let tname = target.name().to_string();
        // The region: what the rule matched and removed (before), matched
        // and added (after). A layer there the cost model cannot size
        // would make the comparison one of zeros.
        let region_before: Vec<&String> = change.matched.iter().chain(&change.removed).collect();
        let region_after: Vec<&String> = change.matched.iter().chain(&change.added).collect();
        let unsized_layer = before
            .unsized_among(&region_before)
            .or_else(|| after.unsized_among(&region_after));
        let refusal: Option<String> = if forced {
            None
        } else if let Some(v) = &p.veto {
            Some(v.clone())
        } else if let Some(u) = unsized_layer {
            Some(format!(
                "layer '{}' cannot be sized on {tname} (the shape of '{}' is {})",
                u.node, u.value, u.why
            ))
        } else if after.unsized_layers.len() > before.unsized_layers.len() {
            Some("shapes are unknown after the rewrite (cannot be costed)".into())
        } else if capacity {
            // Never above the budget, nor above where the model already
            // is (a forced rewrite may have passed the budget).
            let limit = self.gate.capacity_budget.unwrap_or(0).max(before.cycles);
            (after.cycles > limit).then(|| match self.gate.capacity_budget {
                Some(b) if b >= before.cycles => format!(
                    "the estimate would pass the capacity budget on {tname} (est. {} cycles)",
                    cycles_text(b)
                ),
                _ => format!("the estimate rises on {tname}"),
            })
        } else if let Some((margin, growth)) =
            heavier.filter(|(m, _)| (after.cycles as f64) >= before.cycles as f64 * (1.0 - m))
        {
            Some(format!(
                "it makes the model heavier ({growth}) and the estimate does not fall by more than the {:.1}% margin of {tname}",
                margin * 100.0
            ))
        } else if after.cycles > before.cycles {
            Some(format!("the estimate rises on {tname}"))
        } else if after.cycles == before.cycles {
            Some(format!(
                "no estimated gain on {tname} ({} intent keeps the model as it is on a tie)",
                self.gate.intent
            ))
        } else {
            None
        };
        let mut decision = Decision {
            pass: p.pass,
            rule: p.rule,
            node: p.node.to_string(),
            target: tname.clone(),
            intent: self.gate.intent,
            applied: refusal.is_none(),
            forced,
            cycles_before: before.cycles,
            cycles_after: after.cycles,
            latency_ms_before: before.latency_ms,
            latency_ms_after: after.latency_ms,
            reason: String::new(),
            proposed: change.note.clone(),
            heavier: heavier.map(|(m, g)| (g.to_string(), m)),
        };
        match refusal {
            Some(why) => {
                let reason = format!("{why}: {est}");
                decision.reason = reason.clone();
                self.skip(p.pass, p.rule, p.node, reason);
                self.decisions.push(decision);
                Outcome::Rejected
            }
            None => {
                let mut change = change;
                let why = if forced {
                    " (forced by --force-pass)".to_string()
                } else if let Some((margin, growth)) = heavier {
                    format!(
                        " (heavier: {growth}; the gain passes the {:.1}% margin)",
                        margin * 100.0
                    )
                } else if capacity && after.cycles > before.cycles {
                    format!(
                        " (within the capacity budget of est. {} cycles)",
                        cycles_text(self.gate.capacity_budget.unwrap_or(0))
                    )
                } else {
                    String::new()
                };
                change.note = format!("{}; {est} on {tname}{why}", change.note);
                decision.reason = change.note.clone();
                *g = candidate;
                self.cached = Some((g.generation(), after.clone()));
                self.record(change);
                self.decisions.push(decision);
                Outcome::Applied
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_text_signs_and_units() {
        assert_eq!(
            estimate_text(1_230_000, 1_100_000),
            "est. 1.23 M → 1.10 M cycles (−10.6%)"
        );
        assert_eq!(estimate_text(200, 400), "est. 200 → 400 cycles (+100.0%)");
        assert_eq!(
            estimate_text(50_000, 50_000),
            "est. 50.0 k → 50.0 k cycles (±0.0%)"
        );
        assert_eq!(
            estimate_text(134_300, 134_337),
            "est. 134.3 k → 134.3 k cycles (+37 cycles)"
        );
    }

    #[test]
    fn intents_parse() {
        assert_eq!(Intent::parse("capacity"), Some(Intent::Capacity));
        assert_eq!(Intent::parse("deploy"), Some(Intent::Deploy));
        assert_eq!(Intent::parse("speed"), None);
        assert_eq!(Intent::default(), Intent::Deploy);
    }
}
