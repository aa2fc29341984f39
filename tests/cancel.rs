//! Cancelling a run (`OptimizeOptions::cancel`, `VerifyOptions::cancel`):
//! how a caller honours Ctrl-C or a deadline — the Python package turns a
//! `KeyboardInterrupt` into it. A cancelled run ends with an error, never
//! with a half-rewritten model reported as done.

mod common;

use std::time::Duration;

use common::{real_bytes, real_path};
use npuopt::optimize::{optimize, Cancel, OptimizeError, OptimizeOptions};
use npuopt::verify::{verify_bytes, VerifyError, VerifyOptions};
use npuopt_passes::{run_pipeline, PipelineError, PipelineOptions};

fn options(cancel: Cancel) -> OptimizeOptions {
    OptimizeOptions {
        passes: npuopt::default_passes(),
        verify: Some(VerifyOptions::default()),
        cancel,
        ..Default::default()
    }
}

#[test]
fn a_raised_flag_stops_optimize_before_any_rewrite() {
    let model = npuopt::load(real_path("repvgg_ts.onnx")).unwrap();
    let nodes = model.graph.node_count();
    let mut m = model.clone();
    let cancel = Cancel::new();
    cancel.cancel();
    assert!(matches!(
        optimize(&mut m, &options(cancel)),
        Err(OptimizeError::Cancelled)
    ));
    assert_eq!(m.graph.node_count(), nodes, "no rewrite ran");
    // The same run with a flag that does not fire rewrites the model.
    let mut m = model;
    optimize(&mut m, &options(Cancel::new())).unwrap();
    assert!(m.graph.node_count() < nodes);
}

#[test]
fn the_pass_manager_stops_at_the_next_pass() {
    let mut m = npuopt::load(real_path("mobileone_ts.onnx")).unwrap();
    let cancel = Cancel::new();
    let raise = cancel.clone();
    let mut passes_seen = 0;
    let result = run_pipeline(
        &mut m,
        &npuopt::default_passes(),
        PipelineOptions {
            cancel,
            after_pass: Some(Box::new(|_, _, _| {
                passes_seen += 1;
                raise.cancel(); // Ctrl-C after the first pass that rewrote
                Ok(())
            })),
            ..Default::default()
        },
    );
    assert!(matches!(result, Err(PipelineError::Cancelled)));
    assert_eq!(passes_seen, 1);
}

#[test]
fn verification_stops_when_cancelled_from_another_thread() {
    // A billion samples would take days: only the flag ends this test.
    let bytes = real_bytes("mobileone_ts.onnx");
    let cancel = Cancel::new();
    let raise = cancel.clone();
    let timer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        raise.cancel();
    });
    let opts = VerifyOptions {
        samples: 1_000_000_000,
        cancel,
        ..Default::default()
    };
    assert_eq!(
        verify_bytes(&bytes, &bytes, &opts),
        Err(VerifyError::Cancelled)
    );
    timer.join().unwrap();
}

#[test]
fn flags_are_equal_when_they_are_the_same_flag() {
    let a = Cancel::new();
    assert_eq!(a, a.clone());
    assert_ne!(a, Cancel::new());
    assert_eq!(Cancel::never(), Cancel::default());
    assert!(!Cancel::never().is_cancelled());
}
