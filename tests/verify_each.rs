//! `verify_each` names the pass, and the rewrite, that breaks numerics.

mod common;

use common::*;
use npuopt::ir::{Model, Tensor};
use npuopt::optimize::{optimize_with_passes, OptimizeError, OptimizeOptions};
use npuopt::verify::VerifyOptions;
use npuopt_passes::{Change, Pass, PassContext, PassError};

/// Records three rewrites on every run's first iteration: the first and the
/// last change nothing; the second scales one weight by 1.01.
struct Sabotage;

impl Pass for Sabotage {
    fn name(&self) -> &'static str {
        "sabotage"
    }
    fn description(&self) -> &'static str {
        "a deliberately broken pass"
    }
    fn run(&self, model: &mut Model, cx: &mut PassContext) -> Result<(), PassError> {
        let g = &mut model.graph;
        if g.value_by_name("sabotaged").is_some() {
            return Ok(());
        }
        let conv = g
            .node_ids()
            .find(|&n| g.node(n).op_type() == "Conv")
            .unwrap();
        for step in 0..3 {
            if !cx.may_rewrite() {
                return Ok(());
            }
            if step == 1 {
                let w = g.node(conv).input(1).unwrap();
                let t = g.value(w).initializer().unwrap().clone();
                let data: Vec<f32> = t.to_f32().unwrap().iter().map(|v| v * 1.01).collect();
                let new = g.add_initializer("sabotaged", Tensor::from_f32("", t.dims(), &data));
                g.set_input(conv, 1, Some(new));
            }
            cx.record(Change::new(
                "sabotage",
                ["harmless-1", "scale-weight", "harmless-2"][step],
                &["conv0"],
                format!("step {step}"),
            ));
        }
        Ok(())
    }
}

fn passes() -> Vec<Box<dyn Pass>> {
    vec![
        npuopt_passes::registry::pass_by_name("fold-batchnorm").unwrap(),
        Box::new(Sabotage),
    ]
}

#[test]
fn verify_each_names_the_broken_pass_and_rewrite() {
    let mut model = import_proto(&fixture("conv_bn"));
    let opts = OptimizeOptions {
        verify: Some(VerifyOptions::default()),
        verify_each: true,
        ..Default::default()
    };
    let err = optimize_with_passes(&mut model, &passes(), &opts).unwrap_err();
    match &err {
        OptimizeError::BrokenBy {
            pass,
            first_bad_rewrite,
            ..
        } => {
            assert_eq!(pass, "sabotage");
            assert_eq!(first_bad_rewrite.as_ref().unwrap().rule, "scale-weight");
        }
        other => panic!("expected BrokenBy, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("after pass sabotage") && text.contains("scale-weight"),
        "{text}"
    );
}

#[test]
fn without_verify_each_the_final_check_still_catches_it() {
    let mut model = import_proto(&fixture("conv_bn"));
    let opts = OptimizeOptions {
        verify: Some(VerifyOptions::default()),
        ..Default::default()
    };
    let err = optimize_with_passes(&mut model, &passes(), &opts).unwrap_err();
    assert!(matches!(err, OptimizeError::Mismatch { .. }), "{err}");
}

#[test]
fn max_rewrites_stops_before_the_bad_one() {
    let mut model = import_proto(&fixture("conv_bn"));
    let opts = OptimizeOptions {
        verify: Some(VerifyOptions::default()),
        // fold-batchnorm's one rewrite, then sabotage's harmless first one.
        max_rewrites: Some(2),
        ..Default::default()
    };
    let outcome = optimize_with_passes(&mut model, &passes(), &opts).unwrap();
    assert!(outcome.pipeline.hit_rewrite_cap);
    assert_eq!(outcome.pipeline.changes.len(), 2);
    assert!(outcome.verification.unwrap().passed);
}
