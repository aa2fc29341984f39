//! fold-batchnorm's per-channel affine rules: Mul/Add/Div/Sub by a
//! per-channel constant after a Conv, Gemm or MatMul folds into its weight
//! and bias (tract-checked), and the cases that must not fire.

mod common;

use common::*;
use npuopt::ir::proto::ModelProto;
use npuopt_fixtures::{ConvSpec, ModelBuilder, Var};

const PASS: &[&str] = &["fold-batchnorm", "eliminate-dead"];

fn rules(r: &Run) -> Vec<&'static str> {
    r.report
        .changes
        .iter()
        .filter(|c| c.pass == "fold-batchnorm")
        .map(|c| c.rule)
        .collect()
}

/// `op(producer(x), constant)` where the constant is `dims` of values in
/// [0.5, 1.5].
fn after(producer: &str, op: &str, dims: &[i64], swap: bool) -> ModelProto {
    let mut m = ModelBuilder::new("affine", 13);
    let y = match producer {
        "conv" => {
            let x = m.input("x", &[1, 4, 6, 6]);
            m.conv(&x, ConvSpec::new(6, 3).pad(1).bias(true))
        }
        "gemm" => {
            let x = m.input("x", &[3, 5]);
            m.gemm(&x, 6, true)
        }
        "matmul3" => {
            let x = m.input("x", &[2, 3, 5]);
            m.matmul(&x, 6)
        }
        _ => {
            let x = m.input("x", &[3, 5]);
            let y = m.matmul(&x, 6);
            let b = m.random_weight("bias", &[6], -0.5, 0.5);
            m.add(&y, &b)
        }
    };
    let c = m.random_weight("k", dims, 0.5, 1.5);
    let (a, b): (&Var, &Var) = if swap { (&c, &y) } else { (&y, &c) };
    let z = match op {
        "Mul" => m.mul(a, b),
        "Add" => m.add(a, b),
        "Sub" => m.sub(a, b),
        _ => m.div(a, b),
    };
    let z = m.relu(&z);
    m.output(&z);
    m.build()
}

#[test]
fn per_channel_ops_fold_into_the_linear_op_before() {
    let cases: &[(&str, &str, &[i64], &str)] = &[
        ("conv", "Sub", &[6, 1, 1], "conv-sub"),
        ("conv", "Div", &[1, 6, 1, 1], "conv-div"),
        ("conv", "Mul", &[1], "conv-mul"),
        ("gemm", "Mul", &[6], "linear-mul"),
        ("gemm", "Add", &[1, 6], "linear-add"),
        ("gemm", "Div", &[6], "linear-div"),
        ("matmul_bias", "Mul", &[6], "linear-mul"),
        ("matmul_bias", "Sub", &[6], "linear-sub"),
        ("matmul_bias", "Div", &[], "linear-div"),
        ("matmul3", "Mul", &[1, 1, 6], "linear-mul"),
        ("matmul3", "Div", &[6], "linear-div"),
    ];
    for &(producer, op, dims, rule) in cases {
        let r = run(&after(producer, op, dims, false), PASS);
        let what = format!("{producer} {op} {dims:?}");
        assert_eq!(rules(&r), vec![rule], "{what}\n{}", r.snapshot);
        assert_eq!(
            count(&r.model, op),
            usize::from(op == "Add" && producer == "matmul_bias"),
            "{what}\n{}",
            r.snapshot
        );
        assert_verified(&r, &what);
    }
}

#[test]
fn layer_scale_on_a_linear_snapshot() {
    let r = run(&after("matmul_bias", "Mul", &[6], true), PASS);
    assert_eq!(rules(&r), vec!["linear-mul"]);
    assert_verified(&r, "linear layer scale");
    insta::assert_snapshot!("fold_affine_linear_mul", r.snapshot);
}

#[test]
fn what_is_not_a_per_channel_affine_stays() {
    let cases: &[(&str, &str, &[i64], bool, &str)] = &[
        // c / x and c − x are not affine maps of the weights.
        ("gemm", "Div", &[6], true, "c / x"),
        ("conv", "Sub", &[6, 1, 1], true, "c − x"),
        // Per row, not per column.
        ("gemm", "Mul", &[3, 1], false, "per row"),
        // Per pixel, not per channel.
        ("conv", "Mul", &[1, 6, 6], false, "per pixel"),
        // An Add after a bias-less MatMul is its bias already.
        ("matmul3", "Add", &[6], false, "bias"),
    ];
    for &(producer, op, dims, swap, what) in cases {
        let m = after(producer, op, dims, swap);
        let r = run(&m, PASS);
        assert!(rules(&r).is_empty(), "{what}: {:?}", r.report.changes);
        assert_eq!(count(&r.model, op), 1, "{what}");
    }
}

#[test]
fn division_by_zero_stays() {
    let mut m = ModelBuilder::new("div0", 13);
    let x = m.input("x", &[3, 5]);
    let y = m.gemm(&x, 4, true);
    let z = m.weight("zero", &[4], &[1.0, 0.0, 2.0, 1.0]);
    let d = m.div(&y, &z);
    m.output(&d);
    let r = run(&m.build(), PASS);
    assert!(rules(&r).is_empty(), "{:?}", r.report.changes);
}

/// Layer scale after two convs that share one weight: the folded weight
/// would be a second copy, so it waits for a target's cost model like a BN.
#[test]
fn per_channel_mul_after_a_shared_weight_waits_for_a_target() {
    let mut m = ModelBuilder::new("shared_weight_mul", 13);
    let x = m.input("x", &[1, 4, 8, 8]);
    let w = m.random_weight("w", &[6, 4, 3, 3], -0.5, 0.5);
    let spec = ConvSpec::new(6, 3).pad(1);
    let mut outs = Vec::new();
    for k in ["ka", "kb"] {
        let y = m.conv_with(&x, &w, None, &spec);
        let c = m.random_weight(k, &[6, 1, 1], 0.5, 1.5);
        outs.push(m.mul(&y, &c));
    }
    let y = m.add(&outs[0], &outs[1]);
    m.output(&y);
    assert_shared_weight_fold_is_gated(&m.build(), PASS, "fold-batchnorm", "Mul");
}
