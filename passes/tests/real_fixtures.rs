//! The cleanup pipeline over the TorchScript exports of `fixtures/real`.

mod common;

use std::path::PathBuf;

use common::count_op;

const PIPELINE: &[&str] = &[
    "fold-constants",
    "eliminate-identity",
    "fold-batchnorm",
    "eliminate-dead",
];

fn ts_fixtures() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/real");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("_ts.onnx"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn torchscript_exports_lose_every_constant_and_identity() {
    let paths = ts_fixtures();
    if paths.is_empty() {
        eprintln!("no fixtures/real/*_ts.onnx; skipped");
        return;
    }
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let mut m = npuopt_ir::import::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let before = m.graph.node_count();
        let report = npuopt_passes::run_pipeline(&mut m, PIPELINE, Default::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        m.graph.validate().unwrap();
        assert!(!report.hit_iteration_cap, "{name}: no fixed point");
        assert_eq!(count_op(&m, "Constant"), 0, "{name}: Constant left");
        assert_eq!(count_op(&m, "Identity"), 0, "{name}: Identity left");
        let bytes = m.to_bytes().unwrap();
        npuopt_ir::import::from_bytes(bytes.into(), None)
            .unwrap_or_else(|e| panic!("{name}: re-import: {e}"));
        let mut rules = std::collections::BTreeMap::new();
        for c in &report.changes {
            *rules.entry(format!("{}/{}", c.pass, c.rule)).or_insert(0) += 1;
        }
        let mut ops = std::collections::BTreeMap::new();
        for id in m.graph.node_ids() {
            *ops.entry(m.graph.node(id).op_type().to_string())
                .or_insert(0) += 1;
        }
        eprintln!(
            "{name}: {before} -> {} nodes; rewrites {rules:?}; ops left {ops:?}",
            m.graph.node_count()
        );
    }
}
