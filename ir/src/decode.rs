//! A model's bytes decoded straight into the pieces the IR is built from.
//!
//! prost would first build the whole `ModelProto` — a `NodeProto` of
//! `String`s per node, a `Vec` of input names per node — which import then
//! copied into the graph and dropped: at a million nodes that was most of
//! import's time, and its peak memory. Here the graph's nodes are decoded
//! field by field into [`Node`]s, names as [`Name`] slices of the file's
//! buffer (no copy); every other field, at every level, is handed to
//! prost's own `merge_field`, so the result is exactly what decoding the
//! `ModelProto` with prost and splitting it would give — including
//! protobuf's rules that a repeated singular message merges and a repeated
//! singular scalar keeps the last value.

use bytes::{Buf, Bytes};
use prost::encoding::{decode_key, decode_varint, DecodeContext, WireType};
use prost::Message;

use crate::error::{IrError, Result};
use crate::name::Name;
use crate::node::{is_blank, Node};
use crate::op::Op;
use crate::proto::{GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use crate::tensor::Tensor;

/// A decoded graph whose names are not resolved yet.
#[derive(Default)]
pub(crate) struct RawGraph {
    /// Fields the IR does not model; its node, initializer, input, output
    /// and value_info lists are empty.
    pub header: GraphProto,
    /// Nodes in file order (all `Some`: the graph's own node table), their
    /// wiring not yet set; `op` is [`Op::Other`] until parsed.
    pub nodes: Vec<Option<Node>>,
    /// Each node's `op_type` and `domain` fields, for import to parse the
    /// op from and then store in the node only if the op does not imply
    /// them (see [`Node::set_spelling`]).
    pub spellings: Vec<(Option<Name>, Option<Name>)>,
    /// Every node's input names, node after node; node `i`'s are
    /// `input_names[input_ends[i-1]..input_ends[i]]`.
    pub input_names: Vec<Name>,
    pub input_ends: Vec<u32>,
    pub output_names: Vec<Name>,
    pub output_ends: Vec<u32>,
    /// Initializers with their names (the tensor's `name` field, shared),
    /// each decoded straight into the box the graph keeps it in: a list of
    /// `TensorProto`s by value (~340 bytes each) was 0.45 GB at a million
    /// nodes (bench/scaling), written once here and copied once more into
    /// the boxes.
    pub initializers: Vec<(Name, Box<Tensor>)>,
    pub inputs: Vec<ValueInfoProto>,
    pub outputs: Vec<ValueInfoProto>,
    pub value_info: Vec<ValueInfoProto>,
}

impl RawGraph {
    pub fn node_inputs(&self, i: usize) -> &[Name] {
        let start = if i == 0 { 0 } else { self.input_ends[i - 1] };
        &self.input_names[start as usize..self.input_ends[i] as usize]
    }

    pub fn node_outputs(&self, i: usize) -> &[Name] {
        let start = if i == 0 { 0 } else { self.output_ends[i - 1] };
        &self.output_names[start as usize..self.output_ends[i] as usize]
    }

    /// The pieces of a graph already decoded by prost (names copied once).
    pub fn from_proto(mut g: GraphProto) -> RawGraph {
        let nodes = std::mem::take(&mut g.node);
        let mut raw = RawGraph {
            initializers: std::mem::take(&mut g.initializer)
                .into_iter()
                .map(|t| {
                    let name = Name::from(t.name.as_deref().unwrap_or(""));
                    (name, Box::new(Tensor::from_proto(t)))
                })
                .collect(),
            inputs: std::mem::take(&mut g.input),
            outputs: std::mem::take(&mut g.output),
            value_info: std::mem::take(&mut g.value_info),
            header: g,
            ..Default::default()
        };
        raw.nodes.reserve_exact(nodes.len());
        raw.spellings.reserve_exact(nodes.len());
        for mut p in nodes {
            raw.input_names
                .extend(std::mem::take(&mut p.input).into_iter().map(Name::from));
            raw.output_names
                .extend(std::mem::take(&mut p.output).into_iter().map(Name::from));
            raw.input_ends.push(raw.input_names.len() as u32);
            raw.output_ends.push(raw.output_names.len() as u32);
            let (name, op_type, domain, rest) = Node::split_proto(p);
            raw.nodes.push(Some(blank_node(name, rest)));
            raw.spellings.push((op_type, domain));
        }
        raw
    }
}

/// A node with its name and rest; its op, spelling and wiring are set by
/// import.
fn blank_node(name: Option<Name>, rest: Option<Box<NodeProto>>) -> Node {
    Node {
        op: Op::Other,
        name,
        spelling: None,
        rest,
        inputs: Default::default(),
        outputs: Default::default(),
        captures: Default::default(),
        order: 0,
    }
}

fn err(e: impl std::fmt::Display) -> IrError {
    IrError::Decode(e.to_string())
}

/// Decodes a model: its header (everything but the graph) and, if it has
/// one, its graph's pieces.
pub(crate) fn model(bytes: Bytes) -> Result<(ModelProto, Option<RawGraph>)> {
    let mut buf = bytes;
    let mut header = ModelProto::default();
    let mut graph: Option<RawGraph> = None;
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(err)?;
        if tag == 7 {
            // ModelProto.graph; a second occurrence merges into the first.
            let msg = delimited(wire_type, &mut buf, "ModelProto.graph")?;
            graph_into(msg, graph.get_or_insert_with(RawGraph::default))?;
        } else {
            header
                .merge_field(tag, wire_type, &mut buf, DecodeContext::default())
                .map_err(err)?;
        }
    }
    Ok((header, graph))
}

