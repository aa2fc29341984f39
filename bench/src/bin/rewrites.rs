//! What the default pipeline (no target) does to full-size models, against
//! their deploy form: BatchNorm nodes left, nodes, executed MACs and weight
//! bytes before → after. Issue #14's table.
//!
//! ```sh
//! cargo run --release -p npuopt-bench --bin rewrites -- /work/zoo/*.onnx
//! ```
//!
//! A model `X_ts.onnx` is paired with its deploy form `X_deploy_ts.onnx`
//! (timm's `reparameterize_model`) or `X_fused_ts.onnx` (Ultralytics'
//! `fuse()`) when the folder has one; the deploy form goes through the same
//! pipeline. Executed MACs count zeros in weights; MACs of layers whose
//! shapes stay unknown count 0 (the "unsized" column). Goals: 0 BN left
//! where a fold is exact, nodes at or below the deploy form's, executed
//! MACs and weights never up.

use std::path::{Path, PathBuf};
use std::time::Instant;

use npuopt_passes::footprint::Footprint;

struct Figures {
    nodes: usize,
    bn: usize,
    fp: Footprint,
    unknown: usize,
}

fn figures(m: &mut npuopt_ir::Model) -> Figures {
    npuopt_ir::infer::infer_types(&mut m.graph);
    let g = &m.graph;
    let bn = g
        .node_ids()
        .filter(|&n| g.node(n).op_type() == "BatchNormalization")
        .count();
    Figures {
        nodes: g.node_count(),
        bn,
        fp: Footprint::of(g),
        unknown: npuopt_ir::macs::total_macs(g).1,
    }
}

fn optimize(p: &Path) -> Option<(Figures, Figures, f64)> {
    let mut m = match npuopt_ir::import::load(p) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{}: {e}", p.display());
            return None;
        }
    };
    let before = figures(&mut m);
    let passes = npuopt_passes::resolve_pass_list(None, None).unwrap();
    let t = Instant::now();
    if let Err(e) = npuopt_passes::run_pipeline(&mut m, &passes, Default::default()) {
        eprintln!("{}: {e}", p.display());
        return None;
    }
    let secs = t.elapsed().as_secs_f64();
    Some((before, figures(&mut m), secs))
}

fn deploy_of(p: &Path) -> Option<PathBuf> {
    let name = p.file_name()?.to_str()?;
    for exporter in ["_ts.onnx", "_dynamo.onnx"] {
        if let Some(stem) = name.strip_suffix(exporter) {
            if stem.ends_with("_deploy") || stem.ends_with("_fused") {
                return None;
            }
            for form in ["_deploy", "_fused"] {
                let d = p.with_file_name(format!("{stem}{form}{exporter}"));
                if d.is_file() {
                    return Some(d);
                }
            }
        }
    }
    None
}

fn m(x: u64) -> String {
    format!("{:.1}", x as f64 / 1e6)
}

fn pct(a: u64, b: u64) -> String {
    if a == 0 {
        return "".into();
    }
    format!("{:+.1}%", (b as f64 - a as f64) / a as f64 * 100.0)
}

fn main() {
    let paths = npuopt_bench::model_paths();
    println!(
        "| model | BN before → after | nodes before → after (deploy form after) | executed MACs M before → after | weights MB before → after | unsized | s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for p in &paths {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.contains("_deploy_") || name.contains("_fused_") {
            continue;
        }
        let Some((b, a, secs)) = optimize(p) else {
            continue;
        };
        let deploy = deploy_of(p).and_then(|d| optimize(&d)).map(|(_, da, _)| da);
        let deploy_nodes = deploy
            .as_ref()
            .map(|d| format!(" ({})", d.nodes))
            .unwrap_or_default();
        println!(
            "| {name} | {} → {} | {} → {}{deploy_nodes} | {} → {} {} | {:.2} → {:.2} {} | {} → {} | {secs:.2} |",
            b.bn,
            a.bn,
            b.nodes,
            a.nodes,
            m(b.fp.executed_macs),
            m(a.fp.executed_macs),
            pct(b.fp.executed_macs, a.fp.executed_macs),
            b.fp.weight_bytes as f64 / 1e6,
            a.fp.weight_bytes as f64 / 1e6,
            pct(b.fp.weight_bytes, a.fp.weight_bytes),
            b.unknown,
            a.unknown,
        );
    }
}
