//! `eliminate-dead`: snapshots of each rule and the cases where it must not
//! fire.

mod common;

use common::{count_op, run, run_snapshot, M};
use npuopt_ir::DType;

const PASS: &[&str] = &["eliminate-dead"];

#[test]
fn dead_chain_goes_in_one_run() {
    let mut b = M::new("dead_chain", 13);
    b.input("x", DType::FLOAT, &[1, 4])
        .init_f32("w", &[4], &[1., 2., 3., 4.])
        .node("Relu", &["x"], &["y"], vec![])
        .output("y", DType::FLOAT, &[1, 4])
        // A dead chain: Mul → Sigmoid → Neg, read by nothing.
        .node("Mul", &["x", "w"], &["m"], vec![])
        .node("Sigmoid", &["m"], &["s"], vec![])
        .node("Neg", &["s"], &["n"], vec![])
        // An initializer nothing reads.
        .init_f32("unused", &[2], &[5., 6.]);
    let mut m = b.model();
    let before = m.clone();
    let text = run_snapshot(&mut m, PASS);
    insta::assert_snapshot!("eliminate_dead_chain", text);
    assert_eq!(m.graph.node_count(), 1);
    assert_eq!(m.graph.initializers().count(), 0);
    // One run of the pass does it all.
    let mut once = before;
    let mut cx = npuopt_passes::PassContext::new(None);
    let pass = npuopt_passes::registry::pass_by_name("eliminate-dead").unwrap();
    pass.run(&mut once, &mut cx).unwrap();
    assert_eq!(once.graph.node_count(), 1);
}

#[test]
fn duplicate_initializers_are_merged() {
    let mut b = M::new("dups", 13);
    b.input("x", DType::FLOAT, &[4])
        .init_f32("a", &[4], &[1., 2., 3., 4.])
        .init_f32("b", &[4], &[1., 2., 3., 4.])
        // Same bytes, other dims: kept.
        .init_f32("c", &[2, 2], &[1., 2., 3., 4.])
        // -0.0 and 0.0 differ in bytes: kept.
        .init_f32("z", &[1], &[0.0])
        .init_f32("nz", &[1], &[-0.0])
        .node("Add", &["x", "a"], &["p"], vec![])
        .node("Mul", &["p", "b"], &["q"], vec![])
        .node("Add", &["q", "z"], &["r"], vec![])
        .node("Add", &["r", "nz"], &["y"], vec![])
        .node("Reshape", &["c", "shape"], &["c4"], vec![])
        .init_i64("shape", &[1], &[4])
        .node("Add", &["y", "c4"], &["out"], vec![])
        .output("out", DType::FLOAT, &[4]);
    let mut m = b.model();
    let text = run_snapshot(&mut m, PASS);
    insta::assert_snapshot!("eliminate_dead_duplicates", text);
    assert_eq!(m.graph.initializers().count(), 5);
    assert!(m.graph.value_by_name("b").is_none());
}

#[test]
fn graph_outputs_inputs_and_other_domains_are_kept() {
    let mut b = M::new("kept", 13);
    b.input("x", DType::FLOAT, &[4])
        // An input with a default: never removed even if unread.
        .input("opt", DType::FLOAT, &[4])
        .init_f32("opt", &[4], &[0.; 4])
        // An initializer that is a graph output.
        .init_f32("k", &[4], &[1.; 4])
        .output("k", DType::FLOAT, &[4])
        .node("Relu", &["x"], &["y"], vec![])
        .output("y", DType::FLOAT, &[4])
        // A duplicate of k that is read: merged into k.
        .init_f32("k2", &[4], &[1.; 4])
        .node("Add", &["x", "k2"], &["z"], vec![])
        .output("z", DType::FLOAT, &[4]);
    let mut proto = npuopt_ir::import::decode(b.bytes().into()).unwrap();
    // A custom-domain node whose output nobody reads.
    let g = proto.graph.as_mut().unwrap();
    g.node.push(npuopt_ir::proto::NodeProto {
        name: Some("custom".into()),
        op_type: Some("Log".into()),
        domain: Some("com.example".into()),
        input: vec!["x".into()],
        output: vec!["side".into()],
        ..Default::default()
    });
    proto
        .opset_import
        .push(npuopt_ir::proto::OperatorSetIdProto {
            domain: Some("com.example".into()),
            version: Some(1),
        });
    let mut m = npuopt_ir::import::from_proto(proto, None).unwrap();
    let (_, _, changes) = run(&mut m, PASS);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].rule, "duplicate-initializer");
    assert_eq!(count_op(&m, "Log"), 1);
    assert!(m.graph.value_by_name("opt").is_some());
    assert!(m.graph.value_by_name("k").is_some());
    assert_eq!(m.graph.node_count(), 3);
}