/// The payload of a length-delimited field.
fn delimited(wire_type: WireType, buf: &mut Bytes, field: &str) -> Result<Bytes> {
    if wire_type != WireType::LengthDelimited {
        return Err(IrError::Decode(format!(
            "{field}: invalid wire type: {wire_type:?} (expected LengthDelimited)"
        )));
    }
    let len = decode_varint(buf).map_err(err)?;
    if len > buf.remaining() as u64 {
        return Err(IrError::Decode(format!("{field}: buffer underflow")));
    }
    Ok(buf.split_to(len as usize))
}

fn name(wire_type: WireType, buf: &mut Bytes, field: &str) -> Result<Name> {
    let b = delimited(wire_type, buf, field)?;
    Name::from_utf8(b).map_err(|_| {
        IrError::Decode(format!(
            "{field}: invalid string value: data is not UTF-8 encoded"
        ))
    })
}

fn graph_into(mut buf: Bytes, g: &mut RawGraph) -> Result<()> {
    // The lists sized first: growing a million-node table by doubling
    // copied it and faulted in its pages again and again.
    let (nodes, initializers) = count_nodes_and_initializers(&buf);
    g.nodes.reserve(nodes);
    g.spellings.reserve(nodes);
    g.input_ends.reserve(nodes);
    g.output_ends.reserve(nodes);
    g.input_names.reserve(2 * nodes);
    g.output_names.reserve(nodes);
    g.initializers.reserve(initializers);
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(err)?;
        match tag {
            1 => {
                let msg = delimited(wire_type, &mut buf, "GraphProto.node")?;
                node_into(msg, g)?;
            }
            5 => {
                let msg = delimited(wire_type, &mut buf, "GraphProto.initializer")?;
                let name = tensor_name(&msg)?;
                let mut t = Box::new(Tensor::from_proto(TensorProto::default()));
                t.proto_mut().merge(msg).map_err(err)?;
                g.initializers.push((name, t));
            }
            11..=13 => {
                let msg = delimited(wire_type, &mut buf, "GraphProto.value_info")?;
                let info = ValueInfoProto::decode(msg).map_err(err)?;
                match tag {
                    11 => g.inputs.push(info),
                    12 => g.outputs.push(info),
                    _ => g.value_info.push(info),
                }
            }
            _ => g
                .header
                .merge_field(tag, wire_type, &mut buf, DecodeContext::default())
                .map_err(err)?,
        }
    }
    Ok(())
}

/// How many nodes and initializers a graph message holds, by skipping
/// from field to field; a count as far as the fields read (a defect is
/// reported by the decode that follows).
fn count_nodes_and_initializers(msg: &Bytes) -> (usize, usize) {
    let mut buf: &[u8] = msg;
    let (mut nodes, mut initializers) = (0, 0);
    while !buf.is_empty() {
        let Ok((tag, wire_type)) = decode_key(&mut buf) else {
            break;
        };
        match (tag, wire_type) {
            (1, WireType::LengthDelimited) => nodes += 1,
            (5, WireType::LengthDelimited) => initializers += 1,
            _ => {}
        }
        if prost::encoding::skip_field(wire_type, tag, &mut buf, DecodeContext::default()).is_err()
        {
            break;
        }
    }
    (nodes, initializers)
}

/// A `TensorProto`'s `name` (its last occurrence, as protobuf reads it) as
/// a slice of `msg`; `""` when absent. Called before prost decodes `msg`
/// whole, which reports any defect.
fn tensor_name(msg: &Bytes) -> Result<Name> {
    let mut buf = msg.clone();
    let mut found = Name::default();
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(err)?;
        if tag == 8 {
            found = name(wire_type, &mut buf, "TensorProto.name")?;
        } else {
            prost::encoding::skip_field(wire_type, tag, &mut buf, DecodeContext::default())
                .map_err(err)?;
        }
    }
    Ok(found)
}

fn node_into(mut buf: Bytes, g: &mut RawGraph) -> Result<()> {
    let (mut node_name, mut op_type, mut domain) = (None, None, None);
    let mut rest: Option<Box<NodeProto>> = None;
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(err)?;
        match tag {
            1 => g
                .input_names
                .push(name(wire_type, &mut buf, "NodeProto.input")?),
            2 => g
                .output_names
                .push(name(wire_type, &mut buf, "NodeProto.output")?),
            3 => node_name = Some(name(wire_type, &mut buf, "NodeProto.name")?),
            4 => op_type = Some(name(wire_type, &mut buf, "NodeProto.op_type")?),
            7 => domain = Some(name(wire_type, &mut buf, "NodeProto.domain")?),
            _ => rest
                .get_or_insert_default()
                .merge_field(tag, wire_type, &mut buf, DecodeContext::default())
                .map_err(err)?,
        }
    }
    g.input_ends.push(g.input_names.len() as u32);
    g.output_ends.push(g.output_names.len() as u32);
    let rest = rest.filter(|r| !is_blank(r));
    g.nodes.push(Some(blank_node(node_name, rest)));
    g.spellings.push((op_type, domain));
    Ok(())
}
