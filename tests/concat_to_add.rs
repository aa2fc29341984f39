//! `concat-to-add` (REWRITES.md §5): snapshots, tract numerical checks,
//! decisions that differ by target (synthetic Ghost module and the real
//! GhostNet export), must-not-fire cases and a property test on random
//! concat → per-channel ops → conv blocks.

mod common;

use std::collections::BTreeMap;

use common::*;
use npuopt::ir::proto::ModelProto;
use npuopt_fixtures::{ConvSpec, ModelBuilder};
use npuopt_passes::{Intent, PipelineOptions};
use proptest::prelude::*;
use prost::Message;

const PASS: &str = "concat-to-add";

fn run_on(m: &ModelProto, passes: &[&str], target: &str, force: &[&str]) -> Run {
    let opts = PipelineOptions {
        gate: gate(Some(target), Intent::Deploy, force),
        ..Default::default()
    };
    run_with(m, passes, opts)
}

#[test]
fn concat_conv_on_axera_snapshot() {
    let run = run_on(
        &fixture("concat_conv"),
        &[PASS, "eliminate-dead"],
        "axera-m55h",
        &[],
    );
    insta::assert_snapshot!("concat_to_add_concat_conv_axera", run.snapshot);
    assert_eq!(count(&run.model, "Concat"), 0);
    assert_eq!(count(&run.model, "Conv"), 2);
    assert_eq!(count(&run.model, "BatchNormalization"), 2);
    assert_eq!(count(&run.model, "Relu"), 2);
    assert_verified(&run, "concat_conv");
}

#[test]
fn ghost_module_forced_snapshot() {
    let run = run_on(
        &fixture("ghost_module"),
        &[PASS, "eliminate-dead"],
        "ethos-u55-256",
        &[PASS],
    );
    insta::assert_snapshot!("concat_to_add_ghost_module_forced", run.snapshot);
    assert_eq!(count(&run.model, "Concat"), 0);
    assert_verified(&run, "ghost_module");
}

/// Applied (true) or rejected per target, for every concat-to-add decision.
fn decisions_by_target(m: &ModelProto, passes: &[&str]) -> BTreeMap<String, Vec<(String, bool)>> {
    npuopt_targets::builtin_names()
        .into_iter()
        .map(|t| {
            let run = run_on(m, passes, t, &[]);
            for d in run.report.decisions.iter().filter(|d| d.pass == PASS) {
                assert!(d.reason.contains("est. "), "{}", d.reason);
                eprintln!(
                    "  {t}: {} {}: {}",
                    if d.applied { "applied" } else { "rejected" },
                    d.node,
                    d.reason
                );
            }
            assert_verified(&run, t);
            let ds = run
                .report
                .decisions
                .iter()
                .filter(|d| d.pass == PASS)
                .map(|d| (d.node.clone(), d.applied))
                .collect();
            (t.to_string(), ds)
        })
        .collect()
}

/// The synthetic blocks: on axera-m55h (misaligned concat offset 8 → a
/// copy; the Adds fuse into the convs) the split pays; on ethos-u55-256
/// (an Add costs 0.75 cycles per element, a conv's output stage 0.25) it
/// does not.
#[test]
fn synthetic_decisions_differ_by_target() {
    let pipeline = npuopt_passes::registry::hardware_pipeline();
    for (name, passes) in [("concat_conv", vec![PASS]), ("ghost_module", pipeline)] {
        eprintln!("{name}:");
        let by = decisions_by_target(&fixture(name), &passes);
        let applied = |t: &str| by[t].iter().any(|(_, a)| *a);
        assert!(applied("axera-m55h"), "{name}: {by:?}");
        assert!(!applied("ethos-u55-256"), "{name}: {by:?}");
    }
}

/// GhostNet (TorchScript export) under the default pipeline plus the
/// hardware passes: the Ghost modules' concats feeding a 1×1 conv are
/// split on some targets and kept on others, each decision explained with
/// both estimates, every result exact.
#[test]
fn ghostnet_decisions_differ_by_target() {
    let bytes = real_bytes("ghostnet_ts.onnx");
    let m = ModelProto::decode(bytes.as_slice()).unwrap();
    let passes = npuopt_passes::registry::hardware_pipeline();
    let by = decisions_by_target(&m, &passes);
    let first = "/blocks/blocks.0/blocks.0.0/ghost1/Concat";
    let last = "/blocks/blocks.8/blocks.8.2/ghost1/Concat";
    let get = |t: &str, n: &str| by[t].iter().find(|(x, _)| x == n).map(|(_, a)| *a);
    // The first Ghost module (16×16 maps, 8 + 8 channels): the concat copy
    // costs more than the extra conv on axera-m55h, less elsewhere.
    assert_eq!(get("axera-m55h", first), Some(true));
    assert_eq!(get("ethos-u55-256", first), Some(false));
    // The last ones (small maps, many channels): the other way round.
    assert_eq!(get("axera-m55h", last), Some(false));
    assert_eq!(get("ethos-u55-256", last), Some(true));
}

