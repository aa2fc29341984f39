//! Runs a pipeline of passes to a fixed point.
//!
//! The fixed point is counted in applied rewrites, not node counts: a
//! rewrite that keeps the node count (depthwise→group, say) still counts.
//! The graph is validated after every pass; a broken invariant is an error
//! "after pass X: …", never a silently wrong model.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use npuopt_ir::Model;

use crate::cancel::Cancel;
use crate::change::{Change, Skip};
use crate::gate::{Decision, GateOptions, Intent};
use crate::pass::{Pass, PassContext, PassError};
use crate::registry::pass_by_name;

/// Iterations of the whole pipeline before giving up on a fixed point.
pub const DEFAULT_MAX_ITERATIONS: usize = 16;

/// Called after each pass that changed the graph; returning an error stops
/// the pipeline (used for `--verify-each` and `--dump-after`).
pub type AfterPass<'a> = dyn FnMut(&str, &Model, &[Change]) -> Result<(), String> + 'a;

#[derive(Default)]
pub struct PipelineOptions<'a> {
    /// Stop after this many rewrites in total (bisection by hand).
    pub max_rewrites: Option<usize>,
    /// Pipeline iterations cap; `None` means [`DEFAULT_MAX_ITERATIONS`].
    pub max_iterations: Option<usize>,
    pub after_pass: Option<Box<AfterPass<'a>>>,
    /// Target, intent and `--force-pass` for cost-gated rewrites (no
    /// target: the hardware passes do nothing).
    pub gate: GateOptions,
    /// Checked before every pass and every rewrite: once it fires the run
    /// ends with [`PipelineError::Cancelled`].
    pub cancel: Cancel,
    /// Change notes without the content hash of the tensors they name
    /// (`fold-constants`' `f32[384,128] #1a2b3c4d`): hashing every folded
    /// tensor byte by byte was a fifth of a transformer's run. For callers
    /// that show no note — the command without `--report`,
    /// `--report-html` or `--verify-each`; everything else keeps them.
    pub skip_note_hashes: bool,
}

/// What one pass did over the whole run. `nodes_before` is the node count
/// when the pass first ran; `nodes_after` adds only the pass's own changes
/// (summed over every iteration), so the passes of a report read as a
/// waterfall from the input's node count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassSummary {
    pub pass: &'static str,
    pub rewrites: usize,
    pub nodes_before: usize,
    pub nodes_after: usize,
}

#[derive(Clone, Debug, Default)]
pub struct PipelineReport {
    pub passes: Vec<PassSummary>,
    pub changes: Vec<Change>,
    /// Rules that matched but did not fire, with the reason (deduplicated:
    /// the fixed-point loop sees the same skip once per iteration).
    pub skips: Vec<Skip>,
    /// Every cost-gated decision, applied or rejected, with both estimates
    /// (a proposal rejected again in a later iteration appears once, with
    /// its latest figures).
    pub decisions: Vec<Decision>,
    pub iterations: usize,
    /// The iteration cap was reached before a fixed point.
    pub hit_iteration_cap: bool,
    /// `max_rewrites` stopped the run.
    pub hit_rewrite_cap: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("pass {pass}: {source}")]
    Pass {
        pass: &'static str,
        #[source]
        source: PassError,
    },
    #[error("after pass {pass}: {source}")]
    Invalid {
        pass: &'static str,
        #[source]
        source: npuopt_ir::IrError,
    },
    #[error("after pass {pass}: {message}")]
    Check { pass: &'static str, message: String },
    #[error("unknown pass '{0}'")]
    Unknown(String),
    /// The run's [`Cancel`] flag fired; the model may be partly rewritten
    /// (every rewrite is whole) and must be discarded.
    #[error("cancelled")]
    Cancelled,
}

/// A proposal: pass, rule, node and what it does.
type DecisionKey = (&'static str, &'static str, String, String);

/// Runs `names` in order, repeatedly, until an iteration applies no rewrite.
pub fn run_pipeline(
    model: &mut Model,
    names: &[&str],
    mut opts: PipelineOptions,
) -> Result<PipelineReport, PipelineError> {
    let passes: Vec<Box<dyn Pass>> = names
        .iter()
        .map(|n| pass_by_name(n).ok_or_else(|| PipelineError::Unknown(n.to_string())))
        .collect::<Result<_, _>>()?;
    run_passes(model, &passes, &mut opts)
}

/// Runs `passes` as [`run_pipeline`] does. Constants the passes compute
/// are freed as soon as nothing reads them (see
/// [`npuopt_ir::Graph::begin_rewrites`]); the model's own are kept.
pub fn run_passes(
    model: &mut Model,
    passes: &[Box<dyn Pass>],
    opts: &mut PipelineOptions,
) -> Result<PipelineReport, PipelineError> {
    model.graph.begin_rewrites();
    let report = run_rewrites(model, passes, opts);
    model.graph.end_rewrites();
    report
}

