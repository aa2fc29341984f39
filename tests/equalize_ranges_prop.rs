//! Property test of equalize-ranges on random chains of convs (kernels 1/3,
//! dense / grouped / depthwise, channel ranges spread up to 300×) joined by
//! the ops it may cross (Relu, LeakyRelu, PRelu, MaxPool, Identity,
//! nothing) or must not (Clip): every rewrite preserves numerics (tract),
//! leaves every equalized pair with equal ranges on both sides of each
//! channel, and a second run finds nothing to do; a chain with a Clip is
//! equalized only on the pairs the Clip does not separate.

mod common;

use common::*;
use npuopt::ir::proto::ModelProto;
use npuopt::ir::Graph;
use npuopt_fixtures::{ConvSpec, ModelBuilder, PoolSpec};
use npuopt_passes::linear_layer::LinearLayer;
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Between {
    Nothing,
    Relu,
    LeakyRelu,
    PRelu,
    MaxPool,
    Identity,
    Clip,
}

#[derive(Clone, Debug)]
struct Layer {
    cout: i64,
    k: i64,
    /// 0: G = 1, 1: G = 2 (when channels allow), 2: depthwise (keeps
    /// the channel count).
    groups: u8,
    spread: f32,
    then: Between,
}

#[derive(Clone, Debug)]
struct Case {
    cin: i64,
    layers: Vec<Layer>,
    seed: u64,
}

impl Case {
    fn build(&self) -> ModelProto {
        let mut m = ModelBuilder::new("prop_chain", 13);
        m.seed(self.seed);
        let mut x = m.input("x", &[1, self.cin, 8, 8]);
        let mut c = self.cin;
        for (i, l) in self.layers.iter().enumerate() {
            let (g, cout) = match l.groups {
                2 => (c, c),
                1 if c % 2 == 0 && l.cout % 2 == 0 => (2, l.cout),
                _ => (1, l.cout),
            };
            let w = m.unbalanced_weight(
                &format!("l{i}.weight"),
                &[cout, c / g, l.k, l.k],
                c / g * l.k * l.k,
                0,
                l.spread,
            );
            let b: Vec<f32> = (0..cout).map(|j| 0.05 * (j % 5) as f32 - 0.1).collect();
            let b = m.weight(&format!("l{i}.bias"), &[cout], &b);
            let spec = ConvSpec::new(cout, l.k).pad(l.k / 2).group(g);
            x = m.conv_with(&x, &w, Some(&b), &spec);
            c = cout;
            if i + 1 == self.layers.len() {
                break;
            }
            x = match l.then {
                Between::Nothing => x,
                Between::Relu => m.relu(&x),
                Between::Identity => m.identity(&x),
                Between::Clip => m.clip(&x, 0.0, 6.0),
                Between::MaxPool => m.max_pool(&x, PoolSpec::new(3).stride(1).pad(1)),
                Between::LeakyRelu => m.leaky_relu(&x, 0.2),
                Between::PRelu => {
                    let s: Vec<f32> = (0..c).map(|j| 0.03 * j as f32).collect();
                    m.prelu(&x, &s)
                }
            };
        }
        m.output(&x);
        m.build()
    }

    /// How many pairs the pass may equalize: neighbours not separated by
    /// a Clip.
    fn equalizable_pairs(&self) -> usize {
        self.layers[..self.layers.len() - 1]
            .iter()
            .filter(|l| !matches!(l.then, Between::Clip))
            .count()
    }
}

fn layer() -> impl Strategy<Value = Layer> {
    (
        prop::sample::select(vec![4i64, 6, 8, 12]),
        prop::sample::select(vec![1i64, 3]),
        0u8..3,
        prop::sample::select(vec![1.0f32, 10.0, 300.0]),
        prop::sample::select(vec![
            Between::Nothing,
            Between::Relu,
            Between::LeakyRelu,
            Between::PRelu,
            Between::MaxPool,
            Between::Identity,
            Between::Clip,
        ]),
    )
        .prop_map(|(cout, k, groups, spread, then)| Layer {
            cout,
            k,
            groups,
            spread,
            then,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(vec![3i64, 4, 8]),
        prop::collection::vec(layer(), 2..5),
        any::<u64>(),
    )
        .prop_map(|(cin, layers, seed)| Case { cin, layers, seed })
}

/// For each conv whose output feeds the next conv through ops the pass
/// crosses, the output range of each channel and the range of the weights
/// that read it are within a factor `e^tol` of each other.
fn balanced(g: &Graph, case: &Case, tol: f64) -> Result<(), String> {
    let convs: Vec<_> = g
        .topo_order()
        .unwrap()
        .into_iter()
        .filter(|&n| g.node(n).op_type() == "Conv")
        .collect();
    for (i, pair) in convs.windows(2).enumerate() {
        if matches!(case.layers[i].then, Between::Clip) {
            continue;
        }
        let a = LinearLayer::read(g, pair[0]).unwrap();
        let b = LinearLayer::read(g, pair[1]).unwrap();
        for ch in 0..a.out_channels {
            let (r1, r2) = (a.out_range(ch), b.in_range(ch));
            if (r1 / r2).ln().abs() > tol {
                return Err(format!("pair {i} channel {ch}: ranges {r1} and {r2}"));
            }
        }
    }
    Ok(())
}

fn check(case: &Case) {
    let proto = case.build();
    let r = run(&proto, &["equalize-ranges"]);
    let pairs: usize = r.report.changes.iter().map(|c| c.matched.len() - 1).sum();
    assert!(
        pairs <= case.equalizable_pairs(),
        "{case:?}\n{}",
        r.snapshot
    );
    if pairs == 0 {
        assert_eq!(r.model.to_bytes().unwrap(), r.before, "{case:?}");
    } else {
        // Power-of-two scales commute with every rounding: the rewritten
        // chain computes the input's bits, not merely values within noise.
        let v = verify(&r);
        assert!(
            v.passed && v.outputs.iter().all(|o| o.verdict == "exact"),
            "{case:?}: {:?}",
            v.outputs
        );
    }
    // Each pair's step moves a channel by a power of two until its ideal
    // scale is within 2^(0.5 + margin): the two ranges of a channel end
    // within a factor 2^(1 + 2·margin), as in a chain left alone.
    let margin = npuopt_passes::passes::equalize_ranges::ALREADY_EQUAL_LOG2;
    let tol = (1.0 + 2.0 * margin) * std::f64::consts::LN_2 + 1e-9;
    if let Err(e) = balanced(&r.model.graph, case, tol) {
        panic!("{e}\n{case:?}\n{}", r.snapshot);
    }
    let mut again = r.model.clone();
    let second =
        npuopt_passes::run_pipeline(&mut again, &["equalize-ranges"], Default::default()).unwrap();
    assert!(second.changes.is_empty(), "{case:?}: {:?}", second.changes);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_conv_chains(case in case()) {
        check(&case);
    }
}
