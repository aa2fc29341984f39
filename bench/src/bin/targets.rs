//! What `optimize --target` does to each model on each built-in target:
//! the estimated latency before → after, for `--intent deploy` and
//! `--intent capacity`, with the cost-gated decisions applied / proposed
//! and the time the run took (no verification).
//!
//! ```sh
//! cargo run --release -p npuopt-bench --bin targets                 # bench/models/*.onnx
//! cargo run --release -p npuopt-bench --bin targets -- a.onnx b.onnx
//! ```
//!
//! The capacity budget is the one `npuopt optimize` uses: the input's
//! estimate after the target-independent default passes, at most the
//! input's own. "before" is the input's estimate; when some of its shapes are unknown
//! (TorchScript exports compute them at run time) it is the estimate after
//! the shape-resolving cleanup passes, as `npuopt optimize` reports it.
//! Every figure is an estimate of the analytic cost model.

use std::sync::Arc;
use std::time::Instant;

use npuopt_ir::Model;
use npuopt_passes::{manager::run_passes, GateOptions, Intent, PipelineOptions};
use npuopt_targets::{builtin_names, cost, Target};

/// The input's estimate (after the cleanup passes when shapes are unknown).
fn baseline(model: &Model, t: &Target) -> cost::Totals {
    let raw = cost::totals(&model.graph, t);
    if raw.unsized_layers.is_empty() {
        return raw;
    }
    let mut clean = model.clone();
    let cleanup = ["fold-constants", "eliminate-identity", "eliminate-dead"];
    if npuopt_passes::run_pipeline(&mut clean, &cleanup, Default::default()).is_err() {
        return raw;
    }
    cost::totals(&clean.graph, t)
}

fn main() {
    let paths = npuopt_bench::model_paths();
    if paths.is_empty() {
        eprintln!("no models: pass .onnx paths or put models in bench/models/");
        return;
    }
    let targets: Vec<Arc<Target>> = builtin_names()
        .into_iter()
        .map(|n| Arc::new(Target::builtin(n).unwrap()))
        .collect();
    let names = npuopt_passes::registry::hardware_pipeline();
    let passes: Vec<_> = names
        .iter()
        .map(|n| npuopt_passes::registry::pass_by_name(n).unwrap())
        .collect();
    println!(
        "{:<34} {:<14} {:<8} {:>10} {:>10} {:>8} {:>9} {:>8}",
        "model", "target", "intent", "before ms", "after ms", "ratio", "applied", "run s"
    );
    for p in &paths {
        let input = match npuopt_ir::import::load(p) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{}: {e}", p.display());
                continue;
            }
        };
        let name = p.file_name().unwrap().to_string_lossy();
        // `--intent capacity`'s budget, as `npuopt optimize` sets it: the
        // input after the target-independent default passes.
        let mut deployed = input.clone();
        let defaults = npuopt_passes::resolve_pass_list(None, None).unwrap();
        npuopt_passes::run_pipeline(&mut deployed, &defaults, Default::default()).unwrap();
        for t in &targets {
            let before = baseline(&input, t);
            let budget = cost::totals(&deployed.graph, t)
                .total_cycles
                .min(before.total_cycles);
            for intent in [Intent::Deploy, Intent::Capacity] {
                let mut model = input.clone();
                let start = Instant::now();
                let report = run_passes(
                    &mut model,
                    &passes,
                    &mut PipelineOptions {
                        gate: GateOptions {
                            target: Some(t.clone()),
                            intent,
                            force: Vec::new(),
                            capacity_budget: Some(budget),
                        },
                        ..Default::default()
                    },
                )
                .unwrap();
                let took = start.elapsed();
                let after = cost::totals(&model.graph, t);
                let applied = report.decisions.iter().filter(|d| d.applied).count();
                println!(
                    "{:<34} {:<14} {:<8} {:>10.3} {:>10.3} {:>7.2}× {:>4}/{:<4} {:>8.2}",
                    name,
                    t.name(),
                    intent.as_str(),
                    before.latency_ms,
                    after.latency_ms,
                    before.latency_ms / after.latency_ms.max(1e-12),
                    applied,
                    report.decisions.len(),
                    took.as_secs_f64()
                );
            }
        }
    }
}
