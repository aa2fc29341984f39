//! Shape inference on full-size exports: how much npuopt sees, against
//! ONNX's own inference, and what the default pipeline makes of a
//! TorchScript export against the dynamo export of the same model.
//!
//! ```sh
//! /work/pyenv/bin/python bench/onnx_shapes.py /work/zoo/*.onnx > /tmp/onnx_shapes.json
//! cargo run --release -p npuopt-bench --bin infer -- --onnx /tmp/onnx_shapes.json /work/zoo/*.onnx
//! ```
//!
//! Per model: the share of node outputs with a concrete shape (symbolic
//! inputs pinned as `onnx_shapes.py` pins them, i.e. as `--input-shape`
//! would), against ONNX's `infer_shapes(data_prop=True)`; the dense MACs
//! npuopt counts against those counted from ONNX's shapes — from the same
//! file when ONNX sizes every conv and matmul there, else from the dynamo
//! export of the same model (`<stem>_dynamo.onnx`), which ONNX sees whole;
//! the median time of one inference pass; nodes before → after the default
//! pipeline. Then, per model exported both ways, the Conv / Add /
//! BatchNormalization counts after `optimize`, TorchScript vs dynamo.
//! Goal (issue #10): 100% sized, MACs within 0.5%, equal counts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use npuopt_ir::{import, macs, Model};

struct Row {
    name: String,
    outputs: usize,
    sized: usize,
    macs: u64,
    infer_ms: f64,
    nodes: (usize, usize),
    after: BTreeMap<String, usize>,
}

fn node_outputs(m: &Model) -> (usize, usize) {
    let g = &m.graph;
    let mut total = 0;
    let mut sized = 0;
    for id in g.node_ids() {
        for v in g.node(id).outputs().iter().flatten() {
            total += 1;
            sized += usize::from(g.ty(*v).is_some_and(|t| t.concrete().is_some()));
        }
    }
    (total, sized)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let onnx: serde_json::Value = match args.iter().position(|a| a == "--onnx") {
        Some(i) => {
            let path = args.remove(i + 1);
            args.remove(i);
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        }
        None => serde_json::Value::Null,
    };
    let paths: Vec<PathBuf> = if args.is_empty() {
        npuopt_bench::model_paths()
    } else {
        args.iter().map(PathBuf::from).collect()
    };
    let passes = npuopt_passes::resolve_pass_list(None, None).unwrap();
    let mut rows = Vec::new();
    for p in &paths {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let mut m = match import::load(p) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{name}: {e}");
                continue;
            }
        };
        let pins: Vec<(String, Vec<i64>)> = onnx["models"][&name]["pins"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        let dims = v.as_array().unwrap().iter().map(|d| d.as_i64().unwrap());
                        (k.clone(), dims.collect())
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !pins.is_empty() {
            npuopt_ir::pin::pin_input_shapes(&mut m.graph, &pins).unwrap();
        }
        let mut times: Vec<f64> = (0..3)
            .map(|_| {
                let t = Instant::now();
                npuopt_ir::infer::infer_types(&mut m.graph);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let (outputs, sized) = node_outputs(&m);
        let (dense, _) = macs::total_macs(&m.graph);
        let before = m.graph.node_count();
        npuopt_passes::run_pipeline(&mut m, &passes, Default::default()).unwrap();
        let mut after = BTreeMap::new();
        for id in m.graph.node_ids() {
            *after
                .entry(m.graph.node(id).op_type().to_string())
                .or_insert(0) += 1;
        }
        rows.push(Row {
            name,
            outputs,
            sized,
            macs: dense,
            infer_ms: times[1],
            nodes: (before, m.graph.node_count()),
            after,
        });
    }

    println!(
        "| model | sized npuopt | sized ONNX | MACs npuopt | MACs ONNX (ref) | Δ | infer ms | nodes before → after |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    let (mut all_sized, mut within) = (0, 0);
    for r in &rows {
        let o = &onnx["models"][&r.name];
        let onnx_sized = match (o["sized"].as_u64(), o["node_outputs"].as_u64()) {
            (Some(s), Some(n)) => format!("{:.1}%", pct(s as usize, n as usize)),
            _ => "-".into(),
        };
        // ONNX's count where it sees every conv and matmul; else the
        // dynamo twin's.
        let stem = r
            .name
            .trim_end_matches(".onnx")
            .trim_end_matches("_ts")
            .trim_end_matches("_dynbatch")
            .trim_end_matches("_dynhw")
            .to_string();
        let reference = if o["unknown_mac_nodes"].as_u64() == Some(0) {
            o["macs"].as_u64().map(|m| (m, ""))
        } else {
            onnx["models"][format!("{stem}_dynamo.onnx")]["macs"]
                .as_u64()
                .map(|m| (m, " (dynamo)"))
        };
        let (ref_text, delta) = match reference {
            Some((m, from)) => {
                let d = (r.macs as f64 - m as f64) / m.max(1) as f64 * 100.0;
                within += usize::from(d.abs() <= 0.5);
                (format!("{}{from}", human(m)), format!("{d:+.2}%"))
            }
            None => ("-".into(), "-".into()),
        };
        all_sized += usize::from(r.sized == r.outputs);
        println!(
            "| {} | {:.1}% | {} | {} | {} | {} | {:.1} | {} → {} |",
            r.name,
            pct(r.sized, r.outputs),
            onnx_sized,
            human(r.macs),
            ref_text,
            delta,
            r.infer_ms,
            r.nodes.0,
            r.nodes.1
        );
    }
    println!(
        "\n{} of {} models with every node output sized; {} within 0.5% of the reference MACs\n",
        all_sized,
        rows.len(),
        within
    );

    println!(
        "| model | Conv TS / dynamo | Add TS / dynamo | BN TS / dynamo | nodes after TS / dynamo |"
    );
    println!("|---|---|---|---|---|");
    let by_name: BTreeMap<&str, &Row> = rows.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut equal = (0, 0);
    for r in &rows {
        let Some(stem) = r.name.strip_suffix("_ts.onnx") else {
            continue;
        };
        let Some(d) = by_name.get(format!("{stem}_dynamo.onnx").as_str()) else {
            continue;
        };
        let c = |row: &Row, op: &str| row.after.get(op).copied().unwrap_or(0);
        let same = ["Conv", "Add", "BatchNormalization"]
            .iter()
            .all(|op| c(r, op) == c(d, op));
        equal.0 += usize::from(same);
        equal.1 += 1;
        println!(
            "| {stem} | {} / {} | {} / {} | {} / {} | {} / {} |",
            c(r, "Conv"),
            c(d, "Conv"),
            c(r, "Add"),
            c(d, "Add"),
            c(r, "BatchNormalization"),
            c(d, "BatchNormalization"),
            r.nodes.1,
            d.nodes.1
        );
    }
    println!(
        "\n{} of {} TorchScript exports reach their dynamo twin's Conv/Add/BN counts",
        equal.0, equal.1
    );
}

fn human(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.3} G", n as f64 / 1e9)
    } else {
        format!("{:.2} M", n as f64 / 1e6)
    }
}
