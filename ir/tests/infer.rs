//! Shape inference keeps symbolic dims and computes the rest.

use bytes::Bytes;
use npuopt_ir::import::from_bytes;
use npuopt_ir::proto::tensor_proto::DataType;
use npuopt_ir::proto::tensor_shape_proto::{dimension, Dimension};
use npuopt_ir::proto::type_proto::{Tensor as TT, Value as TV};
use npuopt_ir::proto::*;
use npuopt_ir::{Dim, Tensor};
use prost::Message;

fn dim(d: &str) -> Dimension {
    Dimension {
        value: Some(match d.parse::<i64>() {
            Ok(v) => dimension::Value::DimValue(v),
            Err(_) => dimension::Value::DimParam(d.into()),
        }),
        denotation: None,
    }
}

fn input(name: &str, dims: &[&str]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(TV::TensorType(TT {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(|d| dim(d)).collect(),
                }),
            })),
        }),
        ..Default::default()
    }
}

#[test]
fn symbolic_batch_flows_through_conv_pool_and_flatten() {
    let node = |op: &str, i: &[&str], o: &str, attrs: Vec<AttributeProto>| NodeProto {
        name: Some(o.into()),
        op_type: Some(op.into()),
        input: i.iter().map(|s| s.to_string()).collect(),
        output: vec![o.into()],
        attribute: attrs,
        ..Default::default()
    };
    use npuopt_ir::attr::ints;
    let w = Tensor::from_f32("w", &[16, 3, 3, 3], &[0.0; 16 * 27]).into_proto();
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            node: vec![
                node(
                    "Conv",
                    &["x", "w"],
                    "c",
                    vec![ints("pads", &[1, 1, 1, 1]), ints("strides", &[2, 2])],
                ),
                node(
                    "MaxPool",
                    &["c"],
                    "p",
                    vec![
                        ints("kernel_shape", &[3, 3]),
                        ints("strides", &[2, 2]),
                        ints("pads", &[1, 1, 1, 1]),
                    ],
                ),
                node("Flatten", &["p"], "f", vec![]),
            ],
            initializer: vec![w],
            input: vec![input("x", &["N", "3", "224", "224"])],
            output: vec![ValueInfoProto {
                name: Some("f".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let model = from_bytes(Bytes::from(m.encode_to_vec()), None).unwrap();
    let g = &model.graph;
    let ty = |n: &str| g.ty(g.value_by_name(n).unwrap()).unwrap().clone();
    assert_eq!(
        ty("c").shape.unwrap(),
        vec![
            Dim::Sym("N".into()),
            Dim::Known(16),
            Dim::Known(112),
            Dim::Known(112)
        ]
    );
    assert_eq!(
        ty("p").shape.unwrap(),
        vec![
            Dim::Sym("N".into()),
            Dim::Known(16),
            Dim::Known(56),
            Dim::Known(56)
        ]
    );
    // Flatten multiplies the known dims; the batch stays symbolic.
    assert_eq!(
        ty("f").shape.unwrap(),
        vec![Dim::Sym("N".into()), Dim::Known(16 * 56 * 56)]
    );
}
