//! `depthwise-to-group` (REWRITES.md §6): snapshots of the cost-gated
//! decisions, tract numerical checks, must-not-fire cases and a property
//! test on random depthwise convs.

mod common;

use common::*;
use npuopt::ir::proto::ModelProto;
use npuopt::ir::Op;
use npuopt_fixtures::{ConvSpec, ModelBuilder};
use npuopt_passes::{Intent, PipelineOptions};
use npuopt_targets::Target;
use proptest::prelude::*;

const PASS: &str = "depthwise-to-group";

fn run_on(m: &ModelProto, target: &str, intent: Intent, force: &[&str]) -> Run {
    let opts = PipelineOptions {
        gate: gate(Some(target), intent, force),
        ..Default::default()
    };
    run_with(m, &[PASS], opts)
}

/// 32 channels at 16×16: a depthwise 3×3 (bias) → Relu → a depthwise 3×3
/// with channel multiplier 2 (32 → 64), stride 2.
fn two_depthwise() -> ModelProto {
    let mut b = ModelBuilder::new("two_depthwise", 13);
    let x = b.input("x", &[1, 32, 16, 16]);
    let y = b.conv(&x, ConvSpec::new(32, 3).pad(1).depthwise().bias(true));
    let y = b.relu(&y);
    let y = b.conv(&y, ConvSpec::new(64, 3).pad(1).stride(2).group(32));
    b.output(&y);
    b.build()
}

/// `(group, weight dims[1])` of every conv.
fn conv_groups(run: &Run) -> Vec<(i64, i64)> {
    let g = &run.model.graph;
    g.node_ids()
        .filter_map(|id| match g.node(id).op() {
            Op::Conv(c) => Some((c.group, g.constant(g.node(id).input(1)?)?.dims()[1])),
            _ => None,
        })
        .collect()
}

#[test]
fn capacity_on_axera_snapshot() {
    let run = run_on(&two_depthwise(), "axera-m55h", Intent::Capacity, &[]);
    insta::assert_snapshot!("depthwise_to_group_axera_capacity", run.snapshot);
    assert_verified(&run, "axera capacity");
    for d in &run.report.decisions {
        assert!(d.reason.contains("est."), "{}", d.reason);
    }
}

#[test]
fn forced_on_axera_converts_both_exactly() {
    let run = run_on(&two_depthwise(), "axera-m55h", Intent::Deploy, &[PASS]);
    // 32 channels → 2 groups of 16; the multiplier-2 conv too (64 outputs).
    assert_eq!(conv_groups(&run), vec![(2, 16), (2, 16)]);
    assert!(run.report.decisions.iter().all(|d| d.applied && d.forced));
    assert!(run.report.changes[0]
        .note
        .contains("forced by --force-pass"));
    assert_verified(&run, "forced");
}

/// Deploy on axera: the plain depthwise conv ties or rises (kept); the
/// multiplier-2 conv is outside axera's depthwise mode (multiplier ≤ 1), so
/// the target runs it as a 32-group conv padding each group to 16 channels —
/// two groups of 16 are far cheaper, and deploy applies it.
#[test]
fn deploy_on_axera_applies_only_what_pays() {
    let run = run_on(&two_depthwise(), "axera-m55h", Intent::Deploy, &[]);
    insta::assert_snapshot!("depthwise_to_group_axera_deploy", run.snapshot);
    assert_eq!(run.report.decisions.len(), 2);
    let [d0, d1] = &run.report.decisions[..] else {
        unreachable!()
    };
    assert!(
        !d0.applied && d0.cycles_after >= d0.cycles_before,
        "{}",
        d0.reason
    );
    assert!(
        d1.applied && d1.cycles_after < d1.cycles_before,
        "{}",
        d1.reason
    );
    assert_eq!(conv_groups(&run), vec![(32, 1), (2, 16)]);
    assert_verified(&run, "axera deploy");
}

/// A depthwise conv of `2 × width` channels: two groups at the target's
/// width.
fn depthwise_of(c: i64) -> ModelProto {
    let mut b = ModelBuilder::new("dw", 13);
    let x = b.input("x", &[1, c, 8, 8]);
    let y = b.conv(&x, ConvSpec::new(c, 3).pad(1).depthwise());
    b.output(&y);
    b.build()
}

