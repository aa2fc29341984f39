//! Shared helpers of the pass tests: a tiny ONNX model builder on the prost
//! types, a pipeline runner that checks the result re-imports, and the
//! snapshot text (change list + line diff of the dumps).

#![allow(dead_code)]

use npuopt_ir::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    ValueInfoProto,
};
use npuopt_ir::{DType, Model, Tensor, TensorType};
use npuopt_passes::Change;
use prost::Message;

/// A model under construction.
pub struct M {
    opset: i64,
    graph: GraphProto,
}

impl M {
    pub fn new(name: &str, opset: i64) -> M {
        M {
            opset,
            graph: GraphProto {
                name: Some(name.into()),
                ..Default::default()
            },
        }
    }

    pub fn input(&mut self, name: &str, dtype: DType, dims: &[i64]) -> &mut Self {
        let info = npuopt_ir::export::value_info_proto(name, &TensorType::new(dtype, dims));
        self.graph.input.push(info);
        self
    }

    pub fn output(&mut self, name: &str, dtype: DType, dims: &[i64]) -> &mut Self {
        let info = npuopt_ir::export::value_info_proto(name, &TensorType::new(dtype, dims));
        self.graph.output.push(info);
        self
    }

    /// A graph output without a declared type.
    pub fn output_untyped(&mut self, name: &str) -> &mut Self {
        self.graph.output.push(ValueInfoProto {
            name: Some(name.into()),
            ..Default::default()
        });
        self
    }

    pub fn init(&mut self, name: &str, t: Tensor) -> &mut Self {
        let mut p: TensorProto = t.into_proto();
        p.name = Some(name.into());
        self.graph.initializer.push(p);
        self
    }

    pub fn init_f32(&mut self, name: &str, dims: &[i64], v: &[f32]) -> &mut Self {
        self.init(name, Tensor::from_f32(name, dims, v))
    }

    pub fn init_i64(&mut self, name: &str, dims: &[i64], v: &[i64]) -> &mut Self {
        self.init(name, Tensor::from_i64(name, dims, v))
    }

    /// A node named `n_<first output>`; "" in `ins` is an absent input.
    pub fn node(
        &mut self,
        op: &str,
        ins: &[&str],
        outs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> &mut Self {
        self.graph.node.push(NodeProto {
            name: Some(format!("n_{}", outs[0])),
            op_type: Some(op.into()),
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: outs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        });
        self
    }

    /// A `Constant` node holding `t`.
    pub fn constant(&mut self, out: &str, t: Tensor) -> &mut Self {
        let mut p = t.into_proto();
        p.name = None;
        self.node(
            "Constant",
            &[],
            &[out],
            vec![npuopt_ir::attr::tensor("value", p)],
        )
    }

    pub fn bytes(&self) -> Vec<u8> {
        ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(self.opset),
            }],
            graph: Some(self.graph.clone()),
            ..Default::default()
        }
        .encode_to_vec()
    }

    pub fn model(&self) -> Model {
        npuopt_ir::import::from_bytes(self.bytes().into(), None).expect("the test model imports")
    }
}

pub fn dump(m: &Model) -> String {
    npuopt_ir::dump::dump(&m.graph).expect("dump")
}

/// Runs `passes` on `m`, checks the result exports and re-imports, and
/// returns (dump before, dump after, changes).
pub fn run(m: &mut Model, passes: &[&str]) -> (String, String, Vec<Change>) {
    let before = dump(m);
    let report = npuopt_passes::run_pipeline(m, passes, Default::default()).expect("pipeline");
    m.graph.validate().expect("valid after the pipeline");
    let bytes = m.to_bytes().expect("export");
    npuopt_ir::import::from_bytes(bytes.into(), None).expect("re-import");
    let after = dump(m);
    (before, after, report.changes)
}

/// Runs `passes` and returns the snapshot text.
pub fn run_snapshot(m: &mut Model, passes: &[&str]) -> String {
    let (before, after, changes) = run(m, passes);
    snapshot_text(&before, &after, &changes)
}

pub fn count_op(m: &Model, op: &str) -> usize {
    m.graph
        .node_ids()
        .filter(|&id| m.graph.node(id).op_type() == op)
        .count()
}

pub use npuopt_passes::change::snapshot_text;
