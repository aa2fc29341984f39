//! merge-sequential-convs: snapshot + tract check per rule, the padded
//! 1×1-with-bias case that must not fire, the MAC gate, and the rules with
//! the gate off (grouped and depthwise convs).

mod common;

use common::*;
use npuopt::ir::proto::ModelProto;
use npuopt_fixtures::{ConvSpec, ModelBuilder};
use npuopt_passes::passes::merge_sequential_convs::{sequential_macs, MergeSequentialConvs};
use npuopt_passes::Pass;

const PASS: &[&str] = &["merge-sequential-convs", "eliminate-dead"];

fn mine(r: &Run) -> Vec<&npuopt_passes::Change> {
    r.report
        .changes
        .iter()
        .filter(|c| c.pass == "merge-sequential-convs")
        .collect()
}

fn merges(name: &str, rule: &str) {
    let r = run(&fixture(name), PASS);
    assert_eq!(count(&r.model, "Conv"), 1, "{name}\n{}", r.snapshot);
    assert!(
        mine(&r).iter().any(|c| c.rule == rule),
        "{name}: {:?}",
        r.report.changes
    );
    assert_verified(&r, name);
    insta::assert_snapshot!(format!("merge_sequential_{name}"), r.snapshot);
}

#[test]
fn kxk_then_1x1() {
    merges("conv_kxk_then_1x1", "kxk-1x1");
}

#[test]
fn one_then_kxk_without_padding() {
    merges("conv_1x1_then_kxk_nopad", "1x1-kxk");
}

fn skip_reasons(r: &Run) -> Vec<String> {
    r.report
        .skips
        .iter()
        .filter(|s| s.pass == "merge-sequential-convs")
        .map(|s| s.reason.clone())
        .collect()
}

fn assert_unchanged(m: &ModelProto, r: &Run) {
    assert!(mine(r).is_empty(), "{:?}", r.report.changes);
    assert_eq!(
        npuopt::ir::dump::dump(&r.model.graph).unwrap(),
        npuopt::ir::dump::dump(&import_proto(m).graph).unwrap()
    );
}

#[test]
fn one_with_bias_then_padded_kxk_is_refused() {
    let m = fixture("conv_1x1_then_kxk_padded");
    let r = run(&m, &["merge-sequential-convs"]);
    assert_unchanged(&m, &r);
    let why = skip_reasons(&r);
    assert!(why.iter().any(|w| w.contains("bias")), "{why:?}");
}

#[test]
fn one_then_depthwise_is_refused_by_the_mac_gate() {
    // 1×1 (8 → 16) then depthwise 3×3: dense 3×3 16·8·9 MACs per pixel
    // against 16·8 + 16·9.
    let m = fixture("conv_1x1_then_dw");
    let r = run(&m, &["merge-sequential-convs"]);
    assert_unchanged(&m, &r);
    let why = skip_reasons(&r);
    assert!(why.iter().any(|w| w.contains("MACs")), "{why:?}");
}

#[test]
fn mac_figures_are_exposed_for_the_cost_model() {
    let mut model = import_proto(&fixture("conv_1x1_then_dw"));
    npuopt_passes::run_pipeline(&mut model, &["fold-batchnorm"], Default::default()).unwrap();
    let g = &model.graph;
    let convs: Vec<_> = g
        .topo_order()
        .unwrap()
        .into_iter()
        .filter(|&n| g.node(n).op_type() == "Conv")
        .collect();
    let (merged, original) = sequential_macs(g, convs[0], convs[1]).unwrap();
    assert_eq!(merged, 16 * 16 * 16 * 8 * 9);
    assert_eq!(original, 16 * 16 * 16 * 8 + 16 * 16 * 16 * 9);
}

