//! Target-specific support rules on the shared fixtures.

use npuopt_ir::import;
use npuopt_targets::{cost, Bound, FlagKind, Target};

#[test]
fn hexagon_runs_5x5_depthwise_on_the_cpu_and_says_so() {
    let g = import::from_proto(npuopt_fixtures::synthetic::depthwise_convs(), None)
        .unwrap()
        .graph;
    let t = Target::builtin("hexagon-htp").unwrap();
    let e = cost::estimate(&g, &t);
    let convs: Vec<_> = e.layers.iter().filter(|l| l.op == "Conv").collect();
    assert_eq!(convs.len(), 3);
    // 3×3 depthwise: on the NPU.
    assert!(convs[0].supported && convs[0].bound != Bound::Fallback);
    // 5×5 depthwise: CPU fallback.
    assert!(!convs[1].supported);
    assert_eq!(convs[1].bound, Bound::Fallback);
    // Multiplier 2 (16 → 32, G = 16): a group conv, CPU on Hexagon.
    assert!(!convs[2].supported);
    let f = e
        .flags
        .iter()
        .find(|f| f.layer == convs[1].name)
        .expect("the 5×5 depthwise is flagged");
    assert_eq!(f.kind, FlagKind::Fallback);
    assert!(
        f.message
            .starts_with("5×5 depthwise conv falls back to the CPU on hexagon-htp"),
        "{}",
        f.message
    );
    // The same model runs entirely on the Ethos-U55.
    let e = cost::estimate(&g, &Target::builtin("ethos-u55-256").unwrap());
    assert!(e.layers.iter().all(|l| l.supported), "{:#?}", e.layers);
}

#[test]
fn every_builtin_costs_every_synthetic_fixture() {
    for (name, proto) in npuopt_fixtures::synthetic::all() {
        let Ok(m) = import::from_proto(proto, None) else {
            continue;
        };
        for t in npuopt_targets::builtin_names() {
            let e = cost::estimate(&m.graph, &Target::builtin(t).unwrap());
            assert_eq!(e.layers.len(), m.graph.node_count(), "{name} on {t}");
            assert_eq!(
                e.total_cycles,
                e.layers.iter().map(|l| l.cycles).sum::<u64>()
            );
            for l in &e.layers {
                assert!(
                    l.executed_macs >= l.macs || !l.supported,
                    "{name} on {t}: {l:?}"
                );
                assert!(l.utilization <= 1.0 + 1e-9, "{name} on {t}: {l:?}");
            }
        }
    }
}
