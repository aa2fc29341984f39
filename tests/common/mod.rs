//! Helpers shared by the integration tests: import a fixture, run passes,
//! snapshot the result, check it numerically with tract.
#![allow(dead_code)]

use bytes::Bytes;
use npuopt::ir::proto::ModelProto;
use npuopt::ir::{dump, import, Model};
use npuopt::verify::{verify_bytes, VerifyOptions, VerifyReport};
use npuopt_passes::change::snapshot_text;
use npuopt_passes::{run_pipeline, PipelineReport};
use prost::Message;

pub fn import_proto(m: &ModelProto) -> Model {
    import::from_bytes(Bytes::from(m.encode_to_vec()), None).expect("fixture imports")
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
    let before = m.encode_to_vec();
    let mut model = import_proto(m);
    let dump_before = dump::dump(&model.graph).unwrap();
    let report = run_pipeline(&mut model, passes, Default::default()).expect("pipeline runs");
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
