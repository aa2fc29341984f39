//! `pad-channels` on hand-built graphs: the plan (what it pads, what it
//! refuses) and the constants it writes. Numerics are checked with tract in
//! the root crate's `tests/pad_channels.rs`.

mod common;

use common::{dump, M};
use npuopt_ir::attr;
use npuopt_ir::{DType, Graph, Model, NodeId};
use npuopt_passes::change::snapshot_text;
use npuopt_passes::passes::pad_channels::{pad_region, PadChannels};
use npuopt_passes::Pass;

fn node(g: &Graph, name: &str) -> NodeId {
    g.node_ids()
        .find(|&n| g.node(n).name() == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn input_dims(m: &Model, n: &str, slot: usize) -> Vec<i64> {
    let g = &m.graph;
    let v = g.node(node(g, n)).input(slot).unwrap();
    g.constant(v).unwrap().dims().to_vec()
}

fn input_values(m: &Model, n: &str, slot: usize) -> Vec<f64> {
    let g = &m.graph;
    let v = g.node(node(g, n)).input(slot).unwrap();
    g.constant(v).unwrap().to_f64().unwrap()
}

fn pad(m: &mut Model, align: usize) -> (String, Vec<npuopt_passes::Change>) {
    let before = dump(m);
    let passes: Vec<Box<dyn Pass>> = vec![Box::new(PadChannels { align: Some(align) })];
    let report = npuopt_passes::manager::run_passes(m, &passes, &mut Default::default()).unwrap();
    m.graph.validate().unwrap();
    let bytes = m.to_bytes().unwrap();
    npuopt_ir::import::from_bytes(bytes.into(), None).expect("re-imports");
    (
        snapshot_text(&before, &dump(m), &report.changes),
        report.changes,
    )
}

/// x → Conv(6) → LeakyRelu → Div([1,6,1,1]) → Flatten → Gemm(transB = 0).
fn div_head() -> M {
    let mut b = M::new("pad_div", 13);
    b.input("x", DType::FLOAT, &[1, 2, 4, 4])
        .init_f32("w", &[6, 2, 1, 1], &[1.; 12])
        .init_f32("b", &[6], &[0.5; 6])
        .init_f32("d", &[1, 6, 1, 1], &[1., 2., 3., 4., 5., 6.])
        .init_f32("gw", &[96, 3], &[0.25; 288])
        .node("Conv", &["x", "w", "b"], &["c"], vec![])
        .node("LeakyRelu", &["c"], &["l"], vec![attr::float("alpha", 0.1)])
        .node("Div", &["l", "d"], &["q"], vec![])
        .node("Flatten", &["q"], &["f"], vec![attr::int("axis", 1)])
        .node("Gemm", &["f", "gw"], &["y"], vec![])
        .output("y", DType::FLOAT, &[1, 3]);
    b
}

#[test]
fn plan_then_apply_through_div_into_gemm() {
    let mut m = div_head().model();
    let g = &m.graph;
    let plan = pad_region(g, node(g, "n_c"), 8).unwrap();
    assert_eq!((plan.channels, plan.padded), (6, 8));
    assert_eq!(plan.producers, vec![node(g, "n_c")]);
    assert_eq!(plan.absorbers, vec![node(g, "n_y")]);
    assert_eq!(plan.tensors.len(), 3, "c, l, q");
    let (snapshot, changes) = pad(&mut m, 8);
    assert_eq!(changes.len(), 1);
    insta::assert_snapshot!("pad_channels_div_head", snapshot);
    assert_eq!(input_dims(&m, "n_c", 1), vec![8, 2, 1, 1]);
    assert_eq!(input_values(&m, "n_c", 2)[6..], [0.0, 0.0]);
    // The divisor's new channels are 1 (0 / 1 stays finite).
    assert_eq!(input_dims(&m, "n_q", 1), vec![1, 8, 1, 1]);
    assert_eq!(input_values(&m, "n_q", 1)[6..], [1.0, 1.0]);
    // Flatten of [1, 8, 4, 4]: the new features are the trailing 2·16 rows.
    assert_eq!(input_dims(&m, "n_y", 1), vec![128, 3]);
    let gw = input_values(&m, "n_y", 1);
    assert!(gw[..96 * 3].iter().all(|&v| v == 0.25));
    assert!(gw[96 * 3..].iter().all(|&v| v == 0.0));
}

#[test]
fn dividing_by_a_padded_tensor_is_refused() {
    let mut b = M::new("pad_div_by", 13);
    b.input("x", DType::FLOAT, &[1, 2, 4, 4])
        .init_f32("w", &[6, 2, 1, 1], &[1.; 12])
        .init_f32("one", &[], &[1.])
        .init_f32("w2", &[4, 6, 1, 1], &[1.; 24])
        .node("Conv", &["x", "w"], &["c"], vec![])
        .node("Div", &["one", "c"], &["q"], vec![])
        .node("Conv", &["q", "w2"], &["y"], vec![])
        .output("y", DType::FLOAT, &[1, 4, 4, 4]);
    let m = b.model();
    let g = &m.graph;
    let err = pad_region(g, node(g, "n_c"), 8).unwrap_err();
    assert!(err.contains("divides by"), "{err}");
}

#[test]
fn a_shared_weight_is_copied_not_changed_in_place() {
    // Two convs share `w`: a's region pads, b's reaches a graph output.
    let mut b = M::new("pad_shared", 13);
    b.input("x", DType::FLOAT, &[1, 2, 4, 4])
        .init_f32("w", &[6, 2, 1, 1], &[1.; 12])
        .init_f32("w2", &[4, 6, 1, 1], &[1.; 24])
        .node("Conv", &["x", "w"], &["a"], vec![])
        .node("Conv", &["a", "w2"], &["y"], vec![])
        .node("Conv", &["x", "w"], &["z"], vec![])
        .output("y", DType::FLOAT, &[1, 4, 4, 4])
        .output("z", DType::FLOAT, &[1, 6, 4, 4]);
    let mut m = b.model();
    let (_, changes) = pad(&mut m, 8);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(input_dims(&m, "n_a", 1), vec![8, 2, 1, 1]);
    assert_eq!(input_dims(&m, "n_z", 1), vec![6, 2, 1, 1]);
    assert_eq!(input_dims(&m, "n_y", 1), vec![4, 8, 1, 1]);
}

#[test]
fn an_opaque_op_stops_the_region() {
    let mut b = M::new("pad_opaque", 13);
    b.input("x", DType::FLOAT, &[1, 2, 4, 4])
        .init_f32("w", &[6, 2, 1, 1], &[1.; 12])
        .init_f32("w2", &[4, 6, 1, 1], &[1.; 24])
        .node("Conv", &["x", "w"], &["c"], vec![])
        .node("LpNormalization", &["c"], &["n"], vec![])
        .node("Conv", &["n", "w2"], &["y"], vec![])
        .output("y", DType::FLOAT, &[1, 4, 4, 4]);
    let mut m = b.model();
    let before = dump(&m);
    let (_, changes) = pad(&mut m, 8);
    assert!(changes.is_empty());
    assert_eq!(dump(&m), before);
    let g = &m.graph;
    let err = pad_region(g, node(g, "n_c"), 8).unwrap_err();
    assert!(err.contains("LpNormalization"), "{err}");
}

#[test]
fn aligned_convs_are_left_alone() {
    let mut m = div_head().model();
    let g = &m.graph;
    let err = pad_region(g, node(g, "n_c"), 3).unwrap_err();
    assert!(err.contains("already"), "{err}");
    let before = dump(&m);
    let (_, changes) = pad(&mut m, 2);
    assert!(changes.is_empty());
    assert_eq!(dump(&m), before);
}
