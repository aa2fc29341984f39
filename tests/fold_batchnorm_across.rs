//! fold-batchnorm-across: BN folded into the linear op before it across
//! shape-only ops (LeViT's `bn(x.flatten(0, 1)).reshape_as(x)`), or into
//! the Gemm/MatMul/unpadded Conv after it; the cases that must not fire;
//! and the committed LeViT and distillation-head exports.

mod common;

use common::*;
use npuopt::ir::proto::ModelProto;
use npuopt_fixtures::{ConvSpec, ModelBuilder};

const PASS: &[&str] = &["fold-batchnorm-across", "eliminate-dead"];

fn mine(r: &Run) -> usize {
    r.report
        .changes
        .iter()
        .filter(|c| c.pass == "fold-batchnorm-across")
        .count()
}

fn reasons(r: &Run) -> Vec<String> {
    r.report
        .skips
        .iter()
        .filter(|s| s.pass == "fold-batchnorm-across")
        .map(|s| s.reason.clone())
        .collect()
}

/// LeViT's LinearNorm: MatMul [1,16,8]·[8,12] → [16,12] → BN1d → [1,16,12].
fn linear_norm(bias: bool) -> ModelProto {
    let mut m = ModelBuilder::new("linear_norm", 13);
    let x = m.input("x", &[1, 16, 8]);
    let mut y = m.matmul(&x, 12);
    if bias {
        let b = m.random_weight("bias", &[12], -0.5, 0.5);
        y = m.add(&y, &b);
    }
    let f = m.reshape(&y, &[16, 12]);
    let n = m.batch_norm(&f);
    let r = m.reshape(&n, &[1, 16, 12]);
    m.output(&r);
    m.build()
}

#[test]
fn bn1d_after_a_matmul_through_reshape_folds() {
    let r = run(&linear_norm(false), PASS);
    assert_eq!(mine(&r), 1, "{:?}", reasons(&r));
    assert_eq!(count(&r.model, "BatchNormalization"), 0);
    assert_eq!(count(&r.model, "Add"), 1, "{}", r.snapshot);
    assert_verified(&r, "linear_norm");
    insta::assert_snapshot!("fold_bn_across_linear_norm", r.snapshot);
}

#[test]
fn bn1d_after_a_matmul_with_bias_folds_into_the_bias() {
    let r = run(&linear_norm(true), PASS);
    assert_eq!(mine(&r), 1, "{:?}", reasons(&r));
    assert_eq!(count(&r.model, "BatchNormalization"), 0);
    assert_eq!(count(&r.model, "Add"), 1, "{}", r.snapshot);
    assert_verified(&r, "linear_norm_bias");
}

#[test]
fn a_reshape_that_scrambles_the_channel_axis_is_refused() {
    // [1,6,4] (channels last) → [1,4,6]: axis 1 has 4 entries, not the
    // MatMul's channels.
    let mut m = ModelBuilder::new("scrambled", 13);
    let x = m.input("x", &[1, 6, 8]);
    let y = m.matmul(&x, 4);
    let f = m.reshape(&y, &[1, 4, 6]);
    let n = m.batch_norm(&f);
    m.output(&n);
    let r = run(&m.build(), PASS);
    assert_eq!(mine(&r), 0);
    assert_eq!(count(&r.model, "BatchNormalization"), 1);
    let why = reasons(&r);
    assert!(
        why.iter().any(|w| w.contains("splits or merges")),
        "{why:?}"
    );
}

#[test]
fn bn1d_before_a_gemm_folds_forward() {
    for trans_b in [false, true] {
        let mut m = ModelBuilder::new("bn_gemm", 13);
        let x = m.input("x", &[2, 8]);
        let n = m.batch_norm(&x);
        let y = m.gemm(&n, 10, trans_b);
        m.output(&y);
        let r = run(&m.build(), PASS);
        assert_eq!(mine(&r), 1, "{:?}", reasons(&r));
        assert_eq!(count(&r.model, "BatchNormalization"), 0);
        assert_verified(&r, "bn_gemm");
        if !trans_b {
            insta::assert_snapshot!("fold_bn_across_bn_gemm", r.snapshot);
        }
    }
}

#[test]
fn bn2d_flatten_gemm_folds_forward() {
    let mut m = ModelBuilder::new("bn_flatten_gemm", 13);
    let x = m.input("x", &[1, 8, 1, 1]);
    let n = m.batch_norm(&x);
    let f = m.flatten(&n, 1);
    let y = m.gemm(&f, 5, true);
    m.output(&y);
    let r = run(&m.build(), PASS);
    assert_eq!(mine(&r), 1, "{:?}", reasons(&r));
    assert_eq!(count(&r.model, "BatchNormalization"), 0);
    assert_verified(&r, "bn_flatten_gemm");
}

#[test]
fn bn2d_flatten_over_pixels_is_refused() {
    // [1,8,2,2] → [1,32]: the channel axis is merged with the pixels.
    let mut m = ModelBuilder::new("bn_flatten_pixels", 13);
    let x = m.input("x", &[1, 8, 2, 2]);
    let n = m.batch_norm(&x);
    let f = m.flatten(&n, 1);
    let y = m.gemm(&f, 5, true);
    m.output(&y);
    let r = run(&m.build(), PASS);
    assert_eq!(mine(&r), 0);
    assert!(reasons(&r).iter().any(|w| w.contains("splits or merges")));
}

