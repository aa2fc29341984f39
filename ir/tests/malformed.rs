//! Every way a model can be broken gets an error naming the culprit — never
//! a panic.

use std::path::Path;

use bytes::Bytes;
use npuopt_ir::import::{from_bytes, load};
use npuopt_ir::proto::tensor_proto::{DataLocation, DataType};
use npuopt_ir::proto::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    ValueInfoProto,
};
use npuopt_ir::IrError;
use prost::Message;

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn info(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        ..Default::default()
    }
}

fn model(nodes: Vec<NodeProto>, initializers: Vec<TensorProto>) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: nodes,
            initializer: initializers,
            input: vec![info("x")],
            output: vec![info("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn import(m: &ModelProto) -> Result<npuopt_ir::Model, IrError> {
    from_bytes(Bytes::from(m.encode_to_vec()), None)
}

fn weight(name: &str, dims: &[i64], bytes: usize) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(Bytes::from(vec![0u8; bytes])),
        ..Default::default()
    }
}

#[test]
fn bytes_that_are_not_protobuf() {
    let err = from_bytes(Bytes::from_static(b"\xff\xff\xff\xff not onnx"), None).unwrap_err();
    assert!(matches!(err, IrError::Decode(_)), "{err}");
    assert!(err.to_string().contains("not an ONNX model"), "{err}");
}

#[test]
fn truncated_file() {
    let m = model(
        vec![node("relu", "Relu", &["x"], &["y"])],
        vec![weight("w", &[64], 256)],
    );
    let bytes = m.encode_to_vec();
    let err = from_bytes(Bytes::from(bytes[..bytes.len() - 7].to_vec()), None).unwrap_err();
    assert!(matches!(err, IrError::Decode(_)), "{err}");
}

#[test]
fn model_without_graph() {
    let mut m = model(vec![], vec![]);
    m.graph = None;
    assert!(matches!(import(&m).unwrap_err(), IrError::NoGraph));
}

#[test]
fn input_nobody_produces() {
    let m = model(vec![node("add0", "Add", &["x", "ghost"], &["y"])], vec![]);
    let err = import(&m).unwrap_err();
    assert!(
        matches!(&err, IrError::UndefinedInput { node, input, .. } if node == "add0" && input == "ghost"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "node 'add0' (Add): input 'ghost' is produced by no node, graph input or initializer"
    );
}

#[test]
fn value_produced_twice() {
    let m = model(
        vec![
            node("a", "Relu", &["x"], &["y"]),
            node("b", "Sigmoid", &["x"], &["y"]),
        ],
        vec![],
    );
    let err = import(&m).unwrap_err();
    assert!(
        matches!(&err, IrError::ProducedTwice { value, first, second } if value == "y" && first.contains("'a'") && second.contains("'b'")),
        "{err}"
    );
}

#[test]
fn output_listed_twice_by_one_node() {
    let m = model(vec![node("s", "Split", &["x"], &["y", "y"])], vec![]);
    let err = import(&m).unwrap_err();
    assert!(
        matches!(&err, IrError::ProducedTwice { value, first, second } if value == "y" && first == "node 's'" && second == "node 's'"),
        "{err}"
    );
}

#[test]
fn node_output_shadowing_an_initializer() {
    let m = model(
        vec![
            node("a", "Relu", &["x"], &["w"]),
            node("b", "Relu", &["w"], &["y"]),
        ],
        vec![weight("w", &[1], 4)],
    );
    assert!(matches!(
        import(&m).unwrap_err(),
        IrError::ProducedTwice { .. }
    ));
}

#[test]
fn cycle() {
    let m = model(
        vec![
            node("a", "Add", &["x", "c"], &["b"]),
            node("b", "Relu", &["b"], &["c"]),
            node("out", "Identity", &["c"], &["y"]),
        ],
        vec![],
    );
    let err = import(&m).unwrap_err();
    assert!(matches!(err, IrError::Cycle { .. }), "{err}");
    assert!(err.to_string().contains("cycle through node"), "{err}");
}

#[test]
fn initializer_with_wrong_byte_length() {
    let m = model(
        vec![node("add", "Add", &["x", "w"], &["y"])],
        vec![weight("w", &[2, 3], 20)],
    );
    let err = import(&m).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor 'w': raw_data has 20 bytes, but dims [2, 3] of f32 need 24"
    );
}

#[test]
fn typed_field_count_mismatch() {
    let t = TensorProto {
        name: Some("w".into()),
        dims: vec![3],
        data_type: Some(DataType::Float as i32),
        float_data: vec![1.0, 2.0],
        ..Default::default()
    };
    let m = model(vec![node("add", "Add", &["x", "w"], &["y"])], vec![t]);
    let err = import(&m).unwrap_err();
    assert!(err.to_string().contains("float_data has 2 values"), "{err}");
}

#[test]
fn graph_output_nobody_produces() {
    let m = model(vec![node("a", "Relu", &["x"], &["z"])], vec![]);
    assert!(matches!(import(&m).unwrap_err(), IrError::UndefinedOutput(o) if o == "y"));
}

