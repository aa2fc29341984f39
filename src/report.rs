//! The JSON forms of npuopt's reports (`--report`, `--json`).

use serde_json::{json, Value};

use crate::inspect::ModelSummary;
use crate::optimize::{CostOutcome, Decision, OptimizeOutcome};
use crate::verify::{Reference, VerifyReport};

pub fn verification_json(r: &VerifyReport) -> Value {
    let mut v = verification_json_stable(r);
    // Times differ run to run: only when asked (bench/verify_zoo.sh), so
    // reports stay byte-identical otherwise.
    if std::env::var_os("NPUOPT_TIMINGS").is_some() {
        v["timings"] = r
            .timings
            .0
            .iter()
            .map(|t| json!({ "model": t.model, "load_s": t.load_s, "run_s": t.run_s }))
            .collect();
    }
    v
}

fn verification_json_stable(r: &VerifyReport) -> Value {
    json!({
        "passed": r.passed,
        "seed": r.seed,
        "samples": r.samples,
        "reference": reference_key(&r.reference),
        "reference_note": r.reference.describe(),
        "noise_factor": r.noise_factor,
        "notes": r.notes,
        "intermediates": r.intermediates.iter().map(comparison_json).collect::<Vec<_>>(),

        "outputs": r.outputs.iter().map(|o| json!({
            "name": o.name,
            "shape": o.shape,
            "max_abs_err": o.max_abs_err,
            "max_rel_err": o.max_rel_err,
            "cosine": o.cosine,
            "max_abs_ref": o.max_abs_ref,
            "err_vs_reference": o.err_vs_reference,
            "noise_floor": o.noise_floor,
            "ratio": o.ratio,
            "tolerance": o.tolerance,
            "verdict": o.verdict,
            "compared_as": o.compared_as,
            "passed": o.passed,
        })).collect::<Vec<_>>(),
    })
}

/// One compared intermediate value.
fn comparison_json(o: &crate::verify::OutputComparison) -> Value {
    json!({
        "name": o.name,
        "shape": o.shape,
        "max_abs_err": o.max_abs_err,
        "err_vs_reference": o.err_vs_reference,
        "noise_floor": o.noise_floor,
        "ratio": o.ratio,
        "tolerance": o.tolerance,
        "verdict": o.verdict,
        "passed": o.passed,
    })
}

/// The short name of what a verification measured against.
pub fn reference_key(r: &Reference) -> &'static str {
    match r {
        Reference::F64 => "f64",
        Reference::F64LowPrecision(_) => "f64-low-precision",
        Reference::Perturbed(_) => "perturbed",
        Reference::Fixed => "fixed-tolerance",
    }
}

/// The per-output table `verify` prints: error, the input's own noise
/// floor, their ratio and the verdict; then one line on the whole.
pub fn verification_text(r: &VerifyReport) -> String {
    let mut s = String::new();
    let fmt = |v: Option<f64>, prec: usize| match v {
        Some(v) => format!("{v:.prec$e}"),
        None => "-".into(),
    };
    for o in &r.outputs {
        s.push_str(&format!(
            "{} {:<24} err {:.3e}  noise floor {:>9}  ratio {:>9}  (tolerance {:.3e}, max abs err vs input {:.3e}, max |ref| {:.3e}, cosine {:.8}) {}{}\n",
            if o.passed { "ok      " } else { "MISMATCH" },
            o.name,
            o.err_vs_reference.unwrap_or(o.max_abs_err),
            fmt(o.noise_floor, 3),
            o.ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into()),
            o.tolerance,
            o.max_abs_err,
            o.max_abs_ref,
            o.cosine,
            o.verdict,
            if o.compared_as == "elementwise" || o.compared_as == "exact" {
                String::new()
            } else {
                format!(" ({})", o.compared_as)
            }
        ));
    }
    for o in &r.intermediates {
        s.push_str(&format!(
            "  feeds a decision: {:<24} err {:.3e}  noise floor {:>9}  ratio {:>9}  {}\n",
            o.name,
            o.err_vs_reference.unwrap_or(o.max_abs_err),
            fmt(o.noise_floor, 3),
            o.ratio
                .map(|r| format!("{r:.2}"))
                .unwrap_or_else(|| "-".into()),
            o.verdict
        ));
    }
    s.push_str(&format!(
        "{} ({} sample{}, seed {}; reference: {}; {})\n",
        if r.passed {
            "outputs match"
        } else {
            "outputs differ"
        },
        r.samples,
        if r.samples == 1 { "" } else { "s" },
        r.seed,
        r.reference.describe(),
        match r.reference {
            Reference::Fixed => "fixed tolerance".to_string(),
            _ => format!("pass when err ≤ {} × noise floor", r.noise_factor),
        }
    ));
    s
}

/// SHA-256-free content identity: FNV-1a 64 of the bytes, hex. Enough to
/// tell which file a report is about; not a security hash.
pub fn content_hash(bytes: &[u8]) -> String {
    let mut h = npuopt_ir::hash::Fnv64::new();
    h.write(bytes);
    format!("fnv1a64:{:016x}", h.finish())
}

/// What a report says of a model file: its path (`None` for a model in
/// memory), size and content hash, and the size of its external-data side
/// file (the hash covers the model file only).
pub struct FileFacts {
    pub path: Option<String>,
    pub bytes: u64,
    pub hash: String,
    pub external_bytes: u64,
}

