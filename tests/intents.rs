//! Intents on MobileNetV2.
//!
//! * The acceptance model is torchvision's MobileNetV2 at 224×224, built
//!   in code (`npuopt_fixtures::architectures::mobilenetv2`: its layers,
//!   channel counts and feature-map sizes, seeded weights). For
//!   `axera-m55h` with `--intent capacity`, every depthwise conv becomes a
//!   group conv of 16 channels per group, every channel count a conv reads
//!   is padded to 16, the estimate stays at or under the input's, and tract
//!   finds the result exact.
//! * The tiny exports in `fixtures/real/` (width 0.1: 8-channel tensors)
//!   show the budget at work: what fits is applied, what would lift the
//!   estimate above the input's is rejected with both estimates.
//! * For `ethos-u55-256`, depthwise→group is rejected and the report says
//!   why (group convs are split there).

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{count, real_path};
use npuopt::ir::{Model, Op};
use npuopt::optimize::{Intent, OptimizeOptions, OptimizeOutcome, INTENT_KEY};
use npuopt::VerifyOptions;
use npuopt_targets::Target;
use prost::Message;

/// A committed export from `fixtures/real/` (the tests rely on them: a
/// missing one is a failure, not a skip).
fn real(name: &str) -> Model {
    let p = real_path(name);
    npuopt::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// torchvision's MobileNetV2 (width 1.0) at 224×224, 1000 classes.
fn mobilenetv2_224() -> Model {
    let proto = npuopt_fixtures::architectures::mobilenetv2(224, 1000);
    npuopt::load_bytes(Bytes::from(proto.encode_to_vec())).expect("imports")
}

fn optimize_for(m: &mut Model, target: &str, intent: Intent, force: &[&str]) -> OptimizeOutcome {
    let opts = OptimizeOptions {
        force_passes: force.iter().map(|s| s.to_string()).collect(),
        passes: npuopt_passes::registry::hardware_pipeline(),
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

/// Names of the convs with G = Cin > 1 (depthwise), with their channels.
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

/// Every conv with G > 1 that is not depthwise reads 16 channels per group.
fn assert_grouped_by_16(m: &Model) {
    for (c, g, per) in grouped_convs(m).into_iter().filter(|&(c, g, _)| c != g) {
        assert_eq!(per, 16, "a group conv of {c} channels in {g} groups");
        assert_eq!(c, g * 16);
    }
}

/// Convs whose input channel count is not a multiple of `align`, except
/// those reading a graph input (its shape is the caller's).
fn unaligned_conv_inputs(m: &Model, align: i64) -> Vec<(String, i64)> {
    let g = &m.graph;
    g.node_ids()
        .filter_map(|id| {
            let n = g.node(id);
            let Op::Conv(_) = n.op() else {
                return None;
            };
            let x = n.input(0)?;
            let cin = g.ty(x)?.concrete()?[1];
            (!g.value(x).is_graph_input() && cin % align != 0).then(|| (n.name().to_string(), cin))
        })
        .collect()
}

/// The acceptance: MobileNetV2 for `axera-m55h` with `--intent capacity`.
#[test]
fn mobilenetv2_224_capacity_on_axera_groups_every_depthwise_conv_and_pads_every_channel_count() {
    let mut m = mobilenetv2_224();
    assert_eq!(depthwise_names(&m).len(), 17);
    let unaligned = unaligned_conv_inputs(&m, 16);
    assert!(!unaligned.is_empty(), "24-channel tensors to pad");
    let out = optimize_for(&mut m, "axera-m55h", Intent::Capacity, &[]);
    let cost = out.cost.as_ref().expect("estimates with a target");
    eprintln!(
        "mobilenetv2 224 axera-m55h capacity: est. {} → {} cycles ({:.3} → {:.3} ms)",
        cost.before.total_cycles,
        cost.after.total_cycles,
        cost.before.latency_ms,
        cost.after.latency_ms
    );
    assert!(cost.after.total_cycles <= cost.before.total_cycles);
    let budget = cost.capacity_budget.expect("a capacity run has a budget");
    assert!(budget <= cost.before.total_cycles && cost.after.total_cycles <= budget);
    assert_eq!(
        depthwise_names(&m),
        vec![],
        "every depthwise conv is grouped"
    );
    assert_eq!(grouped_convs(&m).len(), 17);
    assert_grouped_by_16(&m);
    assert_eq!(unaligned_conv_inputs(&m, 16), vec![]);
    for d in &out.pipeline.decisions {
        eprintln!(
            "  {} {} {}",
            if d.applied { "applied " } else { "rejected" },
            d.node,
            d.reason
        );
        if d.pass == "depthwise-to-group" || d.pass == "pad-channels" {
            assert!(d.applied, "{}", d.reason);
            assert!(d.cycles_after <= cost.before.total_cycles);
        }
    }
    let v = out.verification.as_ref().unwrap();
    let worst = v.outputs.iter().map(|o| o.max_abs_err).fold(0.0, f64::max);
    eprintln!("  verified: max abs err {worst:.2e}");
    assert!(v.passed);
    assert_eq!(metadata(&m, INTENT_KEY).as_deref(), Some("capacity"));
    assert_eq!(metadata(&m, "npuopt.target").as_deref(), Some("axera-m55h"));
    assert!(metadata(&m, "npuopt.note").is_some_and(|n| n.contains("NOT a deploy model")));
}

/// The tiny export (width 0.1) at 224×224: its 8-channel tensors padded to
/// 16 double their output-stage cycles (Axera writes Cout in steps of 8), so
/// not everything fits the budget. Each proposal is decided against it:
/// applied ones keep the model at or under the input's estimate, rejected
/// ones would have passed it, and say so.
#[test]
fn tiny_mobilenetv2_capacity_on_axera_spends_the_budget_and_no_more() {
    let mut m = real("mobilenetv2_224_ts.onnx");
    let out = optimize_for(&mut m, "axera-m55h", Intent::Capacity, &[]);
    let cost = out.cost.as_ref().unwrap();
    let budget = cost.before.total_cycles;
    eprintln!(
        "tiny mobilenetv2 224 axera-m55h capacity: est. {budget} → {} cycles",
        cost.after.total_cycles
    );
    assert!(cost.after.total_cycles <= budget);
    let capacity: Vec<_> = out
        .pipeline
        .decisions
        .iter()
        .filter(|d| d.pass == "depthwise-to-group" || d.pass == "pad-channels")
        .collect();
    assert!(capacity.iter().filter(|d| d.applied).count() >= 10);
    for d in &capacity {
        eprintln!("  {} {}", d.node, d.reason);
        if d.applied {
            assert!(d.cycles_after <= budget, "{}", d.reason);
        } else {
            assert!(d.cycles_after > budget, "{}", d.reason);
            assert!(
                d.reason
                    .contains("the estimate would pass the capacity budget on axera-m55h"),
                "{}",
                d.reason
            );
        }
    }
    assert_grouped_by_16(&m);
    assert!(out.verification.unwrap().passed);
}

/// Forced, padding and grouping apply everywhere on the 64×64 tiny export:
/// no depthwise conv is left, each is exact, and the report keeps the
/// (rising) estimates of each forced rewrite.
#[test]
fn mobilenetv2_capacity_on_axera_forced_groups_every_depthwise_conv() {
    let mut m = real("mobilenetv2_ts.onnx");
    let dw = depthwise_names(&m);
    assert!(
        dw.iter().any(|(_, c)| c % 16 != 0),
        "8-channel depthwise convs"
    );
    let out = optimize_for(
        &mut m,
        "axera-m55h",
        Intent::Capacity,
        &["depthwise-to-group", "pad-channels"],
    );
    assert_eq!(depthwise_names(&m), vec![]);
    assert_grouped_by_16(&m);
    assert_eq!(unaligned_conv_inputs(&m, 16), vec![]);
    let forced: Vec<_> = out.pipeline.decisions.iter().filter(|d| d.forced).collect();
    assert!(forced
        .iter()
        .all(|d| d.applied && d.reason.contains("forced by --force-pass")));
    assert!(
        forced
            .iter()
            .filter(|d| d.pass == "depthwise-to-group")
            .count()
            >= dw.len() - 1
    );
    let cost = out.cost.unwrap();
    eprintln!(
        "mobilenetv2 axera-m55h capacity, forced: est. {} → {} cycles",
        cost.before.total_cycles, cost.after.total_cycles
    );
    assert!(out.verification.unwrap().passed);
}

#[test]
fn mobilenetv2_on_ethos_rejects_depthwise_to_group_and_says_why() {
    let mut m = real("mobilenetv2_ts.onnx");
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
        path: Some("in".into()),
        bytes: 0,
        hash: String::new(),
        external_bytes: 0,
    };
    let json = npuopt::report::optimize_json(&facts, &facts, &before, &before, &out);
    assert_eq!(json["target"]["name"], "ethos-u55-256");
    assert_eq!(
        json["target"]["capacity_budget_cycles"].as_u64(),
        cost.capacity_budget
    );
    let decisions = json["decisions"].as_array().unwrap();
    assert!(decisions.iter().any(|d| d["pass"] == "depthwise-to-group"
        && d["applied"] == false
        && d["reason"].as_str().unwrap().contains("split + concat")
        && d["proposed"]
            .as_str()
            .unwrap()
            .contains("groups of 16 channels")));
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
    let mut m = real("mobilenetv2_ts.onnx");
    let out = optimize_for(&mut m, "axera-m55h", Intent::Deploy, &[]);
    assert_eq!(metadata(&m, INTENT_KEY), None);
    assert_eq!(out.cost.as_ref().unwrap().capacity_budget, None);
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

/// The capacity budget is the input as a deployment flow would run it
/// (branches merged, BN folded), not the training graph: merging RepVGG's
/// branches saves latency that capacity must not spend.
#[test]
fn capacity_does_not_spend_the_savings_of_merging_a_training_graph() {
    for target in ["ethos-u55-256", "edgetpu", "axera-m55h"] {
        let input = real("repvgg_ts.onnx");
        let t = Target::builtin(target).unwrap();
        let mut deployed = input.clone();
        let defaults = npuopt_passes::resolve_pass_list(None, None).unwrap();
        npuopt_passes::run_pipeline(&mut deployed, &defaults, Default::default()).unwrap();
        let budget = npuopt_targets::cost::totals(&deployed.graph, &t).total_cycles;
        let mut m = input;
        let out = optimize_for(&mut m, target, Intent::Capacity, &[]);
        let cost = out.cost.unwrap();
        eprintln!(
            "repvgg {target} capacity: input est. {} cycles, deployed {budget}, result {}",
            cost.before.total_cycles, cost.after.total_cycles
        );
        assert!(budget < cost.before.total_cycles, "merging saves latency");
        assert!(cost.after.total_cycles <= budget);
        for d in out.pipeline.decisions.iter().filter(|d| d.applied) {
            assert!(d.cycles_after <= budget, "{}", d.reason);
        }
    }
}
