//! A node of the graph.

use crate::ids::ValueId;
use crate::name::Name;
use crate::op::Op;
use crate::proto::{AttributeProto, NodeProto};

/// A node's inputs: held inline up to three (most ops read one to three).
pub(crate) type Inputs = smallvec::SmallVec<[Option<ValueId>; 3]>;
/// A node's outputs: held inline when one.
pub(crate) type Outputs = smallvec::SmallVec<[Option<ValueId>; 1]>;

/// A node. Everything its `NodeProto` said is kept — name, op type,
/// domain, attributes, doc string, `overload`, metadata, device
/// configurations — so an untouched node is written back exactly; the
/// wiring lives in value ids. The fields every node has are held inline
/// (names are shared slices of the file, see [`Name`]); the rest, in a
/// `NodeProto` whose other fields are empty, only when the node has any.
/// The typed [`Op`] is a view of the attributes; [`crate::Graph::set_op`]
/// keeps the two in step.
///
/// A node is scanned by every pass, so it is kept small: the op type and
/// domain fields are stored only when they are not just the typed op's own
/// type and no domain (see `Spelling`), and captures (rare) as a boxed
/// slice; the largest ops are boxed (see [`Op`]). 352 bytes a node
/// before, 240 now: a 1M-node graph's node table 336 → 229 MiB
/// (bench/scaling).
#[derive(Clone, Debug)]
pub struct Node {
    pub(crate) op: Op,
    /// `None` when the file has no `name` field (distinct from `""`).
    pub(crate) name: Option<Name>,
    /// The `op_type` and `domain` fields as read, when they are other than
    /// `op`'s own type and no domain (an [`Op::Other`], a domain written
    /// out). `None`: `op` is typed, `op_type` is its type, no `domain`.
    pub(crate) spelling: Option<Box<Spelling>>,
    /// Attributes, doc string, overload, metadata and device
    /// configurations; its `input`, `output`, `name`, `op_type` and
    /// `domain` are empty. `None` when the node has none of these.
    pub(crate) rest: Option<Box<NodeProto>>,
    pub(crate) inputs: Inputs,
    pub(crate) outputs: Outputs,
    /// Outer-scope values read by this node's subgraphs (If/Loop/Scan): they
    /// count as uses, so nothing they read is renamed or removed.
    pub(crate) captures: Box<[ValueId]>,
    /// Position for the stable topological order used on export.
    pub(crate) order: u64,
}

/// A node's `op_type` and `domain` fields as the file spells them (`None`:
/// the field is absent).
#[derive(Clone, Debug, Default)]
pub(crate) struct Spelling {
    pub op_type: Option<Name>,
    pub domain: Option<Name>,
}

impl Node {
    pub fn op(&self) -> &Op {
        &self.op
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    pub fn op_type(&self) -> &str {
        self.op_type_field().unwrap_or("")
    }

    pub fn domain(&self) -> &str {
        self.domain_field().unwrap_or("")
    }

    /// The `op_type` field, `None` when absent.
    pub(crate) fn op_type_field(&self) -> Option<&str> {
        match &self.spelling {
            Some(s) => s.op_type.as_deref(),
            None => self.op.op_type(),
        }
    }

    /// The `domain` field, `None` when absent.
    pub(crate) fn domain_field(&self) -> Option<&str> {
        self.spelling.as_ref().and_then(|s| s.domain.as_deref())
    }

    /// Sets the `op_type` and `domain` fields (after `op`): stored only
    /// when they are not what `op` implies.
    pub(crate) fn set_spelling(&mut self, op_type: Option<Name>, domain: Option<Name>) {
        let implied =
            domain.is_none() && op_type.is_some() && op_type.as_deref() == self.op.op_type();
        self.spelling = (!implied).then(|| Box::new(Spelling { op_type, domain }));
    }

    pub fn attributes(&self) -> &[AttributeProto] {
        self.rest.as_deref().map_or(&[], |r| &r.attribute)
    }

    /// The node's fields besides its name, op type, domain and wiring
    /// (attributes, doc string, overload, metadata, device
    /// configurations), if it has any.
    pub fn extra(&self) -> Option<&NodeProto> {
        self.rest.as_deref()
    }

    /// The whole `NodeProto` this node is written as, with `input` and
    /// `output` naming the values in `names`.
    pub(crate) fn to_proto(&self, input: Vec<String>, output: Vec<String>) -> NodeProto {
        let mut p = self.rest.as_deref().cloned().unwrap_or_default();
        p.input = input;
        p.output = output;
        p.name = self.name.as_ref().map(|n| n.to_string());
        p.op_type = self.op_type_field().map(str::to_string);
        p.domain = self.domain_field().map(str::to_string);
        p
    }

    /// Splits a `NodeProto` (without its wiring) into the inline fields
    /// and the rest.
    pub(crate) fn split_proto(
        mut p: NodeProto,
    ) -> (
        Option<Name>,
        Option<Name>,
        Option<Name>,
        Option<Box<NodeProto>>,
    ) {
        let name = p.name.take().map(Name::from);
        let op_type = p.op_type.take().map(Name::from);
        let domain = p.domain.take().map(Name::from);
        p.input.clear();
        p.output.clear();
        (name, op_type, domain, rest_of(p))
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
        self.attributes()
            .iter()
            .any(|a| a.g.is_some() || !a.graphs.is_empty())
    }
}

/// `p` boxed, or `None` when it holds nothing (its wiring, name, op type
/// and domain already taken out).
pub(crate) fn rest_of(p: NodeProto) -> Option<Box<NodeProto>> {
    (!is_blank(&p)).then(|| Box::new(p))
}

/// True when a node's rest (see [`Node`]) holds nothing to write.
pub(crate) fn is_blank(p: &NodeProto) -> bool {
    p.attribute.is_empty()
        && p.doc_string.is_none()
        && p.overload.is_none()
        && p.metadata_props.is_empty()
        && p.device_configurations.is_empty()
}