#[test]
fn bn_before_a_matmul_folds_forward() {
    let mut m = ModelBuilder::new("bn_matmul", 13);
    let x = m.input("x", &[4, 8]);
    let n = m.batch_norm(&x);
    let y = m.matmul(&n, 6);
    let y = m.relu(&y);
    m.output(&y);
    let r = run(&m.build(), PASS);
    assert_eq!(mine(&r), 1, "{:?}", reasons(&r));
    assert_eq!(count(&r.model, "BatchNormalization"), 0);
    assert_eq!(count(&r.model, "Add"), 1);
    assert_verified(&r, "bn_matmul");
}

#[test]
fn bn_before_unpadded_convs_folds_forward() {
    for spec in [
        ConvSpec::new(6, 1).bias(true),
        ConvSpec::new(6, 3),
        ConvSpec::new(8, 3).group(2).bias(true),
    ] {
        let mut m = ModelBuilder::new("bn_conv", 13);
        let x = m.input("x", &[1, 8, 7, 7]);
        let n = m.batch_norm(&x);
        let y = m.conv(&n, spec.clone());
        m.output(&y);
        let r = run(&m.build(), PASS);
        assert_eq!(mine(&r), 1, "{spec:?}: {:?}", reasons(&r));
        assert_eq!(count(&r.model, "BatchNormalization"), 0);
        assert_verified(&r, &format!("{spec:?}"));
    }
}

#[test]
fn bn_before_a_padded_conv_is_refused() {
    let mut m = ModelBuilder::new("bn_padded_conv", 13);
    let x = m.input("x", &[1, 8, 7, 7]);
    let n = m.batch_norm(&x);
    let y = m.conv(&n, ConvSpec::new(6, 3).pad(1));
    m.output(&y);
    let r = run(&m.build(), PASS);
    assert_eq!(mine(&r), 0);
    assert_eq!(count(&r.model, "BatchNormalization"), 1);
    assert!(
        reasons(&r).iter().any(|w| w.contains("pads its input")),
        "{:?}",
        reasons(&r)
    );
}

#[test]
fn bn_read_twice_is_left_alone() {
    let mut m = ModelBuilder::new("bn_twice", 13);
    let x = m.input("x", &[2, 8]);
    let n = m.batch_norm(&x);
    let a = m.gemm(&n, 4, false);
    let b = m.gemm(&n, 4, false);
    m.output(&a);
    m.output(&b);
    let r = run(&m.build(), PASS);
    assert_eq!(mine(&r), 0);
    assert_eq!(count(&r.model, "BatchNormalization"), 1);
}

fn default_pipeline(name: &str) -> (npuopt::ir::Model, npuopt_passes::PipelineReport, Vec<u8>) {
    let bytes = real_bytes(name);
    let mut m = npuopt::ir::import::from_bytes(bytes.clone().into(), None).unwrap();
    let passes = npuopt_passes::resolve_pass_list(None, None).unwrap();
    let r = npuopt_passes::run_pipeline(&mut m, &passes, Default::default()).unwrap();
    (m, r, bytes)
}

/// The default pipeline leaves `bn_left` BNs and tract agrees (the LeViT
/// exports run unoptimized: tract's declutter fails on them).
fn real_case(name: &str, bn_left: usize) {
    let (m, r, bytes) = default_pipeline(name);
    assert_eq!(
        count(&m, "BatchNormalization"),
        bn_left,
        "{name}: {:?}",
        r.report_skips()
    );
    let after = m.to_bytes().unwrap();
    let v = npuopt::verify::verify_bytes(&bytes, &after, &Default::default()).unwrap();
    assert!(v.passed, "{name}: {:?}", v.outputs);
}

trait Skips {
    fn report_skips(&self) -> Vec<String>;
}

impl Skips for npuopt_passes::PipelineReport {
    fn report_skips(&self) -> Vec<String> {
        self.skips
            .iter()
            .filter(|s| s.rule.contains("bn"))
            .map(|s| s.reason.clone())
            .collect()
    }
}

#[test]
fn levit_keeps_no_batchnorm() {
    real_case("levit_ts.onnx", 0);
    real_case("levit_dynamo.onnx", 0);
    // Both exporters end as the same graph: 48 BN folded (46 through the
    // flatten/reshape_as pair, which then goes too), the two heads one Gemm.
    for name in ["levit_ts.onnx", "levit_dynamo.onnx"] {
        let (m, _, _) = default_pipeline(name);
        let ops = [
            ("MatMul", 68),
            ("Gemm", 1),
            ("Add", 66),
            ("Reshape", 29),
            ("Flatten", 0),
            ("Transpose", 45),
            ("Conv", 4),
        ];
        for (op, n) in ops {
            assert_eq!(count(&m, op), n, "{name}: {op}");
        }
        assert_eq!(m.graph.node_count(), 276, "{name}");
    }
}

#[test]
fn distillation_head_keeps_no_batchnorm() {
    real_case("distill_head_ts.onnx", 0);
    real_case("distill_head_dynamo.onnx", 0);
}

/// LeViT's LinearNorm twice over one shared MatMul weight: the folded
/// weight would be a second copy, so it waits for a target's cost model.
#[test]
fn bn1d_after_a_shared_matmul_weight_waits_for_a_target() {
    let mut m = ModelBuilder::new("shared_linear_norm", 13);
    let x = m.input("x", &[1, 16, 8]);
    let w = m.random_weight("w", &[8, 12], -0.5, 0.5);
    let mut outs = Vec::new();
    for _ in 0..2 {
        let y = m.matmul_with(&x, &w);
        let f = m.reshape(&y, &[16, 12]);
        outs.push(m.batch_norm(&f));
    }
    let y = m.add(&outs[0], &outs[1]);
    m.output(&y);
    assert_shared_weight_fold_is_gated(
        &m.build(),
        PASS,
        "fold-batchnorm-across",
        "BatchNormalization",
    );
}
