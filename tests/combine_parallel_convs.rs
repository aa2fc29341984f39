//! combine-parallel-convs: snapshot + tract check on the parallel-convs and
//! SqueezeNet fire fixtures, and the cases that must not fire.
//!
//! Stacking a 1×1 beside a 3×3 makes it a 3×3: heavier, so without a
//! target these combinations are refused (`heavier_is_refused_without_a_target`)
//! and the rewrite itself is exercised with `--force-pass` on a target.

mod common;

use common::*;
use npuopt::ir::proto::ModelProto;
use npuopt_fixtures::{ConvSpec, ModelBuilder};
use npuopt_passes::{Intent, PipelineOptions};

const PASS: &[&str] = &["combine-parallel-convs", "eliminate-dead"];

/// The pass forced on a target: applied whatever the cost model says.
fn forced(m: &ModelProto) -> Run {
    run_with(
        m,
        PASS,
        PipelineOptions {
            gate: gate(Some("edgetpu"), Intent::Deploy, &["combine-parallel-convs"]),
            ..Default::default()
        },
    )
}

fn mine(r: &Run) -> usize {
    r.report
        .changes
        .iter()
        .filter(|c| c.pass == "combine-parallel-convs")
        .count()
}

#[test]
fn parallel_convs_concat() {
    let r = forced(&fixture("parallel_convs_concat"));
    assert_eq!(count(&r.model, "Conv"), 1, "{}", r.snapshot);
    assert_eq!(count(&r.model, "Concat"), 0);
    assert_verified(&r, "parallel_convs_concat");
    insta::assert_snapshot!("combine_parallel_convs_concat", r.snapshot);
}

#[test]
fn squeezenet_fire() {
    let r = forced(&fixture("squeezenet_fire"));
    // Squeeze conv + one combined expand conv; one ReLU after each.
    assert_eq!(count(&r.model, "Conv"), 2, "{}", r.snapshot);
    assert_eq!(count(&r.model, "Relu"), 2, "{}", r.snapshot);
    assert_eq!(count(&r.model, "Concat"), 0);
    assert_verified(&r, "squeezenet_fire");
    insta::assert_snapshot!("combine_parallel_convs_fire", r.snapshot);
}

fn refused(m: &ModelProto) -> Vec<String> {
    let r = run(m, &["combine-parallel-convs"]);
    assert_eq!(mine(&r), 0, "{:?}", r.report.changes);
    assert_eq!(
        npuopt::ir::dump::dump(&r.model.graph).unwrap(),
        npuopt::ir::dump::dump(&import_proto(m).graph).unwrap()
    );
    r.report
        .skips
        .iter()
        .filter(|s| s.pass == "combine-parallel-convs")
        .map(|s| s.reason.clone())
        .collect()
}

fn concat_of(specs: &[ConvSpec], acts: &[Option<(f32, f32)>]) -> ModelProto {
    let mut m = ModelBuilder::new("concat_of", 13);
    let x = m.input("x", &[1, 4, 12, 12]);
    let mut ys = Vec::new();
    for (s, a) in specs.iter().zip(acts) {
        let y = m.conv(&x, s.clone());
        ys.push(match a {
            None => y,
            Some((lo, hi)) if *lo == 0.0 && *hi == f32::MAX => m.relu(&y),
            Some((lo, hi)) => m.clip(&y, *lo, *hi),
        });
    }
    let refs: Vec<_> = ys.iter().collect();
    let y = m.concat(&refs, 1);
    m.output(&y);
    m.build()
}

#[test]
fn grouped_convs_are_refused() {
    let m = concat_of(
        &[ConvSpec::new(4, 3).pad(1).group(2), ConvSpec::new(4, 1)],
        &[None, None],
    );
    let why = refused(&m);
    assert!(why.iter().any(|w| w.contains("groups")), "{why:?}");
}

#[test]
fn different_strides_are_refused() {
    // Equal output sizes: 4×4 stride 3 and 1×1 stride 4 on 12×12.
    let m = concat_of(
        &[ConvSpec::new(4, 4).stride(3), ConvSpec::new(4, 1).stride(4)],
        &[None, None],
    );
    let why = refused(&m);
    assert!(why.iter().any(|w| w.contains("strides")), "{why:?}");
}

#[test]
fn different_clip_bounds_are_refused() {
    let m = concat_of(
        &[ConvSpec::new(4, 3).pad(1), ConvSpec::new(4, 1)],
        &[Some((0.0, 6.0)), Some((0.0, 4.0))],
    );
    let why = refused(&m);
    assert!(why.iter().any(|w| w.contains("element-wise")), "{why:?}");
}

#[test]
fn identical_clips_move_after_the_combined_conv() {
    let m = concat_of(
        &[ConvSpec::new(4, 3).pad(1).bias(true), ConvSpec::new(6, 1)],
        &[Some((0.0, 6.0)), Some((0.0, 6.0))],
    );
    let r = forced(&m);
    assert_eq!(count(&r.model, "Conv"), 1, "{}", r.snapshot);
    assert_eq!(count(&r.model, "Clip"), 1, "{}", r.snapshot);
    assert_verified(&r, "clips");
}

#[test]
fn a_conv_read_elsewhere_is_left_alone() {
    let mut m = ModelBuilder::new("shared", 13);
    let x = m.input("x", &[1, 4, 12, 12]);
    let a = m.conv(&x, ConvSpec::new(4, 3).pad(1));
    let b = m.conv(&x, ConvSpec::new(4, 1));
    let y = m.concat(&[&a, &b], 1);
    m.output(&y);
    m.output(&b);
    refused(&m.build());
}

#[test]
fn convs_of_different_inputs_are_left_alone() {
    let mut m = ModelBuilder::new("two_inputs", 13);
    let x = m.input("x", &[1, 4, 12, 12]);
    let z = m.input("z", &[1, 4, 12, 12]);
    let a = m.conv(&x, ConvSpec::new(4, 3).pad(1));
    let b = m.conv(&z, ConvSpec::new(4, 1));
    let y = m.concat(&[&a, &b], 1);
    m.output(&y);
    refused(&m.build());
}

#[test]
fn heavier_is_refused_without_a_target() {
    for name in ["parallel_convs_concat", "squeezenet_fire"] {
        let why = refused(&fixture(name));
        assert!(
            why.iter()
                .any(|w| w.contains("executed MACs") && w.contains("without --target")),
            "{name}: {why:?}"
        );
    }
}

#[test]
fn equal_kernels_combine_without_a_target() {
    // Two 3×3 convs stacked: the same MACs and weights, one conv fewer.
    let m = concat_of(
        &[
            ConvSpec::new(4, 3).pad(1).bias(true),
            ConvSpec::new(6, 3).pad(1).bias(true),
        ],
        &[None, None],
    );
    let r = run(&m, PASS);
    assert_eq!(mine(&r), 1, "{:?}", r.report.skips);
    assert_eq!(count(&r.model, "Conv"), 1, "{}", r.snapshot);
    assert_verified(&r, "equal kernels");
}