fn run_rewrites(
    model: &mut Model,
    passes: &[Box<dyn Pass>],
    opts: &mut PipelineOptions,
) -> Result<PipelineReport, PipelineError> {
    let mut report = PipelineReport {
        passes: passes
            .iter()
            .map(|p| PassSummary {
                pass: p.name(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    if opts.gate.intent == Intent::Capacity && opts.gate.capacity_budget.is_none() {
        if let Some(t) = &opts.gate.target {
            npuopt_ir::infer::infer_types(&mut model.graph);
            opts.gate.capacity_budget =
                Some(npuopt_targets::cost::totals(&model.graph, t).total_cycles);
        }
    }
    // Where each skip, and each rejected decision, sits in the report: the
    // fixed-point loop meets them again every iteration, and searching the
    // lists each time was quadratic in their length.
    let mut skip_at: HashMap<(&'static str, &'static str, String), usize> = HashMap::new();
    let mut rejected_at: HashMap<DecisionKey, usize> = HashMap::new();
    let max_iterations = opts.max_iterations.unwrap_or(DEFAULT_MAX_ITERATIONS);
    let mut budget = opts.max_rewrites;
    'outer: loop {
        if report.iterations == max_iterations {
            report.hit_iteration_cap = true;
            break;
        }
        report.iterations += 1;
        let mut applied_this_iteration = 0;
        for (i, pass) in passes.iter().enumerate() {
            if opts.cancel.is_cancelled() {
                return Err(PipelineError::Cancelled);
            }
            let mut cx = PassContext::with_gate(budget, opts.gate.clone());
            cx.cancel = opts.cancel.clone();
            cx.skip_note_hashes = opts.skip_note_hashes;
            let name = pass.name();
            let generation = model.graph.generation();
            let nodes_before_run = model.graph.node_count() as isize;
            if report.iterations == 1 {
                report.passes[i].nodes_before = nodes_before_run as usize;
                report.passes[i].nodes_after = nodes_before_run as usize;
            }
            pass.run(model, &mut cx)
                .map_err(|source| PipelineError::Pass { pass: name, source })?;
            trace_memory(name);
            if opts.cancel.is_cancelled() {
                return Err(PipelineError::Cancelled);
            }
            // Validation is skipped only when the pass did not touch the
            // graph at all (the generation counter is unchanged).
            let touched = model.graph.generation() != generation;
            if touched {
                model
                    .graph
                    .validate()
                    .map_err(|source| PipelineError::Invalid { pass: name, source })?;
            }
            if touched {
                // Folding can make shapes known that were not (a Slice whose
                // ends became a constant): later passes see them.
                npuopt_ir::infer::infer_types(&mut model.graph);
            }
            let (changes, skips, decisions) = cx.into_all_parts();
            for s in skips {
                // The same rule at the same node: keep the latest reason
                // (a gated rejection's estimates change as the graph does).
                match skip_at.entry((s.pass, s.rule, s.node.clone())) {
                    Entry::Occupied(e) => report.skips[*e.get()] = s,
                    Entry::Vacant(e) => {
                        e.insert(report.skips.len());
                        report.skips.push(s);
                    }
                }
            }
            for d in decisions {
                // A proposal rejected before takes the latest figures (or
                // becomes the applied decision); at most one rejected
                // decision per proposal is in the list at a time.
                let key = (d.pass, d.rule, d.node.clone(), d.proposed.clone());
                let applied = d.applied;
                match rejected_at.remove(&key) {
                    Some(i) => {
                        report.decisions[i] = d;
                        if !applied {
                            rejected_at.insert(key, i);
                        }
                    }
                    None => {
                        if !applied {
                            rejected_at.insert(key, report.decisions.len());
                        }
                        report.decisions.push(d);
                    }
                }
            }
            let n = changes.len();
            if let Some(b) = &mut budget {
                *b -= n.min(*b);
            }
            if n > 0 {
                if let Some(f) = opts.after_pass.as_mut() {
                    f(name, model, &changes).map_err(|message| PipelineError::Check {
                        pass: name,
                        message,
                    })?;
                }
            }
            let s = &mut report.passes[i];
            s.rewrites += n;
            let delta = model.graph.node_count() as isize - nodes_before_run;
            s.nodes_after = (s.nodes_after as isize + delta).max(0) as usize;
            applied_this_iteration += n;
            if report.changes.is_empty() {
                // Moved, not copied: a pass's list is hundreds of MB on a
                // 1M-node graph (bench/scaling).
                report.changes = changes;
            } else {
                report.changes.extend(changes);
            }
            if budget == Some(0) {
                report.hit_rewrite_cap = true;
                break 'outer;
            }
        }
        if applied_this_iteration == 0 {
            break;
        }
    }
    Ok(report)
}

/// With `NPUOPT_TRACE_RSS` set, prints the process's resident memory
/// (anonymous and file-backed, from `/proc/self/status`) after each pass
/// to stderr: how `bench/` finds which pass holds a run's peak.
pub fn trace_memory(after: &str) {
    if std::env::var_os("NPUOPT_TRACE_RSS").is_none() {
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    // Written, not `eprintln!`: a closed stderr must not panic the run.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "rss after {after}: VmRSS {} VmHWM {} RssAnon {} RssFile {}",
        field("VmRSS:"),
        field("VmHWM:"),
        field("RssAnon:"),
        field("RssFile:")
    );
}
