//! fold-batchnorm: one snapshot and one tract check per rule, the cases that
//! must not fire, old opsets, and a mutation test proving the check bites.

mod common;

use common::*;
use npuopt::ir::proto::ModelProto;
use npuopt::ir::Tensor;
use prost::Message;

const PASS: &[&str] = &["fold-batchnorm"];

fn folds_every_bn(name: &str, rule: &str) {
    let r = run(&fixture(name), PASS);
    assert_eq!(
        count(&r.model, "BatchNormalization"),
        0,
        "{name}\n{}",
        r.snapshot
    );
    assert!(
        r.report.changes.iter().any(|c| c.rule == rule),
        "{name}: {:?}",
        r.report.changes
    );
    assert_verified(&r, name);
    insta::assert_snapshot!(name, r.snapshot);
}

#[test]
fn conv_bn() {
    folds_every_bn("conv_bn", "conv-bn");
}

#[test]
fn conv_bias_bn() {
    folds_every_bn("conv_bias_bn", "conv-bn");
}

#[test]
fn conv_transpose_bn() {
    folds_every_bn("conv_transpose_bn", "conv-transpose-bn");
}

#[test]
fn conv_transpose_group_bn() {
    folds_every_bn("conv_transpose_group_bn", "conv-transpose-bn");
}

#[test]
fn gemm_bn() {
    folds_every_bn("gemm_bn", "gemm-bn");
}

#[test]
fn matmul_add_bn() {
    folds_every_bn("matmul_add_bn", "matmul-bn");
}

#[test]
fn per_channel_mul_after_conv() {
    let r = run(&fixture("layer_scale"), PASS);
    assert!(
        r.report.changes.iter().any(|c| c.rule == "conv-mul"),
        "{}",
        r.snapshot
    );
    assert_verified(&r, "layer_scale");
    insta::assert_snapshot!("layer_scale", r.snapshot);
}

#[test]
fn bn_whose_conv_output_is_shared_is_left_alone_with_a_reason() {
    let r = run(&fixture("conv_bn_shared"), PASS);
    assert_eq!(count(&r.model, "BatchNormalization"), 1);
    assert!(r.report.changes.is_empty());
    let skip = r
        .report
        .skips
        .iter()
        .find(|s| s.rule == "conv-bn")
        .expect("a skip");
    assert!(skip.reason.contains("other readers"), "{}", skip.reason);
    assert_verified(&r, "conv_bn_shared");
}

#[test]
fn old_opsets_fold_too() {
    for name in ["opset7_conv_bn_sum", "opset9_constant_of_shape"] {
        let m = fixture(name);
        let r = run(
            &m,
            &[
                "fold-constants",
                "eliminate-identity",
                "fold-batchnorm",
                "eliminate-dead",
            ],
        );
        assert_eq!(
            count(&r.model, "BatchNormalization"),
            0,
            "{name}\n{}",
            r.snapshot
        );
        assert_verified(&r, name);
        insta::assert_snapshot!(name, r.snapshot);
    }
}

/// The numerical check must catch a fold that is off by 1% in one weight.
#[test]
fn a_corrupted_folded_weight_fails_verification() {
    let mut r = run(&fixture("conv_bn"), PASS);
    assert!(verify(&r).passed);
    let g = &mut r.model.graph;
    let conv = g
        .node_ids()
        .find(|&n| g.node(n).op_type() == "Conv")
        .unwrap();
    let w = g.node(conv).input(1).unwrap();
    let t = g.value(w).initializer().unwrap().clone();
    let mut data = t.to_f32().unwrap();
    data[0] *= 1.01;
    g.set_initializer(w, Tensor::from_f32("w", t.dims(), &data));
    let report = verify(&r);
    assert!(!report.passed, "{:?}", report.outputs);
    assert!(report.outputs[0].max_abs_err > 0.0);
}

/// Two convs share one weight, each followed by its BN: folding would store
/// a second copy of the weight. Without a target nothing gets heavier, so
/// the BNs stay (with the reason); with one, the cost model decides with
/// the target's margin (and `--force-pass` folds them, into copies).
#[test]
fn bn_after_a_conv_with_a_shared_weight_waits_for_a_target() {
    use npuopt_fixtures::{ConvSpec, ModelBuilder};
    let mut m = ModelBuilder::new("shared_weight", 13);
    let x = m.input("x", &[1, 4, 8, 8]);
    let w = m.random_weight("w", &[6, 4, 3, 3], -0.5, 0.5);
    let spec = ConvSpec::new(6, 3).pad(1);
    let a = m.conv_with(&x, &w, None, &spec);
    let a = m.batch_norm(&a);
    let b = m.conv_with(&x, &w, None, &spec);
    let b = m.batch_norm(&b);
    let y = m.add(&a, &b);
    m.output(&y);
    assert_shared_weight_fold_is_gated(&m.build(), PASS, "fold-batchnorm", "BatchNormalization");
}

/// A QDQ model quantized with its BNs in place (Conv → QuantizeLinear →
/// DequantizeLinear → BN): the BN acts on quantized values, so it is not
/// folded, and every one of them is reported with that reason rather than
/// passed over in silence.
#[test]
fn bn_behind_a_quantize_dequantize_pair_is_not_folded_and_says_why() {
    let proto = ModelProto::decode(real_bytes("qdq_ts.onnx").as_slice()).unwrap();
    let r = run(&proto, &["fold-batchnorm"]);
    let bns = count(&r.model, "BatchNormalization");
    assert!(bns > 0);
    assert!(r.report.changes.is_empty(), "{}", r.snapshot);
    let qdq_skips: Vec<_> = r
        .report
        .skips
        .iter()
        .filter(|s| {
            s.pass == "fold-batchnorm" && s.reason.contains("QuantizeLinear/DequantizeLinear pair")
        })
        .collect();
    assert_eq!(qdq_skips.len(), bns, "{:?}", r.report.skips);
    assert_eq!(r.model.to_bytes().unwrap(), r.before);
}
