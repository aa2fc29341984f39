//! The cost gate: `PassContext::propose` without and with a target, the
//! MAC-growing `merge-sequential-convs` decided by the cost model, and the
//! command line (`--target`, `--intent`, `--force-pass`, the report).

mod common;

use std::process::Command;

use common::*;
use npuopt::ir::Model;
use npuopt_passes::manager::run_passes;
use npuopt_passes::{
    Change, Intent, Outcome, Pass, PassContext, PassError, PipelineOptions, Proposal,
};

/// A pass that proposes one do-nothing-harmful rewrite per run: renames
/// nothing, adds nothing — `apply` either refuses or returns a change.
struct Probe {
    refuse: bool,
}

impl Pass for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn description(&self) -> &'static str {
        "test"
    }
    fn run(&self, model: &mut Model, cx: &mut PassContext) -> Result<(), PassError> {
        let refuse = self.refuse;
        let outcome = cx.propose(
            &mut model.graph,
            Proposal {
                pass: "probe",
                rule: "probe",
                node: "n",
                adds_capacity: false,
                veto: None,
            },
            |_| {
                if refuse {
                    Err("refused".into())
                } else {
                    Ok(Change::new("probe", "probe", &["n"], "nothing".into()))
                }
            },
        );
        let expected = match (cx.target().is_some(), refuse) {
            (false, _) => Outcome::NotRun,
            (true, true) => Outcome::Refused,
            (true, false) if cx.is_forced("probe") => Outcome::Applied,
            // The graph is unchanged: a tie, which deploy rejects.
            (true, false) => Outcome::Rejected,
        };
        assert_eq!(outcome, expected);
        Ok(())
    }
}

#[test]
fn propose_without_a_target_does_nothing() {
    let mut m = import_proto(&fixture("conv_bn"));
    let passes: Vec<Box<dyn Pass>> = vec![Box::new(Probe { refuse: false })];
    let r = run_passes(&mut m, &passes, &mut PipelineOptions::default()).unwrap();
    assert!(r.changes.is_empty() && r.skips.is_empty() && r.decisions.is_empty());
}

#[test]
fn propose_records_ties_refusals_and_forced_rewrites() {
    let passes: Vec<Box<dyn Pass>> = vec![Box::new(Probe { refuse: false })];
    let mut m = import_proto(&fixture("conv_bn"));
    let mut opts = PipelineOptions {
        gate: gate(Some("ethos-u55-256"), Intent::Deploy, &[]),
        ..Default::default()
    };
    let r = run_passes(&mut m, &passes, &mut opts).unwrap();
    assert_eq!(
        r.decisions.len(),
        1,
        "a rejection repeated per iteration appears once"
    );
    let d = &r.decisions[0];
    assert!(!d.applied && d.cycles_before == d.cycles_after);
    assert!(
        d.reason.starts_with("no estimated gain on ethos-u55-256"),
        "{}",
        d.reason
    );
    assert_eq!(r.skips[0].reason, d.reason);

    let refusing: Vec<Box<dyn Pass>> = vec![Box::new(Probe { refuse: true })];
    let r = run_passes(&mut m, &refusing, &mut opts).unwrap();
    assert!(r.decisions.is_empty());
    assert_eq!(r.skips[0].reason, "refused");

    // Forced: applied whatever the estimate, and said so. (The probe would
    // apply forever: cap the iterations.)
    let mut opts = PipelineOptions {
        gate: gate(Some("ethos-u55-256"), Intent::Deploy, &["probe"]),
        max_iterations: Some(1),
        ..Default::default()
    };
    let r = run_passes(&mut m, &passes, &mut opts).unwrap();
    assert_eq!(r.changes.len(), 1);
    assert!(r.changes[0].note.ends_with("(forced by --force-pass)"));
    assert!(r.decisions[0].applied && r.decisions[0].forced);
}