#[test]
fn must_not_fire() {
    // No target: nothing, not even a skip.
    let plain = run(&fixture("concat_conv"), &[PASS]);
    assert!(plain.report.changes.is_empty() && plain.report.skips.is_empty());
    // The concat is also read by something that is not a conv chain: it
    // would stay, so nothing is split.
    let mut b = ModelBuilder::new("concat_shared", 13);
    let x1 = b.input("x1", &[1, 8, 8, 8]);
    let x2 = b.input("x2", &[1, 8, 8, 8]);
    let c = b.concat(&[&x1, &x2], 1);
    let y = b.conv(&c, ConvSpec::new(4, 1));
    let p = b.global_avg_pool(&c);
    b.output(&y);
    b.output(&p);
    let run = run_on(&b.build(), &[PASS], "axera-m55h", &[PASS]);
    assert!(run.report.changes.is_empty());
    assert!(run.report.skips[0]
        .reason
        .contains("is not a per-channel op or a conv"));
    // A grouped conv of the concat.
    let mut b = ModelBuilder::new("concat_group", 13);
    let x1 = b.input("x1", &[1, 8, 8, 8]);
    let x2 = b.input("x2", &[1, 8, 8, 8]);
    let c = b.concat(&[&x1, &x2], 1);
    let y = b.conv(&c, ConvSpec::new(16, 3).pad(1).group(2));
    b.output(&y);
    let run = run_on(&b.build(), &[PASS], "axera-m55h", &[PASS]);
    assert!(run.report.changes.is_empty());
    assert!(run.report.skips[0].reason.contains("2 groups"));
    // A Sigmoid between (not per-channel affine, not Relu/Clip): silent.
    let mut b = ModelBuilder::new("concat_sigmoid", 13);
    let x1 = b.input("x1", &[1, 8, 8, 8]);
    let x2 = b.input("x2", &[1, 8, 8, 8]);
    let c = b.concat(&[&x1, &x2], 1);
    let c = b.sigmoid(&c);
    let y = b.conv(&c, ConvSpec::new(4, 1));
    b.output(&y);
    let run = run_on(&b.build(), &[PASS], "axera-m55h", &[PASS]);
    assert!(run.report.changes.is_empty() && run.report.skips.is_empty());
    // A concat on the spatial axis.
    let mut b = ModelBuilder::new("concat_h", 13);
    let x1 = b.input("x1", &[1, 8, 4, 8]);
    let x2 = b.input("x2", &[1, 8, 4, 8]);
    let c = b.concat(&[&x1, &x2], 2);
    let y = b.conv(&c, ConvSpec::new(4, 1));
    b.output(&y);
    let run = run_on(&b.build(), &[PASS], "axera-m55h", &[PASS]);
    assert!(run.report.changes.is_empty() && run.report.skips.is_empty());
}

/// A concat of `widths` inputs, then per-channel ops (`bn`, a per-channel
/// Mul, `relu`/Clip), then a conv (or two convs reading the same chain
/// start).
fn random_block(
    widths: &[i64],
    bn: bool,
    mul: bool,
    act: u8,
    k: i64,
    bias: bool,
    two_convs: bool,
) -> ModelProto {
    let mut b = ModelBuilder::new("random_concat_conv", 13);
    let xs: Vec<_> = widths
        .iter()
        .enumerate()
        .map(|(i, &c)| b.input(&format!("x{i}"), &[1, c, 6, 6]))
        .collect();
    let refs: Vec<_> = xs.iter().collect();
    let mut c = b.concat(&refs, 1);
    if bn {
        c = b.batch_norm(&c);
    }
    if mul {
        c = b.per_channel_mul(&c);
    }
    c = match act {
        1 => b.relu(&c),
        2 => b.clip(&c, 0.0, 0.5),
        _ => c,
    };
    let y = b.conv(&c, ConvSpec::new(5, k).pad(k / 2).bias(bias));
    b.output(&y);
    if two_convs {
        let z = b.conv(&c, ConvSpec::new(3, 1));
        b.output(&z);
    }
    b.build()
}

trait PerChannelMul {
    fn per_channel_mul(&mut self, x: &npuopt_fixtures::Var) -> npuopt_fixtures::Var;
}

impl PerChannelMul for ModelBuilder {
    fn per_channel_mul(&mut self, x: &npuopt_fixtures::Var) -> npuopt_fixtures::Var {
        let c = self.channels(x);
        let data: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 * 0.1).collect();
        self.mul_const(x, &[c, 1, 1], &data)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Random concat → per-channel ops → conv blocks, forced: the concat
    /// is always split (unless two convs share a chain op, which is not a
    /// linear chain) and the result is exact.
    #[test]
    fn random_blocks_split_exactly(
        widths in prop::collection::vec(1i64..6, 2..4),
        bn in any::<bool>(),
        mul in any::<bool>(),
        act in 0u8..3,
        k in prop::sample::select(vec![1i64, 3]),
        bias in any::<bool>(),
        two_convs in any::<bool>(),
    ) {
        let m = random_block(&widths, bn, mul, act, k, bias, two_convs);
        let run = run_on(&m, &[PASS], "cpu-generic", &[PASS]);
        let has_chain = bn || mul || act > 0;
        if two_convs && has_chain {
            prop_assert!(run.report.changes.is_empty());
        } else {
            prop_assert_eq!(run.report.changes.len(), 1, "{}", run.snapshot);
            prop_assert_eq!(count(&run.model, "Concat"), 0);
        }
        let v = verify(&run);
        prop_assert!(v.passed, "{:?}", v.outputs);
    }
}
