//! Intents on a real model: MobileNetV2 (fixtures/real/mobilenetv2_ts.onnx)
//! for `axera-m55h` with `--intent capacity` proposes every depthwise conv
//! as a group conv of 16 channels per group; the cost model applies it
//! where the estimate does not rise (forced, every one converts), always
//! exactly (tract); for `ethos-u55-256` depthwise→group is rejected and the
//! report says why.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::count;
use npuopt::ir::{Model, Op};
use npuopt::optimize::{Intent, OptimizeOptions, OptimizeOutcome, INTENT_KEY};
use npuopt::VerifyOptions;
use npuopt_targets::Target;

fn real(name: &str) -> Option<Model> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/real")
        .join(name);
    p.exists().then(|| npuopt::load(&p).expect("loads"))
}

fn optimize_for(m: &mut Model, target: &str, intent: Intent, force: &[&str]) -> OptimizeOutcome {
    let opts = OptimizeOptions {
        force_passes: force.iter().map(|s| s.to_string()).collect(),
        passes: npuopt_passes::resolve_pass_list_for(None, None, true).unwrap(),
        verify: Some(VerifyOptions::default()),
        target: Some(Arc::new(Target::builtin(target).unwrap())),
        intent,
        ..Default::default()
    };
    npuopt::optimize(m, &opts).expect("optimizes and verifies")
}

/// `(input channels, group, weight's input channels per group)` of every
/// conv with G > 1.
fn grouped_convs(m: &Model) -> Vec<(i64, i64, i64)> {
    let g = &m.graph;
    g.node_ids()
        .filter_map(|id| {
            let Op::Conv(c) = g.node(id).op() else {
                return None;
            };
            let w = g.constant(g.node(id).input(1)?)?;
            let cin = g.ty(g.node(id).input(0)?)?.concrete()?[1];
            (c.group > 1).then_some((cin, c.group, w.dims()[1]))
        })
        .collect()
}

fn metadata(m: &Model, key: &str) -> Option<String> {
    m.header
        .metadata_props
        .iter()
        .find(|p| p.key.as_deref() == Some(key))
        .and_then(|p| p.value.clone())
}

/// Names of the convs with G = Cin > 1 (depthwise).
fn depthwise_names(m: &Model) -> Vec<(String, i64)> {
    let g = &m.graph;
    g.node_ids()
        .filter_map(|id| {
            let Op::Conv(c) = g.node(id).op() else {
                return None;
            };
            let cin = g.ty(g.node(id).input(0)?)?.concrete()?[1];
            (c.group > 1 && c.group == cin).then(|| (g.node(id).name().to_string(), cin))
        })
        .collect()
}

/// The group of every former depthwise conv that is now grouped: 16
/// input channels per group.
fn assert_grouped_by_16(m: &Model) {
    for (c, g, per) in grouped_convs(m).into_iter().filter(|&(c, g, _)| c != g) {
        assert_eq!(per, 16, "a group conv of {c} channels in {g} groups");
        assert_eq!(c, g * 16);
    }
}

/// Capacity intent on axera-m55h: each depthwise conv is proposed; the
/// cost model applies the conversion where the estimate does not rise and
/// rejects it, with both estimates, where it does. On this fixture (small
/// feature maps: 16×16 down to 2×2) most depthwise layers are bound by the
/// target's memory term, which charges the 16× larger weights: only the
/// 16×16 layer ties. The estimate never rises and the result is exact.
#[test]
fn mobilenetv2_capacity_on_axera() {
    let Some(mut m) = real("mobilenetv2_ts.onnx") else {
        eprintln!("skipped: fixtures/real/mobilenetv2_ts.onnx is absent");
        return;
    };
    let dw = depthwise_names(&m);
    assert!(dw.len() >= 10, "the fixture has depthwise convs");
    let unaligned: Vec<&String> = dw
        .iter()
        .filter(|(_, c)| c % 16 != 0)
        .map(|(n, _)| n)
        .collect();
    let out = optimize_for(&mut m, "axera-m55h", Intent::Capacity, &[]);
    let cost = out.cost.as_ref().expect("estimates with a target");
    eprintln!(
        "mobilenetv2 axera-m55h capacity: est. {} → {} cycles ({:.4} → {:.4} ms)",
        cost.before.total_cycles,
        cost.after.total_cycles,
        cost.before.latency_ms,
        cost.after.latency_ms
    );
    assert!(cost.after.total_cycles <= cost.before.total_cycles);
    let still: Vec<String> = depthwise_names(&m).into_iter().map(|(n, _)| n).collect();
    let decisions: Vec<_> = out
        .pipeline
        .decisions
        .iter()
        .filter(|d| d.pass == "depthwise-to-group")
        .collect();
    assert_eq!(
        decisions.len(),
        dw.len() - unaligned.len(),
        "every depthwise conv of a multiple of 16 channels was proposed"
    );
    for n in &unaligned {
        assert!(still.contains(n));
        let skip = out
            .pipeline
            .skips
            .iter()
            .find(|s| s.pass == "depthwise-to-group" && &&s.node == n)
            .expect("a skip says why");
        assert!(skip.reason.contains("not a multiple of the group width 16"));
        eprintln!("  {n}: {}", skip.reason);
    }
    for d in &decisions {
        eprintln!("  {}: {}", d.node, d.reason);
        if d.applied {
            assert!(d.cycles_after <= d.cycles_before);
            assert!(!still.contains(&d.node));
        } else {
            assert!(d.cycles_after > d.cycles_before, "{}", d.reason);
            assert!(d.reason.contains("the estimate rises on axera-m55h: est."));
            assert!(still.contains(&d.node));
        }
    }
    assert!(decisions.iter().any(|d| d.applied));
    assert_grouped_by_16(&m);
    let v = out.verification.as_ref().unwrap();
    let worst = v.outputs.iter().map(|o| o.max_abs_err).fold(0.0, f64::max);
    eprintln!("  verified: max abs err {worst:.2e}");
    assert!(v.passed);
    assert_eq!(metadata(&m, INTENT_KEY).as_deref(), Some("capacity"));
    assert_eq!(metadata(&m, "npuopt.target").as_deref(), Some("axera-m55h"));
    assert!(metadata(&m, "npuopt.note").is_some_and(|n| n.contains("NOT a deploy model")));
}

