//! `eliminate-identity`: snapshots of each rule and the cases where it must
//! not fire.

mod common;

use common::{count_op, run, run_snapshot, M};
use npuopt_ir::attr;
use npuopt_ir::{DType, Model, Tensor};

const PASS: &[&str] = &["eliminate-identity"];

fn output_names(m: &Model) -> Vec<String> {
    m.graph
        .outputs()
        .map(|v| m.graph.value(v).name().to_string())
        .collect()
}

fn bool_tensor(v: bool) -> Tensor {
    Tensor::from_raw("", DType::BOOL, &[], vec![v as u8].into())
}

#[test]
fn identity_between_nodes() {
    let mut b = M::new("identity", 13);
    b.input("x", DType::FLOAT, &[1, 4])
        .node("Relu", &["x"], &["a"], vec![])
        .node("Identity", &["a"], &["b"], vec![])
        .node("Sigmoid", &["b"], &["y"], vec![])
        .output("y", DType::FLOAT, &[1, 4]);
    let mut m = b.model();
    let text = run_snapshot(&mut m, PASS);
    insta::assert_snapshot!("eliminate_identity_between_nodes", text);
    assert_eq!(count_op(&m, "Identity"), 0);
}

#[test]
fn identity_feeding_a_graph_output_keeps_the_output_name() {
    let mut b = M::new("identity_out", 13);
    b.input("x", DType::FLOAT, &[1, 4])
        .node("Relu", &["x"], &["a"], vec![])
        .node("Identity", &["a"], &["y"], vec![])
        .output("y", DType::FLOAT, &[1, 4]);
    let mut m = b.model();
    let text = run_snapshot(&mut m, PASS);
    insta::assert_snapshot!("eliminate_identity_graph_output", text);
    assert_eq!(count_op(&m, "Identity"), 0);
    assert_eq!(m.graph.node_count(), 1);
    assert_eq!(output_names(&m), vec!["y"]);
}

#[test]
fn identity_from_graph_input_to_graph_output_is_kept() {
    let mut b = M::new("interface", 13);
    b.input("x", DType::FLOAT, &[1, 4])
        .node("Identity", &["x"], &["y"], vec![])
        .output("y", DType::FLOAT, &[1, 4])
        .init_f32("w", &[1], &[1.0])
        .node("Identity", &["w"], &["z"], vec![])
        .output("z", DType::FLOAT, &[1]);
    let mut m = b.model();
    let (_, _, changes) = run(&mut m, PASS);
    assert!(changes.is_empty());
    assert_eq!(count_op(&m, "Identity"), 2);
    assert_eq!(output_names(&m), vec!["y", "z"]);
}

#[test]
fn inference_dropout() {
    let mut b = M::new("dropout", 13);
    b.input("x", DType::FLOAT, &[1, 4])
        .node("Relu", &["x"], &["a"], vec![])
        .node("Dropout", &["a"], &["d1"], vec![])
        .init_f32("ratio", &[], &[0.3])
        .init("train", bool_tensor(false))
        .node(
            "Dropout",
            &["d1", "ratio", "train"],
            &["d2", "unused_mask"],
            vec![],
        )
        .node("Sigmoid", &["d2"], &["y"], vec![])
        .output("y", DType::FLOAT, &[1, 4]);
    let mut m = b.model();
    let text = run_snapshot(&mut m, PASS);
    insta::assert_snapshot!("eliminate_identity_dropout", text);
    assert_eq!(count_op(&m, "Dropout"), 0);
}

#[test]
fn dropout_with_a_read_mask_or_in_training_is_kept() {
    let mut b = M::new("dropout_kept", 13);
    b.input("x", DType::FLOAT, &[1, 4])
        .node("Dropout", &["x"], &["d1", "mask"], vec![])
        .output("d1", DType::FLOAT, &[1, 4])
        .output("mask", DType::BOOL, &[1, 4])
        .init("on", bool_tensor(true))
        .node("Dropout", &["x", "", "on"], &["d2"], vec![])
        .output("d2", DType::FLOAT, &[1, 4]);
    let mut m = b.model();
    let (_, _, changes) = run(&mut m, PASS);
    assert!(changes.is_empty());
    assert_eq!(count_op(&m, "Dropout"), 2);
}

