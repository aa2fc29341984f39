//! Property test of the whole default pipeline on random graphs of Conv,
//! BatchNormalization, Add, Concat, Relu and per-channel Mul/Add/Div/Sub
//! with random channel counts,
//! kernels, groups, strides and pads: every result verifies with tract
//! against its input, the graph validates after every pass (the manager
//! checks), running twice gives the same dump and the same bytes, and the
//! result never has more executed MACs or weight bytes.

mod common;

use common::*;
use npuopt_fixtures::builder::{ConvSpec, ModelBuilder, Var};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Conv {
        src: usize,
        cout: i64,
        k: i64,
        stride: i64,
        extra_pad: bool,
        group_pick: usize,
        bias: bool,
    },
    Bn {
        src: usize,
    },
    Relu {
        src: usize,
    },
    Add {
        a: usize,
        b: usize,
    },
    Concat {
        a: usize,
        b: usize,
    },
    /// Mul, Add, Div or Sub by a per-channel constant (`op` picks).
    Affine {
        src: usize,
        op: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..8usize, 1..=12i64, prop::sample::select(vec![1i64, 3, 5]), prop::sample::select(vec![1i64, 1, 1, 2]), any::<bool>(), 0..4usize, any::<bool>())
            .prop_map(|(src, cout, k, stride, extra_pad, group_pick, bias)| Step::Conv { src, cout, k, stride, extra_pad, group_pick, bias }),
        2 => (0..8usize).prop_map(|src| Step::Bn { src }),
        1 => (0..8usize).prop_map(|src| Step::Relu { src }),
        2 => (0..8usize, 0..8usize).prop_map(|(a, b)| Step::Add { a, b }),
        1 => (0..8usize, 0..8usize).prop_map(|(a, b)| Step::Concat { a, b }),
        1 => (0..8usize, 0..4usize).prop_map(|(src, op)| Step::Affine { src, op }),
    ]
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Builds the model the steps describe; steps that cannot apply (shapes do
/// not match) are skipped.
fn build(steps: &[Step]) -> npuopt::ir::proto::ModelProto {
    let mut b = ModelBuilder::new("random", 13);
    let x = b.input("x", &[1, 4, 12, 12]);
    let mut live: Vec<Var> = vec![x];
    for s in steps {
        let pick = |i: usize, live: &Vec<Var>| live[i % live.len()].clone();
        let new = match s {
            Step::Conv {
                src,
                cout,
                k,
                stride,
                extra_pad,
                group_pick,
                bias,
            } => {
                let v = pick(*src, &live);
                let cin = b.channels(&v);
                let spatial = b.shape(&v)[2];
                if spatial < *k {
                    continue;
                }
                let common = gcd(cin, *cout);
                let divisors: Vec<i64> = (1..=common).filter(|d| common % d == 0).collect();
                let group = divisors[group_pick % divisors.len()];
                let pad = k / 2 + i64::from(*extra_pad);
                b.conv(
                    &v,
                    ConvSpec::new(*cout, *k)
                        .pad(pad)
                        .stride(*stride)
                        .group(group)
                        .bias(*bias),
                )
            }
            Step::Bn { src } => {
                let v = pick(*src, &live);
                b.batch_norm(&v)
            }
            Step::Relu { src } => {
                let v = pick(*src, &live);
                b.relu(&v)
            }
            Step::Add { a, b: c } => {
                let (va, vb) = (pick(*a, &live), pick(*c, &live));
                if b.shape(&va) != b.shape(&vb) {
                    continue;
                }
                b.add(&va, &vb)
            }
            Step::Concat { a, b: c } => {
                let (va, vb) = (pick(*a, &live), pick(*c, &live));
                if b.shape(&va)[2..] != b.shape(&vb)[2..] {
                    continue;
                }
                b.concat(&[&va, &vb], 1)
            }
            Step::Affine { src, op } => {
                let v = pick(*src, &live);
                let k = b.per_channel(&v, &format!("k{}", live.len()), 0.5, 1.5);
                match op {
                    0 => b.mul(&v, &k),
                    1 => b.add(&v, &k),
                    2 => b.div(&v, &k),
                    _ => b.sub(&v, &k),
                }
            }
        };
        live.push(new);
    }
    let last = live.last().unwrap().clone();
    b.output(&last);
    b.build()
}

fn check(steps: &[Step]) {
    let proto = build(steps);
    let passes = npuopt::default_passes();
    let r = run(&proto, &passes);
    // Without a target nothing gets heavier.
    let mut before = import_proto(&proto);
    npuopt::ir::infer::infer_types(&mut before.graph);
    let mut after =
        npuopt::ir::import::from_bytes(r.model.to_bytes().unwrap().into(), None).unwrap();
    npuopt::ir::infer::infer_types(&mut after.graph);
    let (fb, fa) = (
        npuopt_passes::footprint::Footprint::of(&before.graph),
        npuopt_passes::footprint::Footprint::of(&after.graph),
    );
    assert!(
        fa.executed_macs <= fb.executed_macs && fa.weight_bytes <= fb.weight_bytes,
        "{steps:?}: heavier {fb:?} → {fa:?}\n{}",
        r.snapshot
    );
    let v = verify(&r);
    assert!(v.passed, "{steps:?}\n{:?}\n{}", v.outputs, r.snapshot);
    let again = run(&proto, &passes);
    assert_eq!(r.snapshot, again.snapshot, "{steps:?}: not deterministic");
    assert_eq!(r.model.to_bytes().unwrap(), again.model.to_bytes().unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn default_pipeline_preserves_numerics(steps in prop::collection::vec(step(), 1..14)) {
        check(&steps);
    }
}
