//! A model encoded straight from the IR, byte for byte as prost encodes
//! [`Model::to_proto`]'s `ModelProto` — without building it.
//!
//! Building the `ModelProto` first cloned every node (its strings, its
//! attributes, a `Vec` of input names) only to encode and drop it: on a
//! 1M-node graph that was most of export's time. Here each node is written
//! from the IR: its wiring as the names of its values, its other fields as
//! read. prost writes a message's fields in tag order (the C++ runtime
//! does the same), so the fields the IR keeps whole — the model's and the
//! graph's headers — are encoded by prost and spliced in between the
//! fields written here at their tag positions. A length-delimited message
//! needs its length first: the graph's is summed over the nodes, whose
//! lengths are kept for the write.

use std::borrow::Cow;

use bytes::BufMut;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, message, string, WireType};
use prost::Message;

use crate::error::Result;
use crate::graph::Graph;
use crate::ids::{NodeId, ValueId};
use crate::model::Model;
use crate::node::Node;
use crate::proto::{TensorProto, ValueInfoProto};

/// Everything needed to write a model: the node order, each node's
/// length, and the headers' encoded fields.
pub(crate) struct Plan<'a> {
    graph: &'a Graph,
    order: Vec<NodeId>,
    node_lens: Vec<usize>,
    /// The model header's fields before `graph` (tags 1–6) and after it.
    model_header: Vec<u8>,
    model_split: usize,
    /// The graph header's fields, split where the IR's lists go: tags 2–4
    /// (before `initializer`), 6–10 (before `input`), 14 and up.
    graph_header: Vec<u8>,
    graph_splits: [usize; 2],
    graph_len: usize,
    len: usize,
}

impl<'a> Plan<'a> {
    pub fn new(model: &'a Model) -> Result<Plan<'a>> {
        let graph = &model.graph;
        let order = graph.topo_order()?;
        let mut header = model.header.clone();
        header.graph = None;
        let model_header = header.encode_to_vec();
        let model_split = first_field_at_least(&model_header, 8);
        let graph_header = graph.header.encode_to_vec();
        let graph_splits = [
            first_field_at_least(&graph_header, 5),
            first_field_at_least(&graph_header, 11),
        ];
        let mut plan = Plan {
            graph,
            node_lens: Vec::with_capacity(order.len()),
            order,
            model_header,
            model_split,
            graph_header,
            graph_splits,
            graph_len: 0,
            len: 0,
        };
        let mut len = plan.graph_header.len();
        for &id in &plan.order {
            let n = node_len(graph, graph.node(id));
            plan.node_lens.push(n);
            len += 1 + encoded_len_varint(n as u64) + n;
        }
        for v in graph.initializers() {
            len += message::encoded_len(5, initializer(graph, v).as_ref());
        }
        for (v, info) in graph.inputs.iter().chain(&graph.outputs) {
            len += message::encoded_len(11, named(graph, Some(*v), info).as_ref());
        }
        for (v, info) in graph.value_infos() {
            len += message::encoded_len(13, named(graph, v, info).as_ref());
        }
        plan.graph_len = len;
        plan.len = plan.model_header.len() + 1 + encoded_len_varint(len as u64) + len;
        Ok(plan)
    }

    /// The encoded model's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        let g = self.graph;
        buf.put_slice(&self.model_header[..self.model_split]);
        encode_key(7, WireType::LengthDelimited, buf);
        encode_varint(self.graph_len as u64, buf);
        for (&id, &len) in self.order.iter().zip(&self.node_lens) {
            encode_key(1, WireType::LengthDelimited, buf);
            encode_varint(len as u64, buf);
            write_node(g, g.node(id), buf);
        }
        let [a, b] = self.graph_splits;
        buf.put_slice(&self.graph_header[..a]);
        for v in g.initializers() {
            message::encode(5, initializer(g, v).as_ref(), buf);
        }
        buf.put_slice(&self.graph_header[a..b]);
        for (v, info) in &g.inputs {
            message::encode(11, named(g, Some(*v), info).as_ref(), buf);
        }
        for (v, info) in &g.outputs {
            message::encode(12, named(g, Some(*v), info).as_ref(), buf);
        }
        for (v, info) in g.value_infos() {
            message::encode(13, named(g, v, info).as_ref(), buf);
        }
        buf.put_slice(&self.graph_header[b..]);
        buf.put_slice(&self.model_header[self.model_split..]);
    }
}

