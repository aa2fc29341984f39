//! Bytes → validated [`Model`].
//!
//! Every way a file can be broken is an [`IrError`] naming the tensor or
//! node: undecodable bytes, no graph, an undefined input, a value defined
//! twice, a cycle, a tensor whose payload does not match its dims, external
//! data that is missing, short or outside the model's folder.

use std::path::Path;

use bytes::Bytes;
use prost::Message;

use crate::decode::RawGraph;
use crate::error::{IrError, Result};
use crate::external;
use crate::graph::{Graph, ORDER_GAP};
use crate::ids::{NodeId, ValueId};
use crate::model::{opset_of, Model};
use crate::name::Name;
use crate::node::Node;
use crate::op::Op;
use crate::proto::{ModelProto, TensorProto};
use crate::shape::TensorType;
use crate::subgraph::attribute_free_names;
use crate::tensor::Tensor;
use crate::value::Use;

/// Reads and validates the model at `path`; external data is resolved
/// against the file's folder. The file is memory-mapped (see
/// [`crate::mapped`]): tensors are slices of the mapping.
pub fn load(path: &Path) -> Result<Model> {
    let bytes = crate::mapped::read(path).map_err(|source| IrError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    from_bytes(bytes, dir)
}

/// Decodes a `ModelProto` without building the IR.
pub fn decode(bytes: Bytes) -> Result<ModelProto> {
    ModelProto::decode(bytes).map_err(|e| IrError::Decode(e.to_string()))
}

/// Decodes and validates a model from memory. `dir` is the folder external
/// data is read from; without it, a model with external data is an error.
/// The graph is decoded straight into the IR (see `ir/src/decode.rs`);
/// tensor payloads and names are slices of `bytes`.
pub fn from_bytes(bytes: Bytes, dir: Option<&Path>) -> Result<Model> {
    let (header, graph) = crate::decode::model(bytes)?;
    build(header, graph.ok_or(IrError::NoGraph)?, dir)
}

pub fn from_proto(mut proto: ModelProto, dir: Option<&Path>) -> Result<Model> {
    let g = proto.graph.take().ok_or(IrError::NoGraph)?;
    build(proto, RawGraph::from_proto(g), dir)
}

fn build(proto: ModelProto, mut g: RawGraph, dir: Option<&Path>) -> Result<Model> {
    let opset = opset_of(&proto, "").unwrap_or(if proto.opset_import.is_empty() { 1 } else { 0 });

    let mut files = external::Files::default();
    for (_, t) in g.initializers.iter_mut() {
        if external::is_external(t.proto()) {
            external::load(t.proto_mut(), dir, &mut files)?;
        }
    }
    for n in g.nodes.iter_mut().flatten() {
        for a in n.rest.iter_mut().flat_map(|r| r.attribute.iter_mut()) {
            if let Some(t) = a.t.as_mut() {
                if external::is_external(t) {
                    external::load(t, dir, &mut files)?;
                }
            }
        }
    }
    let external_bytes = files.total_bytes();
    drop(files);

    let mut graph = Graph {
        opset,
        initializers_are_inputs: proto.ir_version.is_some_and(|v| v < 4),
        ..Default::default()
    };
    let mut nodes = std::mem::take(&mut g.nodes);
    let spellings = std::mem::take(&mut g.spellings);
    let initializers = std::mem::take(&mut g.initializers);
    let inputs = std::mem::take(&mut g.inputs);
    let outputs = std::mem::take(&mut g.outputs);
    let value_info = std::mem::take(&mut g.value_info);
    // Sized once: growing these tables by doubling on a 1M-node graph
    // copied and page-faulted hundreds of MB (bench/scaling).
    let value_count = inputs.len()
        + initializers.len()
        + g.header.sparse_initializer.len()
        + g.output_names.len();
    graph.values.reserve_exact(value_count);
    graph.names.reserve(value_count);
    graph.initializer_order.reserve_exact(initializers.len());

    // Graph inputs first: an initializer of the same name gives the input a
    // default value (IR < 4 lists every initializer as an input).
    for info in inputs {
        let name = info.name.as_deref().unwrap_or_default();
        let ty = info.r#type.as_ref().and_then(TensorType::from_proto);
        let id = match graph.names.get(&graph.values, name) {
            Some(id) => id,
            None => graph.new_value(Name::from(name))?,
        };
        let v = graph.value_mut(id);
        v.is_graph_input = true;
        v.ty = ty;
        graph.inputs.push((id, info));
    }
    for (name, tensor) in initializers {
        tensor.validate().map_err(|message| IrError::BadTensor {
            tensor: name.to_string(),
            message,
        })?;
        let id = match graph.names.get(&graph.values, name.as_str()) {
            Some(id) if graph.value(id).is_graph_input && graph.value(id).initializer.is_none() => {
                id
            }
            Some(_) => {
                return Err(IrError::ProducedTwice {
                    value: name.to_string(),
                    first: "an earlier initializer or input".into(),
                    second: "an initializer".into(),
                })
            }
            None => graph.new_value(name)?,
        };
        let ty = TensorType::new(tensor.dtype(), tensor.dims());
        let v = graph.value_mut(id);
        v.ty = Some(match &v.ty {
            Some(declared) => ty.merge(declared),
            None => ty,
        });
        v.initializer = Some(tensor);
        graph.initializer_order.push(id);
    }
    for s in &g.header.sparse_initializer {
        let name = s
            .values
            .as_ref()
            .and_then(|v| v.name.as_deref())
            .unwrap_or_default();
        let id = graph.new_value(Name::from(name))?;
        graph.value_mut(id).sparse = true;
    }

    // Node outputs are registered before inputs are resolved, so a file
    // whose nodes are out of order still imports (and is sorted on export).
    // The nodes are completed in place (they are moved once, into the
    // graph, as a whole table).
    for (index, (op_type, domain)) in spellings.into_iter().enumerate() {
        let id = NodeId(index as u32);
        let (before, rest) = nodes.split_at_mut(index);
        let node = rest[0].as_mut().expect("decoded nodes are all present");
        let op_type_str = op_type.as_deref().unwrap_or("");
        for a in node.attributes() {
            if let Some(t) = &a.t {
                check_tensor(t, node, op_type_str)?;
            }
        }
        node.op = Op::parse(
            domain.as_deref().unwrap_or(""),
            op_type_str,
            node.attributes(),
        )
        .map_err(|message| IrError::BadNode {
            node: node.name().to_string(),
            op_type: op_type_str.to_string(),
            message,
        })?;
        node.set_spelling(op_type, domain);
        let names = g.node_outputs(index);
        let mut outputs = crate::node::Outputs::with_capacity(names.len());
        for (slot, o) in names.iter().enumerate() {
            if o.is_empty() {
                outputs.push(None);
                continue;
            }
            let h = graph.names.hash(o);
            if let Some(prev) = graph.names.get_hashed(&graph.values, o, h) {
                // A node output defined before: by this node (an output
                // listed twice) or an earlier one.
                let first = match graph.value(prev).producer {
                    Some((n, _)) if n == id => format!("node '{}'", node.name()),
                    Some((n, _)) => format!(
                        "node '{}'",
                        before[n.index()].as_ref().map_or("", |n| n.name())
                    ),
                    None => graph.describe_definition(prev),
                };
                return Err(IrError::ProducedTwice {
                    value: o.to_string(),
                    first,
                    second: format!("node '{}'", node.name()),
                });
            }
            let v = graph.new_value_hashed(o.clone(), h)?;
            graph.value_mut(v).producer = Some((id, slot));
            outputs.push(Some(v));
        }
        node.outputs = outputs;
        node.order = (index as u64 + 1) * ORDER_GAP;
        graph.generation += 1;
    }
    graph.live_nodes = nodes.len();
    graph.nodes = nodes;
    graph.next_order = (graph.nodes.len() as u64 + 1) * ORDER_GAP;

    for index in 0..graph.nodes.len() {
        let id = NodeId(index as u32);
        let names = g.node_inputs(index);
        let mut ids = crate::node::Inputs::with_capacity(names.len());
        for (slot, input) in names.iter().enumerate() {
            if input.is_empty() {
                ids.push(None);
                continue;
            }
            let v = lookup(&graph, id, input)?;
            graph.value_mut(v).uses.push(Use::Input { node: id, slot });
            ids.push(Some(v));
        }
        let free = attribute_free_names(graph.node(id).attributes());
        let mut captures = Vec::with_capacity(free.len());
        for name in free {
            let v = lookup(&graph, id, &name)?;
            graph.value_mut(v).uses.push(Use::Capture { node: id });
            captures.push(v);
        }
        let n = graph.node_mut(id);
        n.inputs = ids;
        n.captures = captures.into_boxed_slice();
    }

    for info in outputs {
        let name = info.name.as_deref().unwrap_or_default();
        let id = graph
            .names
            .get(&graph.values, name)
            .ok_or_else(|| IrError::UndefinedOutput(name.to_string()))?;
        if let Some(ty) = info.r#type.as_ref().and_then(TensorType::from_proto) {
            let v = graph.value_mut(id);
            v.ty = Some(match &v.ty {
                Some(t) => t.merge(&ty),
                None => ty,
            });
        }
        graph.outputs.push((id, info));
    }
    for info in value_info {
        let name = info.name.as_deref().unwrap_or_default();
        // A value_info for a name nothing defines is harmless in ONNX; it is
        // kept, unattached, and written back in place.
        let Some(id) = graph.names.get(&graph.values, name) else {
            graph.value_info.push((None, info));
            continue;
        };
        if let Some(ty) = info.r#type.as_ref().and_then(TensorType::from_proto) {
            let v = graph.value_mut(id);
            v.ty = Some(match &v.ty {
                Some(t) => t.merge(&ty),
                None => ty,
            });
        }
        graph.value_mut(id).declared = true;
        graph.value_info.push((Some(id), info));
    }
    graph.header = g.header;

    graph.topo_order()?;
    crate::infer::infer_types(&mut graph);
    Ok(Model {
        header: proto,
        graph,
        external_bytes,
    })
}

fn lookup(graph: &Graph, node: NodeId, name: &str) -> Result<ValueId> {
    graph.names.get(&graph.values, name).ok_or_else(|| {
        let n = graph.node(node);
        IrError::UndefinedInput {
            node: n.name().to_string(),
            op_type: n.op_type().to_string(),
            input: name.to_string(),
        }
    })
}

/// `op_type`: the node's, which it does not hold yet.
fn check_tensor(t: &TensorProto, node: &Node, op_type: &str) -> Result<()> {
    Tensor::from_proto(t.clone())
        .validate()
        .map_err(|message| IrError::BadNode {
            node: node.name().to_string(),
            op_type: op_type.to_string(),
            message: format!("tensor attribute: {message}"),
        })
}