#[test]
fn attribute_of_the_wrong_type() {
    let mut conv = node("conv0", "Conv", &["x", "w"], &["y"]);
    conv.attribute.push(npuopt_ir::attr::float("group", 2.0));
    let m = model(vec![conv], vec![weight("w", &[1, 1, 1, 1], 4)]);
    let err = import(&m).unwrap_err();
    assert_eq!(
        err.to_string(),
        "node 'conv0' (Conv): attribute 'group' must be INT, got FLOAT"
    );
}

fn external(name: &str, location: &str, offset: u64, length: u64) -> TensorProto {
    let e = |k: &str, v: String| StringStringEntryProto {
        key: Some(k.into()),
        value: Some(v),
    };
    TensorProto {
        name: Some(name.into()),
        dims: vec![4],
        data_type: Some(DataType::Float as i32),
        data_location: Some(DataLocation::External as i32),
        external_data: vec![
            e("location", location.into()),
            e("offset", offset.to_string()),
            e("length", length.to_string()),
        ],
        ..Default::default()
    }
}

fn write_model_with(dir: &Path, t: TensorProto) -> std::path::PathBuf {
    let m = model(vec![node("add", "Add", &["x", "w"], &["y"])], vec![t]);
    let path = dir.join("m.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    path
}

#[test]
fn external_data_is_read_relative_to_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut file = vec![0u8; 8];
    file.extend(&data);
    std::fs::write(dir.path().join("w.bin"), &file).unwrap();
    let path = write_model_with(dir.path(), external("w", "w.bin", 8, 16));
    let m = load(&path).unwrap();
    let w = m.graph.value_by_name("w").unwrap();
    let t = m.graph.value(w).initializer().unwrap();
    assert_eq!(t.to_f32().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    assert!(!t.is_external());
}

#[test]
fn external_data_file_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_model_with(dir.path(), external("w", "nope.bin", 0, 16));
    let err = load(&path).unwrap_err();
    assert!(
        matches!(&err, IrError::ExternalData { tensor, .. } if tensor == "w"),
        "{err}"
    );
    assert!(err.to_string().contains("nope.bin"), "{err}");
}

#[test]
fn external_data_file_too_short() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.bin"), [0u8; 10]).unwrap();
    let path = write_model_with(dir.path(), external("w", "w.bin", 0, 16));
    let err = load(&path).unwrap_err();
    assert!(err.to_string().contains("too short"), "{err}");
}

#[test]
fn external_data_length_must_match_dims() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.bin"), [0u8; 64]).unwrap();
    let path = write_model_with(dir.path(), external("w", "w.bin", 0, 12));
    let err = load(&path).unwrap_err();
    assert!(err.to_string().contains("raw_data has 12 bytes"), "{err}");
}

#[test]
fn external_data_may_not_leave_the_model_folder() {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret.bin"), [0u8; 16]).unwrap();
    let inner = outer.path().join("model");
    std::fs::create_dir(&inner).unwrap();
    for location in ["../secret.bin", "sub/../../secret.bin"] {
        let path = write_model_with(&inner, external("w", location, 0, 16));
        let err = load(&path).unwrap_err();
        assert!(
            err.to_string().contains("leaves the model's folder"),
            "{location}: {err}"
        );
    }
    let abs = outer.path().join("secret.bin");
    let path = write_model_with(&inner, external("w", abs.to_str().unwrap(), 0, 16));
    let err = load(&path).unwrap_err();
    assert!(err.to_string().contains("absolute path"), "{err}");
}

#[cfg(unix)]
#[test]
fn external_data_symlink_out_of_the_folder_is_refused() {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret.bin"), [0u8; 16]).unwrap();
    let inner = outer.path().join("model");
    std::fs::create_dir(&inner).unwrap();
    std::os::unix::fs::symlink(outer.path().join("secret.bin"), inner.join("link.bin")).unwrap();
    let path = write_model_with(&inner, external("w", "link.bin", 0, 16));
    let err = load(&path).unwrap_err();
    assert!(
        err.to_string().contains("outside the model's folder"),
        "{err}"
    );
}

#[test]
fn external_data_without_a_folder() {
    let m = model(
        vec![node("add", "Add", &["x", "w"], &["y"])],
        vec![external("w", "w.bin", 0, 16)],
    );
    let err = import(&m).unwrap_err();
    assert!(
        err.to_string().contains("not loaded from a folder"),
        "{err}"
    );
}

#[test]
fn unreadable_path() {
    let err = load(Path::new("/definitely/not/here.onnx")).unwrap_err();
    assert!(matches!(err, IrError::Io { .. }));
    assert!(
        err.to_string().contains("/definitely/not/here.onnx"),
        "{err}"
    );
}

#[test]
fn conv_with_a_zero_stride() {
    let mut conv = node("conv0", "Conv", &["x", "w"], &["y"]);
    conv.attribute
        .push(npuopt_ir::attr::ints("strides", &[0, 1]));
    let m = model(vec![conv], vec![weight("w", &[1, 1, 1, 1], 4)]);
    let err = import(&m).unwrap_err();
    assert_eq!(
        err.to_string(),
        "node 'conv0' (Conv): attribute 'strides' has 0, must be ≥ 1"
    );
}
