//! Tiny hand-made models for doc tests. Real tests use `npuopt-fixtures`.

use prost::Message;

use crate::proto::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto};

/// A one-node model (`y = Relu(x)`), encoded.
pub fn tiny_model_bytes() -> Vec<u8> {
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            name: Some("tiny".into()),
            node: vec![NodeProto {
                name: Some("relu".into()),
                op_type: Some("Relu".into()),
                input: vec!["x".into()],
                output: vec!["y".into()],
                ..Default::default()
            }],
            input: vec![ValueInfoProto {
                name: Some("x".into()),
                ..Default::default()
            }],
            output: vec![ValueInfoProto {
                name: Some("y".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    m.encode_to_vec()
}