#[test]
fn no_op_shape_and_data_movement() {
    let mut b = M::new("noops", 13);
    b.input("x", DType::FLOAT, &[2, 3])
        .init_i64("shape", &[2], &[2, 3])
        .node("Reshape", &["x"], &["r"], vec![])
        .node("Flatten", &["r"], &["f"], vec![attr::int("axis", 1)])
        .node(
            "Transpose",
            &["f"],
            &["t"],
            vec![attr::ints("perm", &[0, 1])],
        )
        .node(
            "Cast",
            &["t"],
            &["c"],
            vec![attr::int("to", DType::FLOAT.0 as i64)],
        )
        .init_i64("pads", &[4], &[0, 0, 0, 0])
        .node("Pad", &["c", "pads"], &["p"], vec![])
        .init_i64("starts", &[2], &[0, -3])
        .init_i64("ends", &[2], &[i64::MAX, 3])
        .node("Slice", &["p", "starts", "ends"], &["s"], vec![])
        .init_i64("eshape", &[2], &[1, 3])
        .node("Expand", &["s", "eshape"], &["e"], vec![])
        .node("Concat", &["e"], &["cc"], vec![attr::int("axis", 0)])
        .node("Sum", &["cc"], &["sum"], vec![])
        .node("Relu", &["sum"], &["y"], vec![])
        .output("y", DType::FLOAT, &[2, 3]);
    // Reshape's shape input (wired here so the builder stays simple).
    let mut m = {
        let mut proto = npuopt_ir::import::decode(b.bytes().into()).unwrap();
        let g = proto.graph.as_mut().unwrap();
        g.node[0].input.push("shape".into());
        npuopt_ir::import::from_proto(proto, None).unwrap()
    };
    let text = run_snapshot(&mut m, PASS);
    insta::assert_snapshot!("eliminate_identity_noops", text);
    assert_eq!(m.graph.node_count(), 1, "only the Relu is left");
}

#[test]
fn ops_that_change_their_input_are_kept() {
    let mut b = M::new("not_noops", 13);
    b.input("x", DType::FLOAT, &[2, 3])
        .init_i64("shape", &[2], &[3, 2])
        .node("Reshape", &["x", "shape"], &["r"], vec![])
        .node(
            "Transpose",
            &["r"],
            &["t"],
            vec![attr::ints("perm", &[1, 0])],
        )
        .node(
            "Cast",
            &["t"],
            &["c"],
            vec![attr::int("to", DType::DOUBLE.0 as i64)],
        )
        .init_i64("pads", &[4], &[0, 1, 0, 0])
        .node("Pad", &["c", "pads"], &["p"], vec![])
        .init_i64("starts", &[1], &[1])
        .init_i64("ends", &[1], &[i64::MAX])
        .node("Slice", &["p", "starts", "ends"], &["s"], vec![])
        .init_i64("eshape", &[3], &[2, 1, 4])
        .node("Expand", &["s", "eshape"], &["e"], vec![])
        .node("Flatten", &["e"], &["f"], vec![attr::int("axis", 1)])
        .output("f", DType::DOUBLE, &[2, 16]);
    let mut m = b.model();
    let before = m.graph.node_count();
    let (_, _, changes) = run(&mut m, PASS);
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(m.graph.node_count(), before);
}

#[test]
fn reshape_of_a_reshape_collapses_and_may_vanish() {
    // [1,16,12] → [16,12] → [1,16,12]: one Reshape, then none.
    let build = |outer: &[i64], out: &[i64]| {
        let mut b = M::new("reshapes", 13);
        b.input("x", DType::FLOAT, &[1, 16, 12])
            .init_i64("s1", &[2], &[16, 12])
            .init_i64("s2", &[outer.len() as i64], outer)
            .node("Reshape", &["x", "s1"], &["mid"], vec![])
            .node("Reshape", &["mid", "s2"], &["y0"], vec![])
            .node("Relu", &["y0"], &["y"], vec![])
            .output("y", DType::FLOAT, out);
        b.model()
    };
    let mut m = build(&[1, 16, 12], &[1, 16, 12]);
    run(&mut m, PASS);
    assert_eq!(count_op(&m, "Reshape"), 0);
    let mut m = build(&[1, -1, 12], &[1, 16, 12]);
    run(&mut m, PASS);
    assert_eq!(count_op(&m, "Reshape"), 0);
    // A 0 in the outer shape copies a dim of its input ([16,12] → 16,
    // [1,16,12] → 1): left alone.
    let mut m = build(&[0, 1, 12], &[16, 1, 12]);
    run(&mut m, PASS);
    assert_eq!(count_op(&m, "Reshape"), 2);
}