/// The whole `optimize` report: tool version, files, per-pass figures,
/// totals before and after, every change and skip, verification.
pub fn optimize_json(
    input: &FileFacts,
    output: &FileFacts,
    before: &ModelSummary,
    after: &ModelSummary,
    outcome: &OptimizeOutcome,
) -> Value {
    let p = &outcome.pipeline;
    json!({
        "tool": { "name": "npuopt", "version": env!("CARGO_PKG_VERSION") },
        "input": { "path": input.path, "bytes": input.bytes, "external_bytes": input.external_bytes, "hash": input.hash },
        "output": { "path": output.path, "bytes": output.bytes, "external_bytes": output.external_bytes, "hash": output.hash },
        "totals": {
            "nodes": { "before": before.nodes, "after": after.nodes },
            "parameters": { "before": before.parameters, "after": after.parameters },
            "parameter_bytes": { "before": before.parameter_bytes, "after": after.parameter_bytes },
            "macs": { "before": before.macs, "after": after.macs },
            "executed_macs": { "before": before.dense_macs, "after": after.dense_macs },
            "file_bytes": {
                "before": input.bytes + input.external_bytes,
                "after": output.bytes + output.external_bytes,
            },
        },
        "disputes": before.disputes,
        "pinned_symbols": outcome.pinned_symbols.iter().map(|(n, v)| json!({ "name": n, "value": v })).collect::<Vec<_>>(),
        "iterations": p.iterations,
        "hit_iteration_cap": p.hit_iteration_cap,
        "hit_rewrite_cap": p.hit_rewrite_cap,
        "passes": p.passes.iter().map(|s| json!({
            "pass": s.pass,
            "rewrites": s.rewrites,
            "nodes_before": s.nodes_before,
            "nodes_after": s.nodes_after,
        })).collect::<Vec<_>>(),
        "changes": p.changes.iter().map(change_json).collect::<Vec<_>>(),
        "skipped": p.skips.iter().map(|s| json!({
            "pass": s.pass,
            "rule": s.rule,
            "node": s.node,
            "reason": s.reason,
        })).collect::<Vec<_>>(),
        "verification": outcome.verification.as_ref().map(verification_json),
        "unverified": outcome.unverified.as_ref().map(|r| format!("NOT VERIFIED: {r}")),
        "target": outcome.cost.as_ref().map(cost_json),
        "decisions": p.decisions.iter().map(decision_json).collect::<Vec<_>>(),
    })
}

/// One applied rewrite.
pub fn change_json(c: &npuopt_passes::Change) -> Value {
    json!({
        "pass": c.pass,
        "rule": c.rule,
        "matched": c.matched,
        "added": c.added,
        "removed": c.removed,
        "note": c.note,
    })
}

/// The target and its estimates before and after (labelled as estimates).
pub fn cost_json(c: &CostOutcome) -> Value {
    let side = |e: &npuopt_targets::Estimate| {
        json!({
            "total_cycles": e.total_cycles,
            "latency_ms": e.latency_ms,
            "macs": e.macs,
            "executed_macs": e.executed_macs,
            "utilization": e.utilization,
            "unsized_layers": e.unsized_layers,
            "unsized_mac_layers": e.unsized_mac_layers,
            "unsized": e.layers.iter().filter_map(|l| {
                l.missing_shape.as_ref().map(|v| json!({ "layer": l.name, "value": v }))
            }).collect::<Vec<_>>(),
        })
    };
    json!({
        "name": c.target,
        "intent": c.intent.as_str(),
        "capacity_budget_cycles": c.capacity_budget,
        "clock_mhz": c.before.clock_mhz,
        "estimate": {
            "note": "estimates of an analytic cost model, not measurements",
            "symbols_at_one": symbols_at_one(c),
            "before_is_after_cleanup": c.before_cleaned,
            "before": side(&c.before),
            "after": side(&c.after),
        },
    })
}

/// The symbolic dims either estimate evaluated at 1, sorted.
pub fn symbols_at_one(c: &CostOutcome) -> Vec<String> {
    let mut s: Vec<String> = c
        .before
        .symbols_at_one
        .iter()
        .chain(&c.after.symbols_at_one)
        .cloned()
        .collect();
    s.sort();
    s.dedup();
    s
}

/// One cost-gated decision: applied or rejected, with both estimates.
pub fn decision_json(d: &Decision) -> Value {
    json!({
        "pass": d.pass,
        "rule": d.rule,
        "node": d.node,
        "target": d.target,
        "intent": d.intent.as_str(),
        "applied": d.applied,
        "forced": d.forced,
        "estimated_cycles": { "before": d.cycles_before, "after": d.cycles_after },
        "estimated_latency_ms": { "before": d.latency_ms_before, "after": d.latency_ms_after },
        "reason": d.reason,
        "proposed": d.proposed,
        "heavier": d.heavier.as_ref().map(|(growth, margin)| json!({ "growth": growth, "margin": margin })),
    })
}

/// The `--target --json` document: exactly these keys.
pub fn estimate_json(e: &npuopt_targets::Estimate) -> Value {
    let layers: Vec<Value> = e
        .layers
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "op": l.op,
                "macs": l.macs,
                "executed_macs": l.executed_macs,
                "cycles": l.cycles,
                "utilization": l.utilization,
                "bound": l.bound,
                "supported": l.supported,
                "unsized": l.missing_shape,
            })
        })
        .collect();
    json!({
        "target": e.target,
        "total_cycles": e.total_cycles,
        "latency_ms": e.latency_ms,
        "unsized_layers": e.unsized_layers,
        "unsized_mac_layers": e.unsized_mac_layers,
        "symbols_at_one": e.symbols_at_one,
        "layers": layers,
        "flags": e.flags,
    })
}