/// MobileDets' fused inverted bottleneck: 1×1 → depthwise 3×3 merged into
/// one dense 3×3 adds MACs; without a target it is a skip with both MAC
/// figures, with one the cost model decides — and explains — per target,
/// accepting the heavier model only for a gain beyond the target's margin.
#[test]
fn mac_growing_merges_are_decided_by_the_cost_model() {
    let m = fixture("conv_1x1_then_dw");
    let plain = run(&m, &["merge-sequential-convs"]);
    assert!(plain.report.changes.is_empty());
    assert!(plain.report.skips[0].reason.contains("MACs"));
    let mut applied_on = Vec::new();
    for t in npuopt_targets::builtin_names() {
        let mut model = import_proto(&m);
        let r = npuopt_passes::run_pipeline(
            &mut model,
            &["merge-sequential-convs"],
            PipelineOptions {
                gate: gate(Some(t), Intent::Deploy, &[]),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.decisions.len(), 1, "{t}");
        let d = &r.decisions[0];
        eprintln!("{t}: {} — {}", d.applied, d.reason);
        assert!(d.reason.contains("est. "));
        // A heavier model must win by more than the target's margin.
        let margin = npuopt_targets::Target::builtin(t)
            .unwrap()
            .cost
            .heavier_margin;
        assert_eq!(d.heavier.as_ref().map(|h| h.1), Some(margin), "{t}");
        assert_eq!(
            d.applied,
            (d.cycles_after as f64) < d.cycles_before as f64 * (1.0 - margin)
        );
        if d.applied {
            applied_on.push(t);
            assert!(d.reason.contains("executed MACs"), "{}", d.reason);
            let before = m.clone();
            let run = Run {
                before: prost::Message::encode_to_vec(&before),
                model,
                report: r.clone(),
                snapshot: String::new(),
            };
            assert_verified(&run, t);
        }
    }
    eprintln!("fused on: {applied_on:?}");
}

fn npuopt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_npuopt"))
        .args(args)
        .output()
        .expect("npuopt runs")
}

fn real(name: &str) -> String {
    real_path(name).to_string_lossy().into_owned()
}

#[test]
fn cli_target_intent_force_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let report = dir.path().join("r.json");
    let input = real("mobilenetv2_ts.onnx");
    let o = npuopt(&[
        "optimize",
        &input,
        "-o",
        out.to_str().unwrap(),
        "--target",
        "ethos-u55-256",
        "--report",
        report.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("target ethos-u55-256 (deploy intent): est."),
        "{err}"
    );
    assert!(err.contains("rejected depthwise-to-group"), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["target"]["name"], "ethos-u55-256");
    assert_eq!(json["target"]["intent"], "deploy");
    assert!(json["target"]["estimate"]["note"]
        .as_str()
        .unwrap()
        .contains("estimates"));
    let ds = json["decisions"].as_array().unwrap();
    assert!(!ds.is_empty());
    for d in ds {
        assert!(d["estimated_cycles"]["before"].as_u64().is_some());
        assert!(d["estimated_cycles"]["after"].as_u64().is_some());
        assert!(d["reason"].as_str().unwrap().contains("est. "));
    }
    // Capacity without a target, an unknown intent, an unknown forced pass:
    // usage errors (exit 2).
    for args in [
        vec!["--intent", "capacity"],
        vec!["--target", "axera-m55h", "--intent", "speed"],
        vec!["--target", "axera-m55h", "--force-pass", "no-such-pass"],
    ] {
        let mut a = vec!["optimize", &input, "-o", out.to_str().unwrap()];
        a.extend(args.iter().copied());
        let o = npuopt(&a);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
    // A capacity model is marked in its metadata.
    let o = npuopt(&[
        "optimize",
        &input,
        "-o",
        out.to_str().unwrap(),
        "--target",
        "axera-m55h",
        "--intent",
        "capacity",
        "-q",
    ]);
    assert!(o.status.success());
    let m = npuopt::load(&out).unwrap();
    assert!(m.header.metadata_props.iter().any(
        |p| p.key.as_deref() == Some("npuopt.intent") && p.value.as_deref() == Some("capacity")
    ));
}

#[test]
fn passes_lists_the_hardware_passes() {
    let o = npuopt(&["passes"]);
    let text = String::from_utf8_lossy(&o.stdout);
    for name in ["depthwise-to-group", "concat-to-add"] {
        let line = text.lines().find(|l| l.starts_with(name)).expect(name);
        assert!(
            line.contains("target") && line.contains("needs --target"),
            "{line}"
        );
    }
    let o = npuopt(&["passes", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = json["passes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "depthwise-to-group")
        .unwrap();
    assert_eq!(p["needs_target"], true);
    assert_eq!(p["default"], false);
}