/// The acceptance's graph: with `--force-pass depthwise-to-group` every
/// depthwise conv becomes a group conv of 16 channels per group, exactly;
/// the report keeps the (rising) estimates of each forced rewrite.
#[test]
fn mobilenetv2_capacity_on_axera_forced_groups_every_depthwise_conv() {
    let Some(mut m) = real("mobilenetv2_ts.onnx") else {
        return;
    };
    let dw = depthwise_names(&m);
    let out = optimize_for(
        &mut m,
        "axera-m55h",
        Intent::Capacity,
        &["depthwise-to-group"],
    );
    // Every depthwise conv whose channel count allows it is grouped.
    let aligned = dw.iter().filter(|(_, c)| c % 16 == 0).count();
    let still = depthwise_names(&m);
    assert!(still.iter().all(|(_, c)| c % 16 != 0), "{still:?}");
    assert_eq!(still.len(), dw.len() - aligned);
    assert_grouped_by_16(&m);
    let forced = out
        .pipeline
        .decisions
        .iter()
        .filter(|d| d.forced && d.applied)
        .count();
    assert_eq!(forced, aligned);
    let cost = out.cost.unwrap();
    eprintln!(
        "mobilenetv2 axera-m55h capacity, forced: est. {} → {} cycles",
        cost.before.total_cycles, cost.after.total_cycles
    );
    assert!(out.verification.unwrap().passed);
}

#[test]
fn mobilenetv2_on_ethos_rejects_depthwise_to_group_and_says_why() {
    let Some(mut m) = real("mobilenetv2_ts.onnx") else {
        eprintln!("skipped: fixtures/real/mobilenetv2_ts.onnx is absent");
        return;
    };
    let convs_before = count(&m, "Conv");
    let out = optimize_for(&mut m, "ethos-u55-256", Intent::Capacity, &[]);
    let cost = out.cost.as_ref().unwrap();
    eprintln!(
        "mobilenetv2 ethos-u55-256: est. {} → {} cycles",
        cost.before.total_cycles, cost.after.total_cycles
    );
    let dw: Vec<_> = out
        .pipeline
        .decisions
        .iter()
        .filter(|d| d.pass == "depthwise-to-group")
        .collect();
    assert!(!dw.is_empty(), "depthwise→group was proposed");
    for d in &dw {
        eprintln!("  {} {}", d.node, d.reason);
        if d.reason.contains("split") {
            assert!(!d.applied);
            assert!(d.cycles_after > d.cycles_before, "{}", d.reason);
            assert!(
                d.reason
                    .contains("group conv is lowered to split + concat on ethos-u55-256: est."),
                "{}",
                d.reason
            );
        }
    }
    assert!(dw.iter().any(|d| d.reason.contains("split")));
    assert!(dw.iter().all(|d| !d.applied));
    // The report carries the same decisions.
    let before = npuopt::summarize(&m);
    let facts = npuopt::report::FileFacts {
        path: "in".into(),
        bytes: 0,
        hash: String::new(),
    };
    let json = npuopt::report::optimize_json(&facts, &facts, &before, &before, &out);
    assert_eq!(json["target"]["name"], "ethos-u55-256");
    let decisions = json["decisions"].as_array().unwrap();
    assert!(decisions.iter().any(|d| d["pass"] == "depthwise-to-group"
        && d["applied"] == false
        && d["reason"].as_str().unwrap().contains("split + concat")));
    assert!(
        json["target"]["estimate"]["before"]["total_cycles"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(count(&m, "Conv"), convs_before);
    assert!(out.verification.unwrap().passed);
}

#[test]
fn deploy_intent_does_not_mark_the_model() {
    let Some(mut m) = real("mobilenetv2_ts.onnx") else {
        return;
    };
    let out = optimize_for(&mut m, "axera-m55h", Intent::Deploy, &[]);
    assert_eq!(metadata(&m, INTENT_KEY), None);
    // Depthwise→group on axera ties at best: deploy keeps the depthwise convs.
    assert!(out
        .pipeline
        .decisions
        .iter()
        .filter(|d| d.pass == "depthwise-to-group")
        .all(|d| !d.applied));
    let cost = out.cost.unwrap();
    assert!(cost.after.total_cycles <= cost.before.total_cycles);
}
