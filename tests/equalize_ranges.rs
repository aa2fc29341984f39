//! equalize-ranges (cross-layer equalization): one snapshot and one tract
//! check per fixture, the cases that must not fire, idempotence, and the
//! per-tensor int8 weight SQNR rising on the committed MobileOne and
//! RepVGG exports.

mod common;

use common::*;
use npuopt::ir::Model;
use npuopt_passes::quant_stats::{quant_view, summarize, QuantSummary};

const PASS: &[&str] = &["equalize-ranges"];

fn summary(m: &Model) -> QuantSummary {
    summarize(&quant_view(&m.graph))
}

/// Runs the pass on a fixture: it must change something, stay exact, raise
/// the worst and the mean per-tensor weight SQNR, and find nothing left to
/// do on a second run.
fn equalizes(name: &str, chains: usize) {
    let before = import_proto(&fixture(name));
    let r = run(&fixture(name), PASS);
    let changes: Vec<_> = r
        .report
        .changes
        .iter()
        .filter(|c| c.rule == "equalize-chain")
        .collect();
    assert_eq!(changes.len(), chains, "{name}\n{}", r.snapshot);
    assert_verified(&r, name);
    let (b, a) = (summary(&before), summary(&r.model));
    let (bw, aw) = (
        b.worst_sqnr_per_tensor_db.unwrap(),
        a.worst_sqnr_per_tensor_db.unwrap(),
    );
    assert!(aw > bw + 3.0, "{name}: worst SQNR {bw:.1} → {aw:.1} dB");
    assert!(
        a.mean_sqnr_per_tensor_db > b.mean_sqnr_per_tensor_db,
        "{name}: {b:?} → {a:?}"
    );
    assert!(a.max_range_spread < b.max_range_spread, "{name}");

    let again = run_model(r.model.clone(), PASS);
    assert!(
        again.changes.is_empty(),
        "{name}: a second run changed {:?}",
        again.changes
    );
    insta::assert_snapshot!(name, r.snapshot);
}

fn run_model(mut m: Model, passes: &[&str]) -> npuopt_passes::PipelineReport {
    npuopt_passes::run_pipeline(&mut m, passes, Default::default()).unwrap()
}

#[test]
fn conv_chain_through_relu_and_leaky_relu() {
    equalizes("cle_conv_chain", 1);
}

#[test]
fn depthwise_separable_triple() {
    equalizes("cle_depthwise_separable", 1);
}

#[test]
fn through_pools_and_a_flatten_into_a_gemm() {
    equalizes("cle_pool_flatten_head", 1);
}

#[test]
fn matmul_with_bias_add_and_gemm_chains() {
    equalizes("cle_linear_chain", 2);
}

#[test]
fn relu6_is_not_crossed_and_the_skip_says_why() {
    let r = run(&fixture("cle_relu6"), PASS);
    assert!(r.report.changes.is_empty(), "{:?}", r.report.changes);
    let skip = r
        .report
        .skips
        .iter()
        .find(|s| s.pass == "equalize-ranges")
        .expect("a skip naming the Clip");
    assert!(
        skip.reason.contains("Clip") && skip.reason.contains("per channel"),
        "{}",
        skip.reason
    );
    assert_eq!(r.model.to_bytes().unwrap(), r.before);
}

#[test]
fn a_value_read_outside_the_pair_blocks_it() {
    let r = run(&fixture("cle_read_twice"), PASS);
    assert!(r.report.changes.is_empty(), "{:?}", r.report.changes);
    assert_eq!(r.model.to_bytes().unwrap(), r.before);
}