#[test]
fn split_and_cpu_targets_veto_with_both_estimates() {
    for (target, why) in [
        (
            "ethos-u55-256",
            "group conv is lowered to split + concat on ethos-u55-256",
        ),
        (
            "edgetpu",
            "group conv is lowered to split + concat on edgetpu",
        ),
        (
            "hexagon-htp",
            "group conv falls back to the CPU on hexagon-htp",
        ),
    ] {
        let width = Target::builtin(target).unwrap().group.align_per_group as i64;
        let run = run_on(&depthwise_of(2 * width), target, Intent::Capacity, &[]);
        assert!(run.report.changes.is_empty(), "{target}");
        assert_eq!(run.report.decisions.len(), 1, "{target}");
        let d = &run.report.decisions[0];
        assert!(!d.applied);
        assert!(d.reason.starts_with(why), "{target}: {}", d.reason);
        assert!(d.reason.contains(": est. "), "{}", d.reason);
        eprintln!("{target}: {}", d.reason);
    }
}

#[test]
fn must_not_fire() {
    // No target: the pass does nothing and records nothing.
    let plain = run(&two_depthwise(), &[PASS]);
    assert!(plain.report.changes.is_empty() && plain.report.skips.is_empty());
    assert!(plain.report.decisions.is_empty());
    // 24 channels are not a multiple of 16: a skip says so, no estimate.
    let mut b = ModelBuilder::new("dw24", 13);
    let x = b.input("x", &[1, 24, 8, 8]);
    let y = b.conv(&x, ConvSpec::new(24, 3).pad(1).depthwise());
    b.output(&y);
    let run = run_on(&b.build(), "axera-m55h", Intent::Capacity, &[PASS]);
    assert!(run.report.changes.is_empty());
    assert!(run.report.skips[0]
        .reason
        .contains("24 channels are not a multiple of the group width 16"));
    // A dense conv and a group conv that is not depthwise are not touched.
    let mut b = ModelBuilder::new("not_dw", 13);
    let x = b.input("x", &[1, 32, 8, 8]);
    let y = b.conv(&x, ConvSpec::new(32, 3).pad(1));
    let y = b.conv(&y, ConvSpec::new(32, 3).pad(1).group(2));
    b.output(&y);
    let run = run_on(&b.build(), "axera-m55h", Intent::Capacity, &[PASS]);
    assert!(run.report.changes.is_empty() && run.report.skips.is_empty());
}

#[test]
fn the_fixture_depthwise_convs_on_axera_forced() {
    // 16 channels: one group of 16 — a dense conv with block-diagonal
    // weights; the multiplier-2 conv (G = 16, 32 outputs) too.
    let run = run_on(
        &fixture("depthwise_convs"),
        "axera-m55h",
        Intent::Capacity,
        &[PASS],
    );
    assert_eq!(conv_groups(&run), vec![(1, 16), (1, 16), (1, 16)]);
    assert_verified(&run, "depthwise_convs");
}

fn random_depthwise(c: i64, mult: i64, k: i64, stride: i64, pad: i64, bias: bool) -> ModelProto {
    let mut b = ModelBuilder::new("random_dw", 13);
    let x = b.input("x", &[1, c, 9, 9]);
    let y = b.conv(
        &x,
        ConvSpec::new(c * mult, k)
            .pad(pad)
            .stride(stride)
            .group(c)
            .bias(bias),
    );
    b.output(&y);
    b.build()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Random depthwise convs on cpu-generic (native groups of 4), forced:
    /// always converted to groups of 4 and exact.
    #[test]
    fn random_depthwise_convs_convert_exactly(
        groups in 1i64..4,
        mult in 1i64..3,
        k in prop::sample::select(vec![1i64, 3, 5]),
        stride in 1i64..3,
        pad_frac in 0i64..2,
        bias in any::<bool>(),
    ) {
        let c = 4 * groups;
        let pad = pad_frac * (k / 2);
        let run = run_on(&random_depthwise(c, mult, k, stride, pad, bias), "cpu-generic", Intent::Deploy, &[PASS]);
        prop_assert_eq!(conv_groups(&run), vec![(groups, 4)]);
        let v = verify(&run);
        prop_assert!(v.passed, "{:?}", v.outputs);
    }
}
