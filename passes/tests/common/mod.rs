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

/// The change list, then a line diff (LCS) of the dumps: "- " only before,
/// "+ " only after, "  " both.
pub fn snapshot_text(before: &str, after: &str, changes: &[Change]) -> String {
    let mut s = String::from("changes:\n");
    for c in changes {
        s.push_str(&format!(
            "  {}/{} [{}] {}",
            c.pass,
            c.rule,
            c.matched.join(", "),
            c.note
        ));
        if !c.removed.is_empty() {
            s.push_str(&format!(" (removed: {})", c.removed.join(", ")));
        }
        if !c.added.is_empty() {
            s.push_str(&format!(" (added: {})", c.added.join(", ")));
        }
        s.push('\n');
    }
    s.push_str("diff:\n");
    s.push_str(&line_diff(before, after));
    s
}

fn line_diff(before: &str, after: &str) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

#[test]
fn line_diff_is_an_lcs_diff() {
    let d = line_diff("a\nb\nc\nd\n", "a\nc\nx\nd\n");
    assert_eq!(d, "  a\n- b\n  c\n+ x\n  d\n");
    // Reordered lines show as removed and added, unlike a set difference.
    assert_eq!(line_diff("a\nb\n", "b\na\n"), "- a\n  b\n+ a\n");
}
