//! Cost-model speed: how long `inspect --target` spends evaluating the cost
//! model, per model and target. Import time is shown apart; it is not the
//! cost model's.
//!
//! ```sh
//! cargo run --release -p npuopt-bench --bin cost                 # bench/models/*.onnx
//! cargo run --release -p npuopt-bench --bin cost -- a.onnx b.onnx
//! ```
//!
//! Goal (issue #6): < 50 ms for a 100-layer model. Each figure is the
//! median of repeated runs. Also prints each model's estimate on every
//! built-in target (total cycles and latency, estimates) and how many
//! nodes were not costed because their shapes are unknown (TorchScript
//! exports before constant folding).

use std::time::{Duration, Instant};

use npuopt_targets::{builtin_names, cost, Target};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let paths = npuopt_bench::model_paths();
    if paths.is_empty() {
        eprintln!("no models: pass .onnx paths or put models in bench/models/");
        return;
    }
    let targets: Vec<Target> = builtin_names()
        .into_iter()
        .map(|n| Target::builtin(n).unwrap())
        .collect();
    println!(
        "{:<34} {:>6} {:>9} {:<14} {:>10} {:>12} {:>10} {:>8}",
        "model", "nodes", "import ms", "target", "cost ms", "cycles (est)", "ms (est)", "unsized"
    );
    for p in &paths {
        let t0 = Instant::now();
        let model = match npuopt_ir::import::load(p) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{}: {e}", p.display());
                continue;
            }
        };
        let import = t0.elapsed();
        let name = p.file_name().unwrap().to_string_lossy();
        for t in &targets {
            let mut times = Vec::new();
            let mut est = None;
            for _ in 0..15 {
                let s = Instant::now();
                est = Some(cost::estimate(&model.graph, t));
                times.push(s.elapsed());
            }
            let est = est.unwrap();
            println!(
                "{:<34} {:>6} {:>9.1} {:<14} {:>10.3} {:>12} {:>10.3} {:>8}",
                name,
                model.graph.node_count(),
                import.as_secs_f64() * 1e3,
                t.name(),
                median(times).as_secs_f64() * 1e3,
                est.total_cycles,
                est.latency_ms,
                est.unsized_layers
            );
        }
    }
}