/// Runs the pass with the MAC gate off, then eliminate-dead.
fn run_ungated(m: &ModelProto) -> Run {
    let before = prost::Message::encode_to_vec(m);
    let mut model = import_proto(m);
    let dump_before = npuopt::ir::dump::dump(&model.graph).unwrap();
    let passes: Vec<Box<dyn Pass>> = vec![
        Box::new(MergeSequentialConvs {
            require_no_more_macs: false,
        }),
        npuopt_passes::registry::pass_by_name("eliminate-dead").unwrap(),
    ];
    let report =
        npuopt_passes::manager::run_passes(&mut model, &passes, &mut Default::default()).unwrap();
    let snapshot = npuopt_passes::change::snapshot_text(
        &dump_before,
        &npuopt::ir::dump::dump(&model.graph).unwrap(),
        &report.changes,
    );
    Run {
        before,
        model,
        report,
        snapshot,
    }
}

#[test]
fn one_without_bias_then_padded_depthwise_is_exact() {
    let r = run_ungated(&fixture("conv_1x1_then_dw"));
    // The BN after the depthwise conv stays (fold-batchnorm's job).
    assert_eq!(count(&r.model, "Conv"), 1, "{}", r.snapshot);
    assert!(mine(&r).iter().any(|c| c.rule == "1x1-depthwise"));
    assert_verified(&r, "conv_1x1_then_dw");
    insta::assert_snapshot!("merge_sequential_conv_1x1_then_dw_ungated", r.snapshot);
}

#[test]
fn grouped_and_strided_pairs_are_exact() {
    // Depthwise 3×3 stride 2 then 1×1: the depthwise kernel is expanded
    // block-diagonally.
    let mut m = ModelBuilder::new("dw_then_1x1", 13);
    let x = m.input("x", &[1, 8, 12, 12]);
    let y = m.conv(
        &x,
        ConvSpec::new(8, 3).pad(1).stride(2).depthwise().bias(true),
    );
    let y = m.conv(&y, ConvSpec::new(12, 1).bias(true));
    m.output(&y);
    let r = run_ungated(&m.build());
    assert_eq!(count(&r.model, "Conv"), 1, "{}", r.snapshot);
    assert_verified(&r, "dw_then_1x1");

    // A 3-group 3×3 (4 input channels per group, multiplier 2) then 1×1:
    // each filter lands on its group's slice of the dense kernel.
    let mut m = ModelBuilder::new("grouped_then_1x1", 13);
    let x = m.input("x", &[1, 12, 10, 10]);
    let y = m.conv(&x, ConvSpec::new(24, 3).pad(1).group(3).bias(true));
    let y = m.conv(&y, ConvSpec::new(5, 1).bias(true));
    m.output(&y);
    let r = run_ungated(&m.build());
    assert_eq!(count(&r.model, "Conv"), 1, "{}", r.snapshot);
    assert_verified(&r, "grouped_then_1x1");

    // 1×1 then a 2-group 3×3 without padding (bias on the 1×1 is fine).
    let mut m = ModelBuilder::new("1x1_then_grouped", 13);
    let x = m.input("x", &[1, 6, 10, 10]);
    let y = m.conv(&x, ConvSpec::new(8, 1).bias(true));
    let y = m.conv(&y, ConvSpec::new(4, 3).group(2).bias(true));
    m.output(&y);
    let r = run_ungated(&m.build());
    assert_eq!(count(&r.model, "Conv"), 1, "{}", r.snapshot);
    assert_verified(&r, "1x1_then_grouped");
}

#[test]
fn a_first_conv_read_elsewhere_is_left_alone() {
    let mut m = ModelBuilder::new("shared_first", 13);
    let x = m.input("x", &[1, 8, 12, 12]);
    let a = m.conv(&x, ConvSpec::new(8, 3).pad(1).bias(true));
    let y = m.conv(&a, ConvSpec::new(8, 1).bias(true));
    m.output(&y);
    m.output(&a);
    let m = m.build();
    let r = run_ungated(&m);
    assert_unchanged(&m, &r);
}

#[test]
fn a_strided_1x1_first_is_not_merged_into_a_kxk() {
    let mut m = ModelBuilder::new("strided_1x1_first", 13);
    let x = m.input("x", &[1, 8, 12, 12]);
    let a = m.conv(&x, ConvSpec::new(8, 1).stride(2));
    let y = m.conv(&a, ConvSpec::new(8, 3));
    m.output(&y);
    let m = m.build();
    let r = run_ungated(&m);
    assert_unchanged(&m, &r);
}
