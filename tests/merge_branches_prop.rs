//! Property test of merge-branches on random Add/Sum-of-branches blocks
//! (kernels 1/3/5, groups 1/2/depthwise, strides 1/2, centred or shifted
//! pads, dilation, identity and BN branches, BN after a conv or not):
//! every merge preserves numerics (tract), every case the pass leaves
//! alone is left exactly as it was, and every block built to be mergeable
//! is merged.

mod common;

use common::*;
use npuopt::ir::proto::ModelProto;
use npuopt_fixtures::{ConvSpec, ModelBuilder};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Branch {
    Conv {
        k: i64,
        /// 0: G = 1, 1: G = 2, 2: depthwise.
        groups: u8,
        /// Pads all at the end instead of centred (k ≥ 3): same output
        /// shape, shifted window.
        shift: bool,
        dilated: bool,
        bn: bool,
        bias: bool,
    },
    Identity,
    Bn,
}

#[derive(Clone, Debug)]
struct Case {
    c: i64,
    hw: i64,
    stride: i64,
    branches: Vec<Branch>,
    sum: bool,
    seed: u64,
}

impl Case {
    fn build(&self) -> ModelProto {
        let mut m = ModelBuilder::new("prop_block", 13);
        m.seed(self.seed);
        let x = m.input("x", &[1, self.c, self.hw, self.hw]);
        let mut ys = Vec::new();
        for b in &self.branches {
            ys.push(match b {
                Branch::Identity => x.clone(),
                Branch::Bn => m.batch_norm(&x),
                Branch::Conv {
                    k,
                    groups,
                    shift,
                    dilated,
                    bn,
                    bias,
                } => {
                    let g = match groups {
                        0 => 1,
                        1 => 2,
                        _ => self.c,
                    };
                    let d = if *dilated { 2 } else { 1 };
                    let p = d * (k - 1) / 2;
                    let pads = if *shift { [0, 0, 2 * p, 2 * p] } else { [p; 4] };
                    let spec = ConvSpec::new(self.c, *k)
                        .pads(pads)
                        .stride(self.stride)
                        .dilation(d)
                        .group(g)
                        .bias(*bias);
                    let y = m.conv(&x, spec);
                    if *bn {
                        m.batch_norm(&y)
                    } else {
                        y
                    }
                }
            });
        }
        let y = if self.sum {
            let refs: Vec<_> = ys.iter().collect();
            m.sum(&refs)
        } else {
            let mut acc = m.add(&ys[0], &ys[1]);
            for y in &ys[2..] {
                acc = m.add(&acc, y);
            }
            acc
        };
        m.output(&y);
        m.build()
    }

    /// At least one branch is a conv or a BN.
    fn has_linear(&self) -> bool {
        self.branches.iter().any(|b| !matches!(b, Branch::Identity))
    }

    /// Built to satisfy every precondition.
    fn mergeable(&self) -> bool {
        let linear = self.has_linear();
        let clean = self.branches.iter().all(|b| match b {
            Branch::Conv {
                k, shift, dilated, ..
            } => !(*dilated || *shift && *k > 1),
            _ => true,
        });
        linear && clean
    }
}

fn branch() -> impl Strategy<Value = Branch> {
    prop_oneof![
        4 => (
            prop::sample::select(vec![1i64, 3, 5]),
            0u8..3,
            prop::bool::weighted(0.15),
            prop::bool::weighted(0.1),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(k, groups, shift, dilated, bn, bias)| Branch::Conv {
                k,
                groups,
                shift,
                dilated,
                bn,
                bias,
            }),
        1 => Just(Branch::Identity),
        1 => Just(Branch::Bn),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(vec![4i64, 8]),
        prop::sample::select(vec![7i64, 8]),
        1i64..=2,
        prop::collection::vec(branch(), 2..=4),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(c, hw, stride, mut branches, sum, seed)| {
            if stride > 1 {
                // Identity and BN(x) keep the input's shape: with stride 2
                // they would not add up. Use a 1×1 conv instead.
                for b in &mut branches {
                    if matches!(b, Branch::Identity | Branch::Bn) {
                        *b = Branch::Conv {
                            k: 1,
                            groups: 0,
                            shift: false,
                            dilated: false,
                            bn: true,
                            bias: false,
                        };
                    }
                }
            }
            Case {
                c,
                hw,
                stride,
                branches,
                sum,
                seed,
            }
        })
}

fn check(case: &Case) {
    let m = case.build();
    // The algebra, whatever the cost: a merge that makes the model heavier
    // (a grouped 5×5 beside a dense 1×1 becomes a dense 5×5) is refused
    // without a target (tests/no_heavier.rs), so it is forced on one here.
    let r = run_with(
        &m,
        &["merge-branches"],
        npuopt_passes::PipelineOptions {
            gate: gate(
                Some("edgetpu"),
                npuopt_passes::Intent::Deploy,
                &["merge-branches"],
            ),
            ..Default::default()
        },
    );
    let merged = r.report.changes.iter().any(|c| c.pass == "merge-branches");
    if merged {
        // A full merge, or a partial one of a mergeable inner sum.
        assert_verified(&r, &format!("{case:?}"));
    } else {
        assert_eq!(
            npuopt::ir::dump::dump(&r.model.graph).unwrap(),
            npuopt::ir::dump::dump(&import_proto(&m).graph).unwrap(),
            "{case:?}: changed without a recorded rewrite"
        );
    }
    if case.mergeable() {
        assert_eq!(r.model.graph.node_count(), 1, "{case:?}\n{}", r.snapshot);
        assert_eq!(count(&r.model, "Conv"), 1, "{case:?}\n{}", r.snapshot);
    } else if r.model.graph.node_count() > 1 && case.has_linear() {
        // The top combination was refused: the report says why.
        assert!(
            r.report.skips.iter().any(|s| s.pass == "merge-branches"),
            "{case:?}: refused without a reason\n{}",
            r.snapshot
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_branch_blocks(case in case()) {
        check(&case);
    }
}

/// Found by the property test (an oracle bug, not a pass bug): the top Add
/// holds a shifted 3×3 window and is refused; the inner Add of a 1×1+BN and
/// a 3×3+BN still merges, exactly.
#[test]
fn pinned_partial_merge_below_a_refused_top() {
    check(&Case {
        c: 4,
        hw: 8,
        stride: 2,
        branches: vec![
            Branch::Conv {
                k: 1,
                groups: 0,
                shift: false,
                dilated: false,
                bn: true,
                bias: false,
            },
            Branch::Conv {
                k: 3,
                groups: 0,
                shift: false,
                dilated: false,
                bn: true,
                bias: false,
            },
            Branch::Conv {
                k: 3,
                groups: 2,
                shift: true,
                dilated: false,
                bn: false,
                bias: false,
            },
        ],
        sum: false,
        seed: 12602055272633408229,
    });
}
