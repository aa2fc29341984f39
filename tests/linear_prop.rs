//! Property test of the default pipeline on random linear heads: BN before
//! or after Gemm/MatMul layers (directly, or LeViT-style through a
//! Reshape), per-column scales, sums of parallel layers of one tensor and
//! a final division. Every result verifies with tract, never has more
//! executed MACs or weight bytes, and a head without a BN shared by two
//! layers keeps no BN.

mod common;

use common::*;
use npuopt_fixtures::{ModelBuilder, Var};
use npuopt_passes::footprint::Footprint;
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Branch {
    /// 0: Gemm, 1: Gemm transB, 2: MatMul, 3: MatMul + bias Add.
    kind: usize,
    scale: bool,
    bn_after: bool,
}

#[derive(Clone, Debug)]
struct Head {
    /// Rank 3 (`[1, T, K]`, MatMul only, BNs through a Reshape) or 2.
    rank3: bool,
    k: i64,
    n: i64,
    bn_before: bool,
    branches: Vec<Branch>,
    subtract: bool,
    divide: bool,
}

fn head() -> impl Strategy<Value = Head> {
    let branch =
        (0..4usize, any::<bool>(), any::<bool>()).prop_map(|(kind, scale, bn_after)| Branch {
            kind,
            scale,
            bn_after,
        });
    (
        any::<bool>(),
        2..9i64,
        2..9i64,
        any::<bool>(),
        prop::collection::vec(branch, 1..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(rank3, k, n, bn_before, branches, subtract, divide)| Head {
                rank3,
                k,
                n,
                bn_before,
                branches,
                subtract,
                divide,
            },
        )
}

const T: i64 = 5;

/// BN over the last axis: directly on rank 2, through `[T, C]` on rank 3.
fn bn_last(m: &mut ModelBuilder, v: &Var, rank3: bool, c: i64) -> Var {
    if rank3 {
        let f = m.reshape(v, &[T, c]);
        let b = m.batch_norm(&f);
        m.reshape(&b, &[1, T, c])
    } else {
        m.batch_norm(v)
    }
}

fn build(h: &Head) -> npuopt::ir::proto::ModelProto {
    let mut m = ModelBuilder::new("head", 13);
    let x = if h.rank3 {
        m.input("x", &[1, T, h.k])
    } else {
        m.input("x", &[3, h.k])
    };
    let x = if h.bn_before {
        bn_last(&mut m, &x, h.rank3, h.k)
    } else {
        x
    };
    let mut outs = Vec::new();
    for (i, b) in h.branches.iter().enumerate() {
        let kind = if h.rank3 { 2 + b.kind % 2 } else { b.kind };
        let mut y = match kind {
            0 => m.gemm(&x, h.n, false),
            1 => m.gemm(&x, h.n, true),
            2 => m.matmul(&x, h.n),
            _ => {
                let y = m.matmul(&x, h.n);
                let bias = m.random_weight(&format!("bias{i}"), &[h.n], -0.5, 0.5);
                m.add(&y, &bias)
            }
        };
        if b.scale {
            let k = m.random_weight(&format!("scale{i}"), &[h.n], 0.5, 1.5);
            y = m.mul(&y, &k);
        }
        if b.bn_after {
            y = bn_last(&mut m, &y, h.rank3, h.n);
        }
        outs.push(y);
    }
    let mut acc = outs[0].clone();
    for (i, o) in outs.iter().enumerate().skip(1) {
        acc = if h.subtract && i == 1 {
            m.sub(&acc, o)
        } else {
            m.add(&acc, o)
        };
    }
    if h.divide {
        let two = m.weight("two", &[], &[2.0]);
        acc = m.div(&acc, &two);
    }
    let y = m.relu(&acc);
    m.output(&y);
    m.build()
}

fn check(h: &Head) {
    let proto = build(h);
    let passes = npuopt::default_passes();
    let r = run(&proto, &passes);
    let v = verify(&r);
    assert!(v.passed, "{h:?}\n{:?}\n{}", v.outputs, r.snapshot);
    let mut before = import_proto(&proto);
    npuopt::ir::infer::infer_types(&mut before.graph);
    let mut after = r.model.clone();
    npuopt::ir::infer::infer_types(&mut after.graph);
    let (fb, fa) = (Footprint::of(&before.graph), Footprint::of(&after.graph));
    assert!(
        fa.executed_macs <= fb.executed_macs && fa.weight_bytes <= fb.weight_bytes,
        "{h:?}: heavier {fb:?} → {fa:?}\n{}",
        r.snapshot
    );
    // A BN before several layers is read by each: it stays (no copy).
    if !(h.bn_before && h.branches.len() > 1) {
        assert_eq!(
            count(&r.model, "BatchNormalization"),
            0,
            "{h:?}\n{}",
            r.snapshot
        );
    }
    // Parallel layers of one tensor end as one.
    let linear = count(&r.model, "Gemm") + count(&r.model, "MatMul");
    assert_eq!(linear, 1, "{h:?}\n{}", r.snapshot);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_linear_heads_fold_and_merge_exactly(h in head()) {
        check(&h);
    }
}