/// The offset of the first top-level field of `encoded` whose tag is at
/// least `tag` (its length if none is). `encoded` is prost's own output.
fn first_field_at_least(encoded: &[u8], tag: u32) -> usize {
    let mut buf = encoded;
    while !buf.is_empty() {
        let at = encoded.len() - buf.len();
        let Ok((t, wire_type)) = prost::encoding::decode_key(&mut buf) else {
            break;
        };
        if t >= tag {
            return at;
        }
        let ctx = prost::encoding::DecodeContext::default();
        if prost::encoding::skip_field(wire_type, t, &mut buf, ctx).is_err() {
            break;
        }
    }
    encoded.len()
}

fn str_len(s: &str) -> usize {
    1 + encoded_len_varint(s.len() as u64) + s.len()
}

/// A value's name for a node's wiring; `""` for an absent input.
fn wire_name(g: &Graph, v: Option<ValueId>) -> &str {
    v.map_or("", |v| g.value(v).name.as_str())
}

fn node_len(g: &Graph, n: &Node) -> usize {
    let wires: usize = n
        .inputs
        .iter()
        .chain(&n.outputs)
        .map(|&v| str_len(wire_name(g, v)))
        .sum();
    let names: usize = [n.name.as_deref(), n.op_type_field(), n.domain_field()]
        .into_iter()
        .flatten()
        .map(str_len)
        .sum();
    wires + names + n.rest.as_deref().map_or(0, |r| r.encoded_len())
}

fn put_str(tag: u32, s: &str, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(s.len() as u64, buf);
    buf.put_slice(s.as_bytes());
}

fn put_name(tag: u32, s: Option<&str>, buf: &mut impl BufMut) {
    if let Some(s) = s {
        put_str(tag, s, buf);
    }
}

/// A node's fields in tag order: input 1, output 2, name 3, op_type 4,
/// attribute 5, doc_string 6, domain 7, overload 8, metadata_props 9,
/// device_configurations 10.
fn write_node(g: &Graph, n: &Node, buf: &mut impl BufMut) {
    for &v in &n.inputs {
        put_str(1, wire_name(g, v), buf);
    }
    for &v in &n.outputs {
        put_str(2, wire_name(g, v), buf);
    }
    put_name(3, n.name.as_deref(), buf);
    put_name(4, n.op_type_field(), buf);
    if let Some(r) = n.rest.as_deref() {
        for a in &r.attribute {
            message::encode(5, a, buf);
        }
        if let Some(s) = &r.doc_string {
            string::encode(6, s, buf);
        }
    }
    put_name(7, n.domain_field(), buf);
    if let Some(r) = n.rest.as_deref() {
        if let Some(s) = &r.overload {
            string::encode(8, s, buf);
        }
        for m in &r.metadata_props {
            message::encode(9, m, buf);
        }
        for d in &r.device_configurations {
            message::encode(10, d, buf);
        }
    }
}

/// An initializer's proto, named as its value (a copy only when a rename
/// has not reached the tensor).
fn initializer(g: &Graph, v: ValueId) -> Cow<'_, TensorProto> {
    let val = g.value(v);
    let p = val.initializer.as_deref().expect("initializer").proto();
    if p.name.as_deref() == Some(val.name.as_str()) {
        Cow::Borrowed(p)
    } else {
        let mut p = p.clone();
        p.name = Some(val.name.to_string());
        Cow::Owned(p)
    }
}

/// A `ValueInfoProto` named as its value, if it has one.
fn named<'g>(
    g: &'g Graph,
    v: Option<ValueId>,
    info: &'g ValueInfoProto,
) -> Cow<'g, ValueInfoProto> {
    match v {
        Some(v) if info.name.as_deref() != Some(g.value(v).name.as_str()) => {
            let mut info = info.clone();
            info.name = Some(g.value(v).name.to_string());
            Cow::Owned(info)
        }
        _ => Cow::Borrowed(info),
    }
}