#[test]
fn max_rewrites_counts_chains() {
    let mut m = import_proto(&fixture("cle_linear_chain"));
    let report = npuopt_passes::run_pipeline(
        &mut m,
        PASS,
        npuopt_passes::PipelineOptions {
            max_rewrites: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.changes.len(), 1);
}

/// The committed training-form exports, deployed by the default pipeline
/// (BN folded, branches merged), then equalized: per-tensor int8 weights
/// lose less, and the model computes the same function as the training
/// graph.
#[test]
fn mobileone_and_repvgg_weight_sqnr_rises() {
    for file in ["mobileone_ts.onnx", "repvgg_ts.onnx"] {
        let input = real_bytes(file);
        let mut deployed = npuopt::load_bytes(input.clone()).unwrap();
        let default = npuopt::default_passes();
        npuopt_passes::run_pipeline(&mut deployed, &default, Default::default()).unwrap();
        let before = summary(&deployed);

        let mut equalized = deployed.clone();
        let report = run_model_ref(&mut equalized, PASS);
        assert!(!report.changes.is_empty(), "{file}: nothing equalized");
        let after = summary(&equalized);
        let (bw, aw) = (
            before.worst_sqnr_per_tensor_db.unwrap(),
            after.worst_sqnr_per_tensor_db.unwrap(),
        );
        let (bm, am) = (
            before.mean_sqnr_per_tensor_db.unwrap(),
            after.mean_sqnr_per_tensor_db.unwrap(),
        );
        eprintln!("{file}: worst {bw:.1} → {aw:.1} dB, mean {bm:.1} → {am:.1} dB");
        assert!(aw > bw, "{file}: worst {bw:.1} → {aw:.1} dB");
        assert!(am > bm, "{file}: mean {bm:.1} → {am:.1} dB");

        let out = equalized.to_bytes().unwrap();
        let v = npuopt::verify_bytes(&input, &out, &Default::default()).unwrap();
        assert!(v.passed, "{file}: {:?}", v.outputs);
    }
}

fn run_model_ref(m: &mut Model, passes: &[&str]) -> npuopt_passes::PipelineReport {
    npuopt_passes::run_pipeline(m, passes, Default::default()).unwrap()
}

/// A dead channel (all-zero weights in the first layer) and a channel no
/// one reads (all-zero weights in the second) have no range to balance:
/// their scale stays 1 — never 0, infinite or negative — and the rest of
/// the pair is equalized exactly.
#[test]
fn zero_ranges_keep_their_scale() {
    use npuopt_fixtures::{ConvSpec, ModelBuilder};
    let mut b = ModelBuilder::new("cle_dead_channels", 13);
    let x = b.input("x", &[1, 4, 8, 8]);
    let mut w1: Vec<f32> = (0..8 * 4 * 9)
        .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
        .collect();
    w1[..4 * 9].iter_mut().for_each(|v| *v = 0.0); // output channel 0 dead
    w1[4 * 9..2 * 4 * 9].iter_mut().for_each(|v| *v *= 50.0); // channel 1 wide
    let w1 = b.weight("w1", &[8, 4, 3, 3], &w1);
    let y = b.conv_with(&x, &w1, None, &ConvSpec::new(8, 3).pad(1));
    let y = b.relu(&y);
    let mut w2: Vec<f32> = (0..6 * 8)
        .map(|i| ((i * 13 % 11) as f32 - 5.0) / 5.0)
        .collect();
    for o in 0..6 {
        w2[o * 8 + 2] = 0.0; // input channel 2 unread
    }
    let w2 = b.weight("w2", &[6, 8, 1, 1], &w2);
    let y = b.conv_with(&y, &w2, None, &ConvSpec::new(6, 1));
    b.output(&y);
    let proto = b.build();
    let r = run(&proto, PASS);
    assert_eq!(r.report.changes.len(), 1, "{}", r.snapshot);
    assert_verified(&r, "dead channels");
    let g = &r.model.graph;
    let convs: Vec<_> = g
        .node_ids()
        .filter(|&n| g.node(n).op_type() == "Conv")
        .collect();
    let a = npuopt_passes::linear_layer::LinearLayer::read(g, convs[0]).unwrap();
    let c = npuopt_passes::linear_layer::LinearLayer::read(g, convs[1]).unwrap();
    assert!(a.weight.iter().chain(&c.weight).all(|v| v.is_finite()));
    assert_eq!(a.out_range(0), 0.0, "the dead channel stays dead");
    assert_eq!(c.in_range(2), 0.0);
    // Channel 2's weights in the first layer keep their scale (1).
    let before =
        npuopt_passes::linear_layer::LinearLayer::read(&import_proto(&proto).graph, convs[0])
            .unwrap();
    assert_eq!(a.out_range(2), before.out_range(2));
    // The wide channel was narrowed.
    assert!(a.out_range(1) < before.out_range(1) / 2.0);
}
