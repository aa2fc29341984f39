//! Shape inference on the committed real exports (`fixtures/real/`:
//! TorchScript and dynamo, detectors, transformers, QDQ, fp16, symbolic
//! dims): every value sized, every conv and matrix product costed, the
//! estimate of an export that of its folded form, and a TorchScript export
//! optimized as far as the dynamo export of the same model.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use npuopt::ir::{import, Model, Op};
use npuopt_targets::{builtin_names, cost, Target};

/// Every `.onnx` in `fixtures/real/`, sorted.
fn real_exports() -> Vec<PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/real");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    v.sort();
    assert!(v.len() >= 50, "{} exports", v.len());
    v
}

fn name(p: &std::path::Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The export with its symbolic inputs pinned as `--input-shape` would
/// (the dynamic-shape YOLOv8 exports were made at 1x3x256x256).
fn load_pinned(p: &std::path::Path) -> Model {
    let mut m = import::load(p).unwrap();
    let pins: Vec<(String, Vec<i64>)> = m
        .graph
        .inputs()
        .filter(|&v| m.graph.is_fed_input(v))
        .filter(|&v| m.graph.ty(v).is_some_and(|t| t.concrete().is_none()))
        .map(|v| (m.graph.value(v).name().to_string(), vec![1, 3, 256, 256]))
        .collect();
    if !pins.is_empty() {
        npuopt::ir::pin::pin_input_shapes(&mut m.graph, &pins).unwrap();
    }
    m
}

#[test]
fn every_value_of_every_export_has_a_concrete_shape() {
    let mut pinned = 0;
    for p in real_exports() {
        let raw = import::load(&p).unwrap();
        pinned += usize::from(
            !raw.graph
                .inputs()
                .all(|v| raw.graph.ty(v).is_some_and(|t| t.concrete().is_some())),
        );
        let m = load_pinned(&p);
        let g = &m.graph;
        assert!(g.disputes().is_empty(), "{}: {:?}", name(&p), g.disputes());
        for v in g.value_ids() {
            let t = g.ty(v);
            assert!(
                t.is_some_and(|t| t.concrete().is_some()),
                "{}: '{}' is {}",
                name(&p),
                g.value(v).name(),
                t.map(|t| t.to_string()).unwrap_or("untyped".into())
            );
        }
    }
    assert_eq!(pinned, 2, "the dynamic-batch and dynamic-HW YOLOv8 exports");
}

#[test]
fn the_estimate_covers_every_conv_and_matmul() {
    let targets: Vec<Target> = builtin_names()
        .iter()
        .map(|n| Target::builtin(n).unwrap())
        .collect();
    for p in real_exports() {
        let m = load_pinned(&p);
        for t in &targets {
            let e = cost::estimate(&m.graph, t);
            assert_eq!(e.unsized_layers, 0, "{} on {}", name(&p), t.name());
            assert!(e.symbols_at_one.is_empty(), "{}", name(&p));
            for id in m.graph.node_ids() {
                let n = m.graph.node(id);
                if !matches!(
                    n.op(),
                    Op::Conv(_) | Op::ConvTranspose(_) | Op::Gemm(_) | Op::MatMul
                ) {
                    continue;
                }
                let l = e.layers.iter().find(|l| l.name == n.name()).unwrap();
                // A product of constants (RT-DETR's sin-cos position
                // embedding) is folded by the compiler: free, not unsized.
                if l.note.starts_with("computes a constant") {
                    assert_eq!(l.cycles, 0);
                    continue;
                }
                assert!(
                    l.executed_macs > 0 && l.cycles > 0,
                    "{} on {}: {} ({}) costed {} cycles, {} MACs",
                    name(&p),
                    t.name(),
                    l.name,
                    l.op,
                    l.cycles,
                    l.executed_macs
                );
            }
        }
    }
}

/// Property: the estimate of an export, of its `--passes none` round trip
/// and of its `fold-constants` form are one figure on every target — data
/// propagation sees through the shape computations folding would remove.
#[test]
fn raw_round_trip_and_folded_estimates_agree() {
    let targets: Vec<Target> = builtin_names()
        .iter()
        .map(|n| Target::builtin(n).unwrap())
        .collect();
    for p in real_exports() {
        let raw = import::load(&p).unwrap();
        let round_trip = import::from_bytes(raw.to_bytes().unwrap().into(), None).unwrap();
        let mut folded = raw.clone();
        npuopt_passes::run_pipeline(&mut folded, &["fold-constants"], Default::default()).unwrap();
        for t in &targets {
            let a = cost::totals(&raw.graph, t);
            let b = cost::totals(&round_trip.graph, t);
            let c = cost::totals(&folded.graph, t);
            assert_eq!(
                a.total_cycles,
                b.total_cycles,
                "{} on {}: round trip",
                name(&p),
                t.name()
            );
            assert_eq!(
                a.total_cycles,
                c.total_cycles,
                "{} on {}: folded",
                name(&p),
                t.name()
            );
            assert!(a.unsized_layers.is_empty(), "{}", name(&p));
        }
    }
}

fn op_counts(m: &Model) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for id in m.graph.node_ids() {
        *c.entry(m.graph.node(id).op_type().to_string()).or_insert(0) += 1;
    }
    c
}

/// RT-DETR's RepConv blocks, YOLOv10's RepVGGDW: the dynamo exporter
/// declares every tensor's shape, TorchScript none; with inference the
/// TorchScript export merges and folds exactly as the dynamo one.
#[test]
fn torchscript_exports_merge_as_the_dynamo_ones() {
    let passes = npuopt::default_passes();
    for model in ["repconv", "rtdetr", "yolov10", "yolov8", "yolo11", "levit"] {
        let mut counts = Vec::new();
        for exporter in ["ts", "dynamo"] {
            let p = common::real_path(&format!("{model}_{exporter}.onnx"));
            let mut m = import::load(&p).unwrap();
            npuopt_passes::run_pipeline(&mut m, &passes, Default::default()).unwrap();
            counts.push(op_counts(&m));
        }
        for op in ["Conv", "BatchNormalization"] {
            let n = |c: &BTreeMap<String, usize>| c.get(op).copied().unwrap_or(0);
            assert_eq!(
                n(&counts[0]),
                n(&counts[1]),
                "{model}: {op} after optimize, TorchScript vs dynamo: {:?} vs {:?}",
                counts[0],
                counts[1]
            );
        }
    }
    // The RepConv blocks did merge: 8 RepConvs of a 3x3 and a 1x1 conv each.
    let mut m = import::load(&common::real_path("repconv_ts.onnx")).unwrap();
    let before = op_counts(&m)["Conv"];
    npuopt_passes::run_pipeline(&mut m, &passes, Default::default()).unwrap();
    let after = op_counts(&m)["Conv"];
    let deploy =
        op_counts(&import::load(&common::real_path("repconv_deploy_ts.onnx")).unwrap())["Conv"];
    assert_eq!(
        after, deploy,
        "merged as far as Ultralytics' own fuse ({before} convs before)"
    );
}
