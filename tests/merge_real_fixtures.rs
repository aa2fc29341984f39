//! Structural re-parameterization on real training exports: after the
//! default pipeline, mobileone, repvgg, repghostnet and fastvit (TorchScript
//! and dynamo exports) have exactly the Conv, Add and BatchNormalization
//! counts of their deploy export put through the same pipeline, and compute
//! what the training graph computes (tract).

mod common;

use common::*;
use npuopt::ir::Model;

fn optimized(bytes: &[u8]) -> (Model, npuopt_passes::PipelineReport) {
    let mut m = npuopt::ir::import::from_bytes(bytes.to_vec().into(), None).expect("imports");
    let passes = npuopt_passes::resolve_pass_list(None, None).unwrap();
    let report = npuopt_passes::run_pipeline(&mut m, &passes, Default::default()).unwrap();
    (m, report)
}

fn collapses_to_deploy(arch: &str, exporter: &str) {
    let train_name = format!("{arch}_{exporter}.onnx");
    let deploy_name = format!("{arch}_deploy_{exporter}.onnx");
    let (train, deploy) = (real_bytes(&train_name), real_bytes(&deploy_name));
    let (opt, report) = optimized(&train);
    let (dep, _) = optimized(&deploy);
    assert!(!report.hit_iteration_cap, "{train_name}: no fixed point");
    for op in ["Conv", "Add", "BatchNormalization"] {
        assert_eq!(
            count(&opt, op),
            count(&dep, op),
            "{train_name}: {op} count differs from the deploy export's"
        );
    }
    assert!(
        report.changes.iter().any(|c| c.pass == "merge-branches"),
        "{train_name}: nothing merged"
    );
    let after = opt.to_bytes().unwrap();
    let v = npuopt::verify::verify_bytes(&train, &after, &Default::default()).expect("tract runs");
    assert!(v.passed, "{train_name}: {:?}", v.outputs);
}

#[test]
fn mobileone_ts() {
    collapses_to_deploy("mobileone", "ts");
}

#[test]
fn mobileone_dynamo() {
    collapses_to_deploy("mobileone", "dynamo");
}

#[test]
fn repvgg_ts() {
    collapses_to_deploy("repvgg", "ts");
}

#[test]
fn repvgg_dynamo() {
    collapses_to_deploy("repvgg", "dynamo");
}

#[test]
fn repghostnet_ts() {
    collapses_to_deploy("repghostnet", "ts");
}

#[test]
fn repghostnet_dynamo() {
    collapses_to_deploy("repghostnet", "dynamo");
}

#[test]
fn fastvit_ts() {
    collapses_to_deploy("fastvit", "ts");
}

#[test]
fn fastvit_dynamo() {
    collapses_to_deploy("fastvit", "dynamo");
}
