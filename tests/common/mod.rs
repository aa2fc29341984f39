//! Helpers shared by the integration tests: import a fixture, run passes,
//! snapshot the result, check it numerically with tract.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use npuopt::ir::proto::ModelProto;
use npuopt::ir::{dump, import, Model};
use npuopt::verify::{verify_bytes, VerifyOptions, VerifyReport};
use npuopt_passes::change::snapshot_text;
use npuopt_passes::{run_pipeline, GateOptions, Intent, PipelineOptions, PipelineReport};
use npuopt_targets::Target;
use prost::Message;

pub fn import_proto(m: &ModelProto) -> Model {
    import::from_bytes(Bytes::from(m.encode_to_vec()), None).expect("fixture imports")
}

/// The cost gate of a run on a built-in target (none: hardware passes do
/// nothing), with the passes `--force-pass` names.
pub fn gate(target: Option<&str>, intent: Intent, force: &[&str]) -> GateOptions {
    GateOptions {
        target: target.map(|t| Arc::new(Target::builtin(t).unwrap())),
        intent,
        force: force.iter().map(|s| s.to_string()).collect(),
        capacity_budget: None,
    }
}

/// The path of a committed export in `fixtures/real/`. The tests rely on
/// them: a missing one fails the test, never skips it.
pub fn real_path(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/real")
        .join(name);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// The bytes of [`real_path`].
pub fn real_bytes(name: &str) -> Vec<u8> {
    std::fs::read(real_path(name)).unwrap()
}

pub fn fixture(name: &str) -> ModelProto {
    npuopt_fixtures::synthetic::by_name(name).unwrap_or_else(|| panic!("no fixture '{name}'"))
}

/// The result of running passes on a fixture.
pub struct Run {
    pub before: Vec<u8>,
    pub model: Model,
    pub report: PipelineReport,
    /// Change list plus the before/after dump diff.
    pub snapshot: String,
}

pub fn run(m: &ModelProto, passes: &[&str]) -> Run {
    run_with(m, passes, Default::default())
}

/// [`run`] with pipeline options: a target's cost gate, say ([`gate`]).
pub fn run_with(m: &ModelProto, passes: &[&str], opts: PipelineOptions) -> Run {
    let before = m.encode_to_vec();
    let mut model = import_proto(m);
    let dump_before = dump::dump(&model.graph).unwrap();
    let report = run_pipeline(&mut model, passes, opts).expect("pipeline runs");
    let snapshot = snapshot_text(
        &dump_before,
        &dump::dump(&model.graph).unwrap(),
        &report.changes,
    );
    Run {
        before,
        model,
        report,
        snapshot,
    }
}

/// Verifies the rewritten model against the original with tract.
pub fn verify(run: &Run) -> VerifyReport {
    let after = run.model.to_bytes().unwrap();
    verify_bytes(&run.before, &after, &VerifyOptions::default()).expect("tract runs both")
}

pub fn assert_verified(run: &Run, what: &str) {
    let r = verify(run);
    assert!(r.passed, "{what}: {:?}", r.outputs);
}

pub fn count(m: &Model, op_type: &str) -> usize {
    m.graph
        .node_ids()
        .filter(|&n| m.graph.node(n).op_type() == op_type)
        .count()
}

/// A fold into a weight other nodes read too stores a second copy: without
/// a target it is refused with the reason (the `op_type` nodes stay), with
/// edgetpu the cost model decides with the target's margin (once the first
/// fold made its copy the other reader owns the weight), and with
/// `pass` forced every one folds, into copies, verified by tract.
pub fn assert_shared_weight_fold_is_gated(
    proto: &ModelProto,
    passes: &[&str],
    pass: &str,
    op_type: &str,
) {
    let r = run(proto, passes);
    let left = count(&r.model, op_type);
    assert!(left > 0, "{}", r.snapshot);
    assert!(
        r.report
            .skips
            .iter()
            .any(|s| s.pass == pass && s.reason.contains("shared with another node")),
        "{:?}",
        r.report.skips
    );
    let opts = PipelineOptions {
        gate: gate(Some("edgetpu"), Intent::Deploy, &[]),
        ..Default::default()
    };
    let r = run_with(proto, passes, opts);
    let mine: Vec<_> = r
        .report
        .decisions
        .iter()
        .filter(|d| d.pass == pass)
        .collect();
    assert!(!mine.is_empty(), "{:?}", r.report.decisions);
    for d in mine {
        let (growth, margin) = d.heavier.as_ref().expect("a heavier proposal");
        assert!(growth.contains("weights"), "{growth}");
        let gain = 1.0 - d.cycles_after as f64 / d.cycles_before as f64;
        assert_eq!(d.applied, gain > *margin, "{d:?}");
    }
    let opts = PipelineOptions {
        gate: gate(Some("edgetpu"), Intent::Deploy, &[pass]),
        ..Default::default()
    };
    let r = run_with(proto, passes, opts);
    assert_eq!(count(&r.model, op_type), 0, "{}", r.snapshot);
    assert_verified(&r, &format!("{pass}: shared weight on a target, forced"));
}
