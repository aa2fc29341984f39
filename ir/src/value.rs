//! A value (an edge of the graph): a graph input, an initializer, or a node
//! output.

use crate::ids::{NodeId, ValueId};
use crate::name::Name;
use crate::shape::TensorType;
use crate::tensor::Tensor;

/// Where a value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Use {
    /// Input `slot` of `node`.
    Input { node: NodeId, slot: usize },
    /// Read from inside a subgraph of `node`.
    Capture { node: NodeId },
}

impl Use {
    pub fn node(self) -> NodeId {
        match self {
            Use::Input { node, .. } | Use::Capture { node } => node,
        }
    }
}

pub(crate) type Uses = smallvec::SmallVec<[Use; 1]>;

#[derive(Clone, Debug)]
pub struct Value {
    pub(crate) id: ValueId,
    pub(crate) name: Name,
    pub(crate) producer: Option<(NodeId, usize)>,
    /// Held inline when one (most values are read once).
    pub(crate) uses: Uses,
    /// Boxed: a `TensorProto` is large, and values are scanned often.
    pub(crate) initializer: Option<Box<Tensor>>,
    /// Defined by a `sparse_initializer` (kept opaque in the graph header).
    pub(crate) sparse: bool,
    pub(crate) is_graph_input: bool,
    /// The model has a `value_info` entry for this value.
    pub(crate) declared: bool,
    /// Inference and the type the model declares disagree (see
    /// [`crate::Graph::disputes`]): [`crate::Graph::ty`] refuses it.
    pub(crate) disputed: bool,
    /// The type the model declared or inference found.
    pub ty: Option<TensorType>,
    /// Whose bytes the initializer holds (see [`Written`]).
    pub(crate) written: Written,
}

/// Whose bytes a value's constant holds, as far as the current run of
/// rewrites goes (see [`crate::Graph::begin_rewrites`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Written {
    /// The model's own (as imported or built, before the run), or not a
    /// constant: kept as they are, read or not.
    #[default]
    Given,
    /// Computed by a rewrite of this run: nothing in the model as given
    /// holds these bytes under this name.
    Computed,
    /// Computed, and then its last reader went: the bytes were freed on
    /// the spot. The value stays, bytes-less and in no list the writer
    /// reads, until `eliminate-dead` removes it as it does any unread
    /// initializer (so its name stays taken and the report names it as
    /// before).
    Dropped,
}

impl Value {
    pub fn id(&self) -> ValueId {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node and output slot that compute this value.
    pub fn producer(&self) -> Option<(NodeId, usize)> {
        self.producer
    }

    pub fn uses(&self) -> &[Use] {
        &self.uses
    }

    pub fn initializer(&self) -> Option<&Tensor> {
        self.initializer.as_deref()
    }

    /// A constant a rewrite computed, whose bytes were freed when its last
    /// reader went (see [`crate::Graph::begin_rewrites`]): it has no
    /// initializer any more and is written nowhere.
    pub fn is_dropped_constant(&self) -> bool {
        self.written == Written::Dropped
    }

    pub fn is_graph_input(&self) -> bool {
        self.is_graph_input
    }

    pub fn is_sparse_initializer(&self) -> bool {
        self.sparse
    }

    /// A constant: an initializer that is not also a graph input (an input
    /// with a default may be overridden by the caller, so it is not constant).
    pub fn constant(&self) -> Option<&Tensor> {
        if self.is_graph_input {
            None
        } else {
            self.initializer.as_deref()
        }
    }
}
