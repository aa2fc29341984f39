//! A node of the graph.

use crate::ids::ValueId;
use crate::op::Op;
use crate::proto::{AttributeProto, NodeProto};

/// A node. Its `NodeProto` (minus the wiring, which lives in value ids) is
/// kept whole — domain, attributes, doc string, `overload`, metadata,
/// device configurations — so an untouched node is written back exactly.
/// The typed [`Op`] is a view of those attributes; [`crate::Graph::set_op`]
/// keeps the two in step.
#[derive(Clone, Debug)]
pub struct Node {
    pub(crate) op: Op,
    pub(crate) proto: NodeProto,
    pub(crate) inputs: Vec<Option<ValueId>>,
    pub(crate) outputs: Vec<Option<ValueId>>,
    /// Outer-scope values read by this node's subgraphs (If/Loop/Scan): they
    /// count as uses, so nothing they read is renamed or removed.
    pub(crate) captures: Vec<ValueId>,
    /// Position for the stable topological order used on export.
    pub(crate) order: u64,
}

impl Node {
    pub fn op(&self) -> &Op {
        &self.op
    }

    pub fn name(&self) -> &str {
        self.proto.name.as_deref().unwrap_or("")
    }

    pub fn op_type(&self) -> &str {
        self.proto.op_type.as_deref().unwrap_or("")
    }

    pub fn domain(&self) -> &str {
        self.proto.domain.as_deref().unwrap_or("")
    }

    pub fn attributes(&self) -> &[AttributeProto] {
        &self.proto.attribute
    }

    /// Everything else the model said about this node (doc string, metadata
    /// …); its `input`, `output` and `name` fields are not maintained here.
    pub fn proto(&self) -> &NodeProto {
        &self.proto
    }

    pub fn inputs(&self) -> &[Option<ValueId>] {
        &self.inputs
    }

    /// Input `i`, if present and not the empty name.
    pub fn input(&self, i: usize) -> Option<ValueId> {
        self.inputs.get(i).copied().flatten()
    }

    pub fn outputs(&self) -> &[Option<ValueId>] {
        &self.outputs
    }

    pub fn output(&self, i: usize) -> Option<ValueId> {
        self.outputs.get(i).copied().flatten()
    }

    pub fn captures(&self) -> &[ValueId] {
        &self.captures
    }

    /// True when the node holds subgraphs (If, Loop, Scan, custom ops).
    pub fn has_subgraphs(&self) -> bool {
        self.proto
            .attribute
            .iter()
            .any(|a| a.g.is_some() || !a.graphs.is_empty())
    }
}
