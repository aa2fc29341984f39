//! `fold-constants`: turns `Constant` nodes into initializers and evaluates
//! nodes whose inputs are all constants.
//!
//! Before:  `c = Constant(value=T)`;  `s = Shape(x: f32[1,3,8,8])`;  `y = Gather(s, 1)`
//! After:   initializers c = T, y = 3 (the Shape and Gather nodes are gone)
//!
//! The folded value keeps its name (it is detached from its producer and
//! given an initializer), so downstream names and graph outputs are stable.
//!
//! Evaluated: a node of the default domain with one output whose present
//! inputs are all constants, by the shared evaluator (`npuopt_ir::eval`,
//! which lists its ops and declines rather than guess), and `Shape` of a
//! value whose shape is fully known (its input need not be a constant).
//!
//! Not folded: what the evaluator declines (reported as a skip when every
//! input is a constant, naming the op), a graph input with an initializer
//! (a caller may override it), nodes of other domains or with subgraphs,
//! and — when the result is read at most once and is larger than the
//! constants folding frees (inputs nothing else reads) — a result larger
//! than 1 MiB or, for ConstantOfShape, Range, Expand and Tile, more than
//! 64× the bytes of its inputs (folding would only grow the file). A
//! Transpose of a weight only it reads folds whatever its size.

use npuopt_ir::eval::{self, Val};
use npuopt_ir::{Graph, NodeId, Op, Tensor};

use crate::change::Change;
use crate::pass::{for_each_live_node, Pass, PassContext, PassError};

pub struct FoldConstants;

const NAME: &str = "fold-constants";

/// Results above this many bytes are "large".
const LARGE_BYTES: u64 = 1 << 20;
/// Growth ops whose result exceeds this multiple of their inputs are "large".
const MAX_GROWTH: u64 = 64;

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "turn Constant nodes into initializers and evaluate shape and weight computations on constants"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let g = &mut model.graph;
        for_each_live_node(g, cx, |g, id, cx| {
            fold_node(g, id, cx);
        })
    }
}

fn fold_node(g: &mut Graph, id: NodeId, cx: &mut PassContext) {
    let n = g.node(id);
    if !(n.domain().is_empty() || n.domain() == "ai.onnx") || n.has_subgraphs() {
        return;
    }
    if n.outputs().len() != 1 {
        return;
    }
    let Some(out) = n.output(0) else { return };
    let name = n.name().to_string();
    let op_type = n.op_type().to_string();
    if let Op::Constant(c) = n.op() {
        let Some(t) = c.tensor() else { return };
        let t = Tensor::from_proto(t);
        let summary = summary(&t, cx);
        g.make_constant(out, t);
        g.remove_node(id);
        let vname = g.value(out).name().to_string();
        cx.record(
            Change::new(
                NAME,
                "constant-to-initializer",
                &[&name],
                format!("Constant '{name}' became initializer '{vname}' ({summary})"),
            )
            .removed(&[&name]),
        );
        return;
    }
    let Some(result) = evaluate(g, id) else {
        report_unevaluated(g, id, &name, &op_type, cx);
        return;
    };
    let t = result.into_tensor();
    let out_bytes = t.byte_size();
    let in_bytes: u64 = g
        .node(id)
        .inputs()
        .iter()
        .flatten()
        .filter_map(|&v| g.constant(v))
        .map(Tensor::byte_size)
        .sum();
    // The bytes folding frees: constant inputs nothing else reads.
    let freed: u64 = g
        .node(id)
        .inputs()
        .iter()
        .flatten()
        .filter(|&&v| !g.is_graph_output(v) && g.value(v).uses().iter().all(|u| u.node() == id))
        .filter_map(|&v| g.constant(v))
        .map(Tensor::byte_size)
        .sum();
    let growth_op = matches!(
        op_type.as_str(),
        "ConstantOfShape" | "Range" | "Expand" | "Tile"
    );
    let large = out_bytes > LARGE_BYTES || (growth_op && out_bytes > MAX_GROWTH * in_bytes.max(1));
    let uses = g.value(out).uses().len() + usize::from(g.is_graph_output(out));
    if large && uses <= 1 && out_bytes > freed {
        cx.skip(
            NAME,
            "evaluate",
            &name,
            format!(
                "{op_type} '{name}' is not folded: its result ({out_bytes} bytes from {in_bytes} bytes of inputs) is large and read once"
            ),
        );
        return;
    }
    let summary = summary(&t, cx);
    g.make_constant(out, t);
    g.remove_node(id);
    let vname = g.value(out).name().to_string();
    cx.record(
        Change::new(
            NAME,
            "evaluate",
            &[&name],
            format!("evaluated {op_type} '{name}' into initializer '{vname}' ({summary})"),
        )
        .removed(&[&name]),
    );
}

/// Says why a node whose inputs are all constants stays: a constant
/// computation left in the graph hides the shapes behind it from shape
/// inference and the cost model, so the user should know which op stopped
/// it. Quantize/DequantizeLinear of constant weights stay by design (they
/// are the quantized model's format), and nodes without inputs (random
/// generators) have nothing to fold.
fn report_unevaluated(g: &Graph, id: NodeId, name: &str, op_type: &str, cx: &mut PassContext) {
    let n = g.node(id);
    if n.inputs().iter().flatten().next().is_none()
        || matches!(op_type, "QuantizeLinear" | "DequantizeLinear")
        || !n
            .inputs()
            .iter()
            .flatten()
            .all(|&v| g.constant(v).is_some())
    {
        return;
    }
    let dtypes = n
        .inputs()
        .iter()
        .flatten()
        .filter_map(|&v| g.constant(v))
        .map(|t| t.dtype().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let why = if eval::can_evaluate(op_type) {
        format!("npuopt's evaluator declines these inputs ({dtypes}) or attributes")
    } else if matches!(
        op_type,
        "Pow" | "Exp" | "Log" | "Sin" | "Cos" | "Tan" | "Tanh" | "Erf" | "Sigmoid"
    ) {
        // Not correctly rounded in every math library: a folded value could
        // differ from what the runtime computes.
        format!("npuopt does not evaluate {op_type} (its float result depends on the math library)")
    } else {
        format!("npuopt does not evaluate {op_type}")
    };
    cx.skip(
        NAME,
        "evaluate",
        name,
        format!("{op_type} '{name}' has only constant inputs but is not folded: {why}"),
    );
}

/// The folded tensor as the change note names it: with its content hash
/// unless the run shows no notes.
fn summary(t: &Tensor, cx: &PassContext) -> String {
    if cx.skip_note_hashes {
        npuopt_ir::dump::tensor_brief(t)
    } else {
        npuopt_ir::dump::tensor_summary(t)
    }
}

/// Evaluates node `id` with the shared evaluator if every present input is
/// a constant (or, for `Shape`, its input's dims are all known).
fn evaluate(g: &Graph, id: NodeId) -> Option<Val> {
    let n = g.node(id);
    if n.op_type() == "Shape" {
        let dims = g.ty(n.input(0)?)?.concrete()?;
        return eval::shape(&dims, n.attributes());
    }
    let mut ins: Vec<Option<Val>> = Vec::with_capacity(n.inputs().len());
    for v in n.inputs() {
        match v {
            None => ins.push(None),
            Some(v) => ins.push(Some(Val::of(g.constant(*v)?)?)),
        }
    }
    eval::evaluate(n.op_type(), n.attributes(), g.opset(), &ins)
}
