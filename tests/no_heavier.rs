//! "Without a target, nothing gets heavier": the default pipeline never
//! raises executed MACs, weight bytes or peak activation bytes, on every
//! committed fixture (synthetic and real exports). With a target, a
//! heavier rewrite must win by more than the target's margin, and the
//! decision says so.

mod common;

use common::*;
use npuopt::ir::Model;
use npuopt_passes::footprint::Footprint;
use npuopt_passes::{Intent, PipelineOptions};

fn footprint(m: &mut Model) -> Footprint {
    npuopt::ir::infer::infer_types(&mut m.graph);
    Footprint::of(&m.graph)
}

fn check(what: &str, mut m: Model) -> Vec<String> {
    let before = footprint(&mut m);
    let passes = npuopt_passes::resolve_pass_list(None, None).unwrap();
    npuopt_passes::run_pipeline(&mut m, &passes, Default::default())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let after = footprint(&mut m);
    let mut bad = Vec::new();
    if after.executed_macs > before.executed_macs {
        bad.push(format!(
            "{what}: executed MACs {} → {}",
            before.executed_macs, after.executed_macs
        ));
    }
    if after.weight_bytes > before.weight_bytes {
        bad.push(format!(
            "{what}: weight bytes {} → {}",
            before.weight_bytes, after.weight_bytes
        ));
    }
    if after.peak_activation_bytes > before.peak_activation_bytes {
        bad.push(format!(
            "{what}: peak activation bytes {} → {}",
            before.peak_activation_bytes, after.peak_activation_bytes
        ));
    }
    bad
}

#[test]
fn the_default_pipeline_never_adds_work_on_any_fixture() {
    let mut bad = Vec::new();
    let mut seen = 0;
    for (name, proto) in npuopt_fixtures::synthetic::all() {
        bad.extend(check(name, import_proto(&proto)));
        seen += 1;
    }
    for path in npuopt_fixtures::real_fixtures() {
        let bytes = std::fs::read(&path).unwrap();
        let m = npuopt::ir::import::from_bytes(bytes.into(), None).expect("imports");
        bad.extend(check(&path.display().to_string(), m));
        seen += 1;
    }
    assert!(seen > 50, "only {seen} fixtures");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

fn squeezenet() -> Model {
    npuopt::ir::import::from_bytes(real_bytes("squeezenet_fire_ts.onnx").into(), None).unwrap()
}

#[test]
fn fire_modules_are_not_combined_without_a_target() {
    let mut m = squeezenet();
    let before = footprint(&mut m);
    let passes = npuopt_passes::resolve_pass_list(None, None).unwrap();
    let r = npuopt_passes::run_pipeline(&mut m, &passes, Default::default()).unwrap();
    assert!(
        !r.changes.iter().any(|c| c.pass == "combine-parallel-convs"),
        "{:?}",
        r.changes
    );
    let skips: Vec<_> = r
        .skips
        .iter()
        .filter(|s| s.pass == "combine-parallel-convs")
        .collect();
    assert_eq!(skips.len(), 8, "{skips:?}");
    for s in skips {
        assert!(
            s.reason.contains("executed MACs") && s.reason.contains("without --target"),
            "{}",
            s.reason
        );
    }
    assert_eq!(footprint(&mut m).executed_macs, before.executed_macs);
}

#[test]
fn a_heavier_rewrite_with_a_target_is_decided_with_the_margin() {
    let mut m = squeezenet();
    let passes = npuopt_passes::resolve_pass_list(Some("combine-parallel-convs"), None).unwrap();
    let opts = PipelineOptions {
        gate: gate(Some("edgetpu"), Intent::Deploy, &[]),
        ..Default::default()
    };
    let r = npuopt_passes::run_pipeline(&mut m, &passes, opts).unwrap();
    let ds: Vec<_> = r
        .decisions
        .iter()
        .filter(|d| d.pass == "combine-parallel-convs")
        .collect();
    assert_eq!(ds.len(), 8, "{ds:?}");
    for d in ds {
        let (growth, margin) = d.heavier.as_ref().expect("a heavier proposal");
        assert_eq!(*margin, 0.02);
        assert!(growth.contains("executed MACs"), "{growth}");
        let gain = 1.0 - d.cycles_after as f64 / d.cycles_before as f64;
        // Applied exactly when the estimate falls by more than the margin.
        assert_eq!(d.applied, gain > 0.02, "{d:?}");
        if !d.applied {
            assert!(d.reason.contains("2.0% margin"), "{}", d.reason);
        }
    }
}

#[test]
fn a_larger_margin_rejects_what_a_smaller_one_accepts() {
    let run = |margin: f64| {
        let mut t = npuopt_targets::Target::builtin("edgetpu").unwrap();
        t.cost.heavier_margin = margin;
        let mut m = squeezenet();
        let passes =
            npuopt_passes::resolve_pass_list(Some("combine-parallel-convs"), None).unwrap();
        let mut g = gate(None, Intent::Deploy, &[]);
        g.target = Some(std::sync::Arc::new(t));
        let opts = PipelineOptions {
            gate: g,
            ..Default::default()
        };
        let r = npuopt_passes::run_pipeline(&mut m, &passes, opts).unwrap();
        r.decisions.iter().filter(|d| d.applied).count()
    };
    // The larger the margin, the fewer heavier combinations pass.
    let (any_gain, two_pct, most) = (run(0.0), run(0.02), run(0.99));
    assert!(any_gain > 0, "no fire module gains on edgetpu");
    assert!(
        any_gain >= two_pct && two_pct >= most,
        "{any_gain} {two_pct} {most}"
    );
    assert_eq!(most, 0);
}
