//! merge-linear-branches: a sum of linear layers of one tensor becomes one
//! layer (distillation heads), tract-checked; branches of different
//! tensors are left alone; the committed distillation-head exports end as
//! one Gemm.

mod common;

use common::*;
use npuopt_fixtures::ModelBuilder;

const PASS: &[&str] = &["merge-linear-branches", "eliminate-dead"];

fn mine(r: &Run) -> usize {
    r.report
        .changes
        .iter()
        .filter(|c| c.pass == "merge-linear-branches")
        .count()
}

#[test]
fn distillation_head_merges_into_one_gemm() {
    let mut m = ModelBuilder::new("distill", 13);
    let x = m.input("x", &[2, 8]);
    let a = m.gemm(&x, 5, true);
    let b = m.gemm(&x, 5, false);
    let s = m.add(&a, &b);
    let two = m.weight("two", &[], &[2.0]);
    let y = m.div(&s, &two);
    m.output(&y);
    let r = run(&m.build(), PASS);
    assert_eq!(mine(&r), 1, "{:?}", r.report.skips);
    assert_eq!(count(&r.model, "Gemm"), 1, "{}", r.snapshot);
    assert_eq!(count(&r.model, "Add"), 0);
    assert_verified(&r, "distill");
    insta::assert_snapshot!("merge_linear_branches_distill", r.snapshot);
}

#[test]
fn nested_sums_of_matmuls_with_biases_on_rank_3_merge() {
    // x·Wa + ba − (x·Wb + bb) + x·Wc on [2,3,8]: one MatMul and its Add.
    let mut m = ModelBuilder::new("nested", 13);
    let x = m.input("x", &[2, 3, 8]);
    let a = m.matmul(&x, 4);
    let ba = m.random_weight("ba", &[4], -1.0, 1.0);
    let a = m.add(&a, &ba);
    let b = m.matmul(&x, 4);
    let bb = m.random_weight("bb", &[4], -1.0, 1.0);
    let b = m.add(&b, &bb);
    let c = m.matmul(&x, 4);
    let d = m.sub(&a, &b);
    let y = m.add(&d, &c);
    let y = m.relu(&y);
    m.output(&y);
    let r = run(&m.build(), PASS);
    assert_eq!(mine(&r), 1, "{:?}", r.report.skips);
    assert_eq!(count(&r.model, "MatMul"), 1, "{}", r.snapshot);
    assert_eq!(count(&r.model, "Add"), 1, "{}", r.snapshot);
    assert_eq!(count(&r.model, "Sub"), 0, "{}", r.snapshot);
    assert_verified(&r, "nested");
}

#[test]
fn heads_of_different_tensors_are_left_alone() {
    let mut m = ModelBuilder::new("two_inputs", 13);
    let x = m.input("x", &[2, 8]);
    let z = m.input("z", &[2, 8]);
    let a = m.gemm(&x, 5, true);
    let b = m.gemm(&z, 5, true);
    let y = m.add(&a, &b);
    m.output(&y);
    let r = run(&m.build(), PASS);
    assert_eq!(mine(&r), 0);
    assert_eq!(count(&r.model, "Gemm"), 2);
    assert!(
        r.report
            .skips
            .iter()
            .any(|s| s.reason.contains("different tensors")),
        "{:?}",
        r.report.skips
    );
}

#[test]
fn a_branch_read_elsewhere_is_left_alone() {
    let mut m = ModelBuilder::new("shared", 13);
    let x = m.input("x", &[2, 8]);
    let a = m.gemm(&x, 5, true);
    let b = m.gemm(&x, 5, true);
    let y = m.add(&a, &b);
    m.output(&y);
    m.output(&a);
    let r = run(&m.build(), PASS);
    assert_eq!(mine(&r), 0);
    assert_eq!(count(&r.model, "Gemm"), 2);
}

#[test]
fn committed_distillation_heads_end_as_one_gemm() {
    for name in ["distill_head_ts.onnx", "distill_head_dynamo.onnx"] {
        let bytes = real_bytes(name);
        let mut m = npuopt::ir::import::from_bytes(bytes.clone().into(), None).unwrap();
        let passes = npuopt_passes::resolve_pass_list(None, None).unwrap();
        let r = npuopt_passes::run_pipeline(&mut m, &passes, Default::default()).unwrap();
        // Conv, Relu, Conv, Relu, ReduceMean, Gemm: the trunk and one head.
        assert_eq!(count(&m, "Gemm"), 1, "{name}: {:?}", r.changes);
        assert_eq!(count(&m, "BatchNormalization"), 0, "{name}");
        assert_eq!(count(&m, "Div"), 0, "{name}");
        assert_eq!(count(&m, "Add"), 0, "{name}");
        assert_eq!(m.graph.node_count(), 6, "{name}");
        let v = npuopt::verify::verify_bytes(&bytes, &m.to_bytes().unwrap(), &Default::default())
            .unwrap();
        assert!(v.passed, "{name}: {:?}", v.outputs);
    }
}
