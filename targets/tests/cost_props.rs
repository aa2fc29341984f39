//! Properties of the cost model on random conv chains, for every built-in
//! target:
//! * `cost::totals` (the gate's lean walk) agrees with `cost::estimate`;
//! * weight prefetch never makes an estimate worse: a transfer moved under
//!   the previous layer can only shorten the layer that waited for it.

use npuopt_fixtures::builder::{ConvSpec, ModelBuilder};
use npuopt_ir::{import, Graph};
use npuopt_targets::{builtin_names, builtin_text, cost, Target};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Layer {
    out: i64,
    k: i64,
    stride: i64,
    depthwise: bool,
    relu: bool,
}

fn layer() -> impl Strategy<Value = Layer> {
    (
        1i64..=96,
        prop_oneof![Just(1i64), Just(3), Just(5)],
        1i64..=2,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(out, k, stride, depthwise, relu)| Layer {
            out,
            k,
            stride,
            depthwise,
            relu,
        })
}

fn chain(cin: i64, hw: i64, layers: &[Layer]) -> Graph {
    let mut b = ModelBuilder::new("chain", 13);
    let mut x = b.input("x", &[1, cin, hw, hw]);
    for l in layers {
        let spec = if l.depthwise {
            ConvSpec::new(b.channels(&x), l.k).depthwise()
        } else {
            ConvSpec::new(l.out, l.k)
        };
        x = b.conv(&x, spec.pad(l.k / 2).stride(l.stride).bias(true));
        if l.relu {
            x = b.relu(&x);
        }
    }
    b.output(&x);
    import::from_proto(b.build(), None).unwrap().graph
}

fn without_prefetch(name: &str) -> Target {
    let text = builtin_text(name).unwrap();
    Target::from_toml(
        &text.replace("weight_prefetch = true", "weight_prefetch = false"),
        "no-prefetch.toml",
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn totals_agree_and_prefetch_never_hurts(
        cin in 1i64..=48,
        hw in 4i64..=40,
        layers in prop::collection::vec(layer(), 1..8),
    ) {
        let g = chain(cin, hw, &layers);
        for name in builtin_names() {
            let t = Target::builtin(name).unwrap();
            let full = cost::estimate(&g, &t);
            let lean = cost::totals(&g, &t);
            prop_assert_eq!(full.total_cycles, lean.total_cycles, "{}", name);
            prop_assert_eq!(full.unsized_layers, lean.unsized_layers.len());
            let off = cost::totals(&g, &without_prefetch(name));
            prop_assert!(lean.total_cycles <= off.total_cycles, "{}: {} > {}", name, lean.total_cycles, off.total_cycles);
        }
    }
}
