//! Every input in `tests/fuzz_regressions/` (crashers found by
//! `cargo fuzz run import`, see `fuzz/README.md`, and hand-made nasty files
//! `handmade_*.bin`; all written by `fuzz/make_regressions.py`) must be
//! refused with an `IrError` or import into a graph that validates, dumps and
//! exports to a fixed point. A panic, a hang or an abort is a bug.

use std::path::{Path, PathBuf};

use npuopt_ir::{dump::dump, import::from_bytes, IrError, Model};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions")
}

fn inputs() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/fuzz_regressions exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    files
}

fn import(name: &str) -> Result<Model, IrError> {
    let bytes = std::fs::read(dir().join(name)).expect("regression file exists");
    from_bytes(bytes.into(), None)
}

/// What the fuzz target checks of an imported model.
fn check_round_trip(name: &str, model: &Model) {
    model
        .graph
        .validate()
        .unwrap_or_else(|e| panic!("{name}: imported graph does not validate: {e}"));
    dump(&model.graph).unwrap_or_else(|e| panic!("{name}: dump failed: {e}"));
    let once = model
        .to_bytes()
        .unwrap_or_else(|e| panic!("{name}: export failed: {e}"));
    let again = from_bytes(once.clone().into(), None)
        .unwrap_or_else(|e| panic!("{name}: exported model does not re-import: {e}"));
    again
        .graph
        .validate()
        .unwrap_or_else(|e| panic!("{name}: re-imported graph does not validate: {e}"));
    let twice = again
        .to_bytes()
        .unwrap_or_else(|e| panic!("{name}: re-export failed: {e}"));
    assert!(once == twice, "{name}: export is not a fixed point");
}

#[test]
fn every_regression_input_errors_cleanly_or_round_trips() {
    let files = inputs();
    assert!(files.len() >= 6, "regression inputs are missing: {files:?}");
    let mut failures = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| match from_bytes(bytes.into(), None) {
            Ok(model) => check_round_trip(&name, &model),
            Err(e) => {
                // The message must render (it names the tensor or node).
                assert!(!e.to_string().is_empty(), "{name}: empty error message");
            }
        });
        if let Err(panic) = result {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{name}: panicked: {msg}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn empty_file_has_no_graph() {
    let err = import("handmade_empty.bin").unwrap_err();
    assert!(matches!(err, IrError::NoGraph), "{err:?}");
}

#[test]
fn truncated_model_is_a_decode_error() {
    let err = import("handmade_truncated.bin").unwrap_err();
    assert!(matches!(err, IrError::Decode(_)), "{err:?}");
}

#[test]
fn random_bytes_are_a_decode_error() {
    let err = import("handmade_random.bin").unwrap_err();
    assert!(matches!(err, IrError::Decode(_)), "{err:?}");
}

#[test]
fn dims_multiplying_past_u64_are_a_bad_tensor() {
    let err = import("handmade_dims_overflow.bin").unwrap_err();
    match &err {
        IrError::BadTensor { tensor, message } => {
            assert_eq!(tensor, "huge");
            assert!(message.contains("overflow"), "{message}");
        }
        _ => panic!("{err:?}"),
    }
}

#[test]
fn if_nested_200_deep_is_refused_at_decode() {
    // prost's recursion limit (100 messages) stops it before any of our
    // recursive walks over subgraphs can run out of stack.
    let err = import("handmade_nested_if_200.bin").unwrap_err();
    match &err {
        IrError::Decode(m) => assert!(m.contains("recursion limit"), "{m}"),
        _ => panic!("{err:?}"),
    }
}

#[test]
fn if_nested_30_deep_imports_and_captures_across_every_level() {
    let model = import("handmade_nested_if_30.bin").unwrap();
    let g = &model.graph;
    assert_eq!(g.node_count(), 1);
    let node = g.node(g.node_ids().next().unwrap());
    // Every inner If reads the condition `c`, and the innermost branch `x`,
    // from the outermost scope.
    let c = g.value_by_name("c").unwrap();
    let x = g.value_by_name("x").unwrap();
    assert_eq!(node.captures(), &[c, x]);
    check_round_trip("handmade_nested_if_30.bin", &model);
}

#[test]
fn typed_payload_counts_past_u64_are_a_bad_tensor() {
    for (file, tensor) in [
        ("int4_numel_times_bits_overflow.bin", "i4"),
        ("complex64_numel_times_two_overflow.bin", "c64"),
    ] {
        match import(file).unwrap_err() {
            IrError::BadTensor { tensor: t, message } => {
                assert_eq!(t, tensor, "{file}");
                assert!(message.contains("overflow"), "{file}: {message}");
            }
            e => panic!("{file}: {e:?}"),
        }
    }
}

#[test]
fn slice_with_negative_step_keeps_an_empty_dim_empty() {
    let model = import("slice_negative_step_empty_dim.bin").unwrap();
    let y = model.graph.value_by_name("y").unwrap();
    let ty = model.graph.ty(y).unwrap();
    assert_eq!(ty.to_string(), "f32[0,3]");
}

#[test]
fn sparse_initializers_read_by_outputs_and_subgraphs_are_dumped() {
    let model = import("sparse_initializer_graph_output.bin").unwrap();
    let text = dump(&model.graph).unwrap();
    assert!(text.contains("out  %2 \"spv\""), "{text}");
    let model = import("if_captures_sparse_initializer.bin").unwrap();
    let text = dump(&model.graph).unwrap();
    assert!(text.contains("captures(%2)"), "{text}");
}
