//! The graph and its mutation API.
//!
//! Invariants the API keeps (and [`Graph::validate`] checks): every value's
//! `producer` and `uses` match the nodes' wiring; value names are unique;
//! every node input is defined; the graph is acyclic.

use std::collections::BinaryHeap;

use crate::error::{IrError, Result};
use crate::ids::{NodeId, ValueId};
use crate::name::Name;
use crate::name_table::NameTable;
use crate::node::{rest_of, Node};
use crate::op::Op;
use crate::proto::{GraphProto, NodeProto, ValueInfoProto};
use crate::shape::TensorType;
use crate::tensor::Tensor;
use crate::value::{Use, Value, Written};

/// Gap between the order keys of imported nodes, so a pass can place new
/// nodes between two old ones without renumbering.
pub(crate) const ORDER_GAP: u64 = 1 << 16;

#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Graph fields the IR does not model (name, doc string, sparse
    /// initializers, quantization annotations, metadata), kept as read. Its
    /// node/initializer/input/output/value_info lists are empty.
    pub(crate) header: GraphProto,
    pub(crate) nodes: Vec<Option<Node>>,
    /// How many of `nodes` are live (the pass manager asks after every pass).
    pub(crate) live_nodes: usize,
    pub(crate) values: Vec<Option<Value>>,
    /// Value name → id. A removed value's entry is left in place and
    /// read as absent (ids are never reused, so an entry whose value is
    /// gone is stale whatever it names): removing it hashed the name and
    /// probed the table once more per removed value, a fifth of
    /// eliminate-dead on bench/scaling. Stale entries are dropped when they
    /// outnumber the live ones.
    pub(crate) names: NameTable,
    /// Entries of `names` whose value was removed.
    pub(crate) stale_names: usize,
    /// Graph inputs and outputs with their declared `ValueInfoProto`s.
    pub(crate) inputs: Vec<(ValueId, ValueInfoProto)>,
    pub(crate) outputs: Vec<(ValueId, ValueInfoProto)>,
    /// `value_info` entries in file order; `None` for an entry naming no value.
    pub(crate) value_info: Vec<(Option<ValueId>, ValueInfoProto)>,
    pub(crate) initializer_order: Vec<ValueId>,
    /// Bumped by every mutation: lets the pass manager skip re-validating a
    /// graph a pass did not touch.
    pub(crate) generation: u64,
    /// Names of live nodes, so new names are unique in O(1); built the
    /// first time a node is named (most runs name none).
    pub(crate) node_names: NodeNames,
    /// Version of the default ONNX domain (`ai.onnx`) the model imports.
    pub(crate) opset: i64,
    /// IR version < 4: every initializer must also be listed as a graph
    /// input — that was how weights were stored, not an overridable default.
    /// Such initializer-inputs count as constants, and initializers added or
    /// removed keep the input list in step.
    pub(crate) initializers_are_inputs: bool,
    pub(crate) next_order: u64,
    /// Values whose inferred type contradicts the declared one, as the
    /// last inference found them.
    pub(crate) disputes: Vec<Dispute>,
    /// The last topological order and the generation it is of: every pass
    /// asks for the order, and most runs of a pass change nothing.
    pub(crate) topo_cache: TopoCache,
    /// Between [`Graph::begin_rewrites`] and [`Graph::end_rewrites`].
    pub(crate) rewriting: bool,
}

/// The set of node names taken, built when first needed. Until then the
/// names of removed nodes are recorded, so the set comes out as if it had
/// been kept all along: the nodes' names at import, then each removed
/// node's name taken out (a name two nodes share goes with the first of
/// them removed, as it always did).
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeNames {
    built: std::sync::OnceLock<std::collections::HashSet<Name, foldhash::fast::RandomState>>,
    removed: Vec<Name>,
}

impl NodeNames {
    fn get(
        &self,
        nodes: &[Option<Node>],
    ) -> &std::collections::HashSet<Name, foldhash::fast::RandomState> {
        self.built.get_or_init(|| {
            let mut set: std::collections::HashSet<Name, foldhash::fast::RandomState> = nodes
                .iter()
                .flatten()
                .filter_map(|n| n.name.clone())
                .collect();
            for n in &self.removed {
                set.remove(n.as_str());
            }
            set
        })
    }

    fn contains(&self, nodes: &[Option<Node>], name: &str) -> bool {
        self.get(nodes).contains(name)
    }

    fn insert(&mut self, nodes: &[Option<Node>], name: Name) {
        self.get(nodes);
        self.built.get_mut().expect("built").insert(name);
    }

    fn remove(&mut self, name: Name) {
        match self.built.get_mut() {
            Some(set) => {
                set.remove(name.as_str());
            }
            None => self.removed.push(name),
        }
    }
}

/// A value whose declared type (`value_info` or a graph output) and
/// inferred type disagree: a different element type, rank, or a dim both
/// state as a different number. Neither is trusted: [`Graph::ty`] gives
/// no type for it, so no rewrite that depends on its shape fires, and the
/// cost model cannot size the layers that touch it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dispute {
    pub value: String,
    pub declared: TensorType,
    pub inferred: TensorType,
}

impl std::fmt::Display for Dispute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "value '{}': the model declares {}, inference finds {}",
            self.value, self.declared, self.inferred
        )
    }
}

/// A cached topological order. Cloning a graph clones it; any mutation
/// bumps the generation, which makes it stale.
#[derive(Debug, Default)]
pub(crate) struct TopoCache(std::sync::Mutex<Option<(u64, std::sync::Arc<[NodeId]>)>>);

impl TopoCache {
    fn get(&self, generation: u64) -> Option<Vec<NodeId>> {
        let cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|(g, _)| *g == generation)
            .map(|(_, order)| order.to_vec())
    }

    pub(crate) fn set(&self, generation: u64, order: &[NodeId]) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, order.into()));
    }
}

impl Clone for TopoCache {
    fn clone(&self) -> TopoCache {
        TopoCache(std::sync::Mutex::new(
            self.0.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        ))
    }
}

impl Graph {
    /// An empty graph for models importing `opset` of the default domain.
    pub fn new(name: &str, opset: i64) -> Graph {
        Graph {
            header: GraphProto {
                name: Some(name.to_string()),
                ..Default::default()
            },
            opset,
            ..Default::default()
        }
    }

    pub fn name(&self) -> &str {
        self.header.name.as_deref().unwrap_or("")
    }

    pub fn header(&self) -> &GraphProto {
        &self.header
    }

    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// A counter that changes whenever the graph is mutated.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    // ---- reading ----

    pub fn node(&self, id: NodeId) -> &Node {
        self.nodes[id.index()].as_ref().expect("node was removed")
    }

    pub fn try_node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.index()).and_then(Option::as_ref)
    }

    pub fn value(&self, id: ValueId) -> &Value {
        self.values[id.index()].as_ref().expect("value was removed")
    }

    pub fn try_value(&self, id: ValueId) -> Option<&Value> {
        self.values.get(id.index()).and_then(Option::as_ref)
    }

    pub fn value_by_name(&self, name: &str) -> Option<ValueId> {
        self.live_name(name)
    }

    /// Live nodes in id order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_some())
            .map(|(i, _)| NodeId(i as u32))
    }

    pub fn node_count(&self) -> usize {
        self.live_nodes
    }

    /// Live values in id order.
    pub fn value_ids(&self) -> impl Iterator<Item = ValueId> + '_ {
        self.values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_some())
            .map(|(i, _)| ValueId(i as u32))
    }

    pub fn inputs(&self) -> impl Iterator<Item = ValueId> + '_ {
        self.inputs.iter().map(|(v, _)| *v)
    }

    pub fn outputs(&self) -> impl Iterator<Item = ValueId> + '_ {
        self.outputs.iter().map(|(v, _)| *v)
    }

    pub fn input_infos(&self) -> &[(ValueId, ValueInfoProto)] {
        &self.inputs
    }

    pub fn output_infos(&self) -> &[(ValueId, ValueInfoProto)] {
        &self.outputs
    }

    /// The model's `value_info` entries still in force, in file order
    /// (`None`: an entry naming no value, kept as read).
    pub fn value_infos(&self) -> impl Iterator<Item = (Option<ValueId>, &ValueInfoProto)> + '_ {
        self.value_info
            .iter()
            .filter(|(v, _)| v.is_none_or(|v| self.try_value(v).is_some()))
            .map(|(v, info)| (*v, info))
    }

    /// True when the model declared `v`'s type in a `value_info` entry.
    pub fn has_value_info(&self, v: ValueId) -> bool {
        self.value(v).declared
    }

    /// Initializers in the order they will be written.
    pub fn initializers(&self) -> impl Iterator<Item = ValueId> + '_ {
        self.initializer_order
            .iter()
            .copied()
            .filter(|&v| self.try_value(v).is_some_and(|v| v.initializer.is_some()))
    }

    /// [`Graph::initializers`] with the dropped constants (see
    /// [`Graph::begin_rewrites`]) in their places: what `eliminate-dead`
    /// sweeps, so that it removes and reports a dropped constant as it
    /// does any other initializer nothing reads.
    pub fn initializers_and_dropped(&self) -> impl Iterator<Item = ValueId> + '_ {
        self.initializer_order.iter().copied().filter(|&v| {
            self.try_value(v)
                .is_some_and(|v| v.initializer.is_some() || v.written == Written::Dropped)
        })
    }

    /// Bytes held by the constants a rewrite of the current run computed
    /// (see [`Graph::begin_rewrites`]), read or not: how a test sees that
    /// an unread one was freed.
    pub fn computed_constant_bytes(&self) -> u64 {
        self.initializers()
            .map(|v| self.value(v))
            .filter(|v| v.written == Written::Computed)
            .filter_map(|v| v.initializer())
            .map(|t| t.byte_size())
            .sum()
    }

    pub fn is_graph_output(&self, v: ValueId) -> bool {
        self.outputs.iter().any(|(o, _)| *o == v)
    }

    /// The constant tensor behind `v`, if it is one (see [`Value::constant`]).
    pub fn constant(&self, v: ValueId) -> Option<&Tensor> {
        let val = self.try_value(v)?;
        if self.initializers_are_inputs {
            val.initializer.as_deref()
        } else {
            val.constant()
        }
    }

    /// A graph input the caller feeds: not an IR < 4 weight listed as an
    /// input (see [`Graph::constant`]).
    pub fn is_fed_input(&self, v: ValueId) -> bool {
        let val = self.value(v);
        val.is_graph_input && !(self.initializers_are_inputs && val.initializer.is_some())
    }

    /// The node that computes `v`.
    pub fn producer(&self, v: ValueId) -> Option<NodeId> {
        self.value(v).producer.map(|(n, _)| n)
    }

    /// Nodes reading `v` (a node reading it twice is listed twice).
    pub fn consumers(&self, v: ValueId) -> impl Iterator<Item = NodeId> + '_ {
        self.value(v).uses.iter().map(|u| u.node())
    }

    /// True when `v` is read exactly once and is not a graph output: a pass
    /// may then rewrite its producer without duplicating work.
    pub fn has_single_use(&self, v: ValueId) -> bool {
        self.value(v).uses.len() == 1 && !self.is_graph_output(v)
    }

    /// `v`'s type — the one accessor passes and the cost model ask. A
    /// disputed value (inference contradicts its declared type) has none:
    /// no rewrite may rely on a shape the model and inference disagree on.
    pub fn ty(&self, v: ValueId) -> Option<&TensorType> {
        let val = self.value(v);
        if val.disputed {
            return None;
        }
        val.ty.as_ref()
    }

    /// True when inference contradicts `v`'s declared type.
    pub fn is_disputed(&self, v: ValueId) -> bool {
        self.value(v).disputed
    }

    /// Every value whose declared and inferred types disagree, in
    /// topological order (as the last inference found them).
    pub fn disputes(&self) -> &[Dispute] {
        &self.disputes
    }

    /// Nodes in a stable topological order: among the nodes ready at each
    /// step, the one placed first. For an imported, already-sorted graph this
    /// is exactly the file's order. Fails on a cycle.
    pub fn topo_order(&self) -> Result<Vec<NodeId>> {
        if let Some(order) = self.topo_cache.get(self.generation) {
            return Ok(order);
        }
        let order = self.compute_topo_order()?;
        self.topo_cache.set(self.generation, &order);
        Ok(order)
    }

    fn compute_topo_order(&self) -> Result<Vec<NodeId>> {
        // Most of the time the order keys already are a topological order
        // (an imported, sorted file; passes place new nodes after their
        // inputs' producers). Then the ready-first walk below gives exactly
        // the nodes sorted by key: whenever the nodes before a node in key
        // order are out, it is ready, and every other ready node has a
        // larger key. Sorting and checking every edge once is several times
        // faster than the walk's heap on a large graph.
        let mut sorted: Vec<(u64, NodeId)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((n.as_ref()?.order, NodeId(i as u32))))
            .collect();
        sorted.sort_unstable();
        let mut position = vec![u32::MAX; self.nodes.len()];
        for (i, &(_, id)) in sorted.iter().enumerate() {
            position[id.index()] = i as u32;
        }
        let in_key_order =
            sorted.iter().enumerate().all(|(i, &(_, id))| {
                let n = self.node(id);
                n.inputs.iter().flatten().chain(&n.captures).all(|v| {
                    match self.value(*v).producer {
                        Some((p, _)) => position[p.index()] < i as u32,
                        None => true,
                    }
                })
            });
        if in_key_order {
            return Ok(sorted.into_iter().map(|(_, id)| id).collect());
        }
        drop((sorted, position));
        self.topo_by_walk()
    }

    /// Kahn's walk: among the ready nodes, the one with the least key.
    fn topo_by_walk(&self) -> Result<Vec<NodeId>> {
        let mut pending: Vec<u32> = vec![0; self.nodes.len()];
        let mut heap = BinaryHeap::new();
        for id in self.node_ids() {
            let n = self.node(id);
            let deps = n
                .inputs
                .iter()
                .flatten()
                .chain(&n.captures)
                .filter(|v| self.value(**v).producer.is_some())
                .count();
            pending[id.index()] = deps as u32;
            if deps == 0 {
                heap.push(std::cmp::Reverse((n.order, id)));
            }
        }
        let mut order = Vec::with_capacity(pending.len());
        while let Some(std::cmp::Reverse((_, id))) = heap.pop() {
            order.push(id);
            for out in self.node(id).outputs.iter().flatten() {
                for u in &self.value(*out).uses {
                    let c = u.node();
                    pending[c.index()] -= 1;
                    if pending[c.index()] == 0 {
                        heap.push(std::cmp::Reverse((self.node(c).order, c)));
                    }
                }
            }
        }
        if order.len() != self.node_count() {
            let stuck = self
                .node_ids()
                .find(|id| pending[id.index()] > 0)
                .expect("a node is left");
            let n = self.node(stuck);
            return Err(IrError::Cycle {
                node: n.name().to_string(),
                op_type: n.op_type().to_string(),
            });
        }
        Ok(order)
    }

    // ---- building and mutating ----

    /// The live value named `name` (see [`Graph::names`]).
    pub(crate) fn live_name(&self, name: &str) -> Option<ValueId> {
        self.names.get(&self.values, name)
    }

    /// A value name not yet used in the graph, derived from `base`.
    pub fn unique_name(&self, base: &str) -> String {
        if !base.is_empty() && self.live_name(base).is_none() {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| self.live_name(n).is_none())
            .expect("unbounded")
    }

    /// A node name not yet used, derived from `base`.
    pub fn unique_node_name(&self, base: &str) -> String {
        if !base.is_empty() && !self.node_names.contains(&self.nodes, base) {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| !self.node_names.contains(&self.nodes, n))
            .expect("unbounded")
    }

    pub(crate) fn new_value(&mut self, name: Name) -> Result<ValueId> {
        let h = self.names.hash(&name);
        self.new_value_hashed(name, h)
    }

    /// [`Graph::new_value`] with the name's hash (see [`NameTable::hash`])
    /// already computed.
    pub(crate) fn new_value_hashed(&mut self, name: Name, h: u32) -> Result<ValueId> {
        self.generation += 1;
        let id = ValueId(self.values.len() as u32);
        if let Some(old) = self.names.get_hashed(&self.values, &name, h) {
            let first = self.describe_definition(old);
            return Err(IrError::ProducedTwice {
                value: name.to_string(),
                first,
                second: "another definition".into(),
            });
        }
        // The name of a removed value taken again gets an entry of its
        // own: the removed value's stays stale.
        self.names.insert_hashed(h, id);
        self.values.push(Some(Value {
            id,
            name,
            producer: None,
            uses: Default::default(),
            initializer: None,
            sparse: false,
            declared: false,
            disputed: false,
            is_graph_input: false,
            ty: None,
            written: Written::Given,
        }));
        Ok(id)
    }

    pub(crate) fn describe_definition(&self, v: ValueId) -> String {
        let val = self.value(v);
        if let Some((n, _)) = val.producer {
            format!("node '{}'", self.node(n).name())
        } else if val.is_graph_input {
            "a graph input".into()
        } else if val.initializer.is_some() || val.sparse {
            "an initializer".into()
        } else {
            "an earlier definition".into()
        }
    }

    /// Adds a graph input of type `ty`.
    pub fn add_input(&mut self, name: &str, ty: &TensorType) -> Result<ValueId> {
        let id = self.new_value(Name::from(name))?;
        let info = crate::export::value_info_proto(name, ty);
        self.value_mut(id).is_graph_input = true;
        self.value_mut(id).ty = Some(ty.clone());
        self.inputs.push((id, info));
        Ok(id)
    }

    /// Marks `v` as a graph output, declaring its type if known.
    pub fn add_output(&mut self, v: ValueId) {
        self.generation += 1;
        let val = self.value(v);
        let info = match &val.ty {
            Some(t) => crate::export::value_info_proto(&val.name, t),
            None => ValueInfoProto {
                name: Some(val.name.to_string()),
                ..Default::default()
            },
        };
        self.outputs.push((v, info));
    }

    /// Adds an initializer named `name` (made unique if taken).
    pub fn add_initializer(&mut self, name: &str, mut tensor: Tensor) -> ValueId {
        let name = self.unique_name(name);
        tensor.set_name(&name);
        let id = self.new_value(Name::from(name)).expect("name is unique");
        let ty = TensorType::new(tensor.dtype(), tensor.dims());
        let written = self.written_now();
        let v = self.value_mut(id);
        v.ty = Some(ty.clone());
        v.initializer = Some(Box::new(tensor));
        v.written = written;
        self.initializer_order.push(id);
        if self.initializers_are_inputs {
            let name = self.value(id).name.clone();
            self.value_mut(id).is_graph_input = true;
            self.inputs
                .push((id, crate::export::value_info_proto(&name, &ty)));
        }
        id
    }

    /// Replaces the data of an initializer in place (same name).
    pub fn set_initializer(&mut self, v: ValueId, mut tensor: Tensor) {
        let name = self.value(v).name.clone();
        tensor.set_name(&name);
        let ty = TensorType::new(tensor.dtype(), tensor.dims());
        let written = self.written_now();
        let val = self.value_mut(v);
        val.ty = Some(ty);
        val.written = written;
        if let Some(old) = val.initializer.replace(Box::new(tensor)) {
            // The old weight's pages in the mapped input are not needed
            // while the new one is held (see `mapped::release`).
            if let Some(raw) = &old.proto().raw_data {
                crate::mapped::release(raw);
            }
        }
    }

    /// Turns the node output `v` into an initializer holding `tensor`, keeping
    /// its name, readers and graph-output status: `v` is detached from its
    /// producer (whose output slot becomes absent). Used by constant folding;
    /// the caller removes the producer once none of its outputs is live.
    pub fn make_constant(&mut self, v: ValueId, mut tensor: Tensor) {
        if let Some((p, slot)) = self.value(v).producer {
            self.node_mut(p).outputs[slot] = None;
        }
        let name = self.value(v).name.clone();
        tensor.set_name(&name);
        let ty = TensorType::new(tensor.dtype(), tensor.dims());
        let written = self.written_now();
        let val = self.value_mut(v);
        val.producer = None;
        val.ty = Some(ty);
        val.written = written;
        let was_initializer = val.initializer.replace(Box::new(tensor)).is_some();
        // Only a value that had no initializer is new to the order list
        // (searching the list would make folding quadratic).
        if !was_initializer {
            self.initializer_order.push(v);
        }
    }

    /// Adds a node of the default domain computing `op` on `inputs`, with
    /// one new value per entry of `outputs` (names made unique). The node is
    /// placed just after `near` in the export order, or at the end.
    pub fn add_node(
        &mut self,
        name: &str,
        op: Op,
        inputs: &[Option<ValueId>],
        outputs: &[&str],
        near: Option<NodeId>,
    ) -> (NodeId, Vec<ValueId>) {
        self.generation += 1;
        op.op_type().expect("a typed op");
        let node_name = Name::from(self.unique_node_name(name));
        self.node_names.insert(&self.nodes, node_name.clone());
        let rest = rest_of(NodeProto {
            attribute: op.to_attributes(),
            ..Default::default()
        });
        let order = match near {
            Some(n) => {
                self.next_order += 1;
                self.node(n).order + 1 + self.next_order % (ORDER_GAP - 1)
            }
            None => {
                self.next_order += ORDER_GAP;
                self.next_order
            }
        };
        let id = NodeId(self.nodes.len() as u32);
        let outs: Vec<ValueId> = outputs
            .iter()
            .map(|o| {
                let name = self.unique_name(o);
                self.new_value(Name::from(name)).expect("unique")
            })
            .collect();
        for (slot, &o) in outs.iter().enumerate() {
            self.value_mut(o).producer = Some((id, slot));
        }
        self.generation += 1;
        self.live_nodes += 1;
        self.nodes.push(Some(Node {
            op,
            name: Some(node_name),
            spelling: None,
            rest,
            inputs: inputs.iter().copied().collect(),
            outputs: outs.iter().map(|&o| Some(o)).collect(),
            captures: Default::default(),
            order,
        }));
        for (slot, v) in inputs.iter().enumerate() {
            if let Some(v) = v {
                self.value_mut(*v).uses.push(Use::Input { node: id, slot });
            }
        }
        (id, outs)
    }

    /// Sets a node's op, regenerating its attributes. The op type must not
    /// be `Other`. Other fields of the node (doc string, metadata) are kept.
    pub fn set_op(&mut self, id: NodeId, op: Op) {
        let op_type = op.op_type().expect("a typed op");
        let n = self.node_mut(id);
        // The domain is kept when the type is (the op is re-parameterised).
        let same_type = n.op_type_field() == Some(op_type);
        let domain = n
            .spelling
            .take()
            .and_then(|s| s.domain)
            .filter(|_| same_type);
        let attribute = op.to_attributes();
        match n.rest.as_deref_mut() {
            Some(rest) => rest.attribute = attribute,
            None => {
                n.rest = rest_of(NodeProto {
                    attribute,
                    ..Default::default()
                })
            }
        }
        n.op = op;
        n.set_spelling(Some(Name::from_static(op_type)), domain);
    }

    /// Rewires input `slot` of `node` to `v`.
    pub fn set_input(&mut self, node: NodeId, slot: usize, v: Option<ValueId>) {
        let old = self.wire_input(node, slot, v);
        if let Some(old) = old {
            self.release_if_unread(old);
        }
    }

    /// [`Graph::set_input`] without releasing what the old input holds:
    /// returns the old input.
    fn wire_input(&mut self, node: NodeId, slot: usize, v: Option<ValueId>) -> Option<ValueId> {
        let old = self.node(node).inputs.get(slot).copied().flatten();
        if let Some(old) = old {
            let uses = &mut self.value_mut(old).uses;
            if let Some(p) = uses.iter().position(|u| *u == Use::Input { node, slot }) {
                uses.remove(p);
            }
        }
        let n = self.node_mut(node);
        if n.inputs.len() <= slot {
            n.inputs.resize(slot + 1, None);
        }
        n.inputs[slot] = v;
        if let Some(v) = v {
            self.value_mut(v).uses.push(Use::Input { node, slot });
        }
        old
    }

    /// Replaces the node's input list. The old inputs are released only
    /// once the new ones are wired: one it reads again (in another slot,
    /// say) is never unread in between, so never dropped.
    pub fn set_inputs(&mut self, node: NodeId, inputs: &[Option<ValueId>]) {
        let n = self.node(node).inputs.len();
        let mut old = Vec::new();
        for slot in (0..n).rev() {
            old.extend(self.wire_input(node, slot, None));
        }
        self.node_mut(node).inputs.clear();
        for (slot, v) in inputs.iter().enumerate() {
            self.wire_input(node, slot, *v);
        }
        for v in old {
            self.release_if_unread(v);
        }
    }

    /// Makes every reader of `old` — nodes and graph outputs — read `new`.
    /// A graph output keeps its name: `new` takes it over when it is a plain
    /// node output; otherwise an Identity keeps the interface intact.
    pub fn replace_all_uses(&mut self, old: ValueId, new: ValueId) {
        if old == new {
            return;
        }
        let uses = std::mem::take(&mut self.value_mut(old).uses);
        for u in uses {
            match u {
                Use::Input { node, slot } => {
                    self.node_mut(node).inputs[slot] = Some(new);
                    self.value_mut(new).uses.push(u);
                }
                Use::Capture { .. } => {
                    // Subgraphs refer to values by name: keep the name alive
                    // by computing `old` as an Identity of `new`.
                    self.value_mut(old).uses.push(u);
                }
            }
        }
        let old_is_output = self.is_graph_output(old);
        let captured = !self.value(old).uses.is_empty();
        if !old_is_output && !captured {
            self.release_if_unread(old);
            return;
        }
        let new_val = self.value(new);
        let can_take_name = new_val.producer.is_some()
            && !self.is_graph_output(new)
            && !self.value(new).declared
            && !captured;
        if can_take_name {
            self.swap_names(old, new);
            for (v, _) in &mut self.outputs {
                if *v == old {
                    *v = new;
                }
            }
            return;
        }
        // `old` must stay computed under its own name: detach it from its
        // producer and compute it as Identity(new).
        if let Some((p, slot)) = self.value(old).producer {
            let name = self.unique_name(&format!("{}_orphan", self.value(old).name));
            let orphan = self.new_value(Name::from(name)).expect("unique");
            self.node_mut(p).outputs[slot] = Some(orphan);
            self.value_mut(orphan).producer = Some((p, slot));
            self.value_mut(orphan).ty = self.value(old).ty.clone();
            self.value_mut(old).producer = None;
        }
        let near = self.value(new).producer.map(|(n, _)| n);
        let id = NodeId(self.nodes.len() as u32);
        let order = match near {
            Some(n) => self.node(n).order + 1,
            None => 0,
        };
        let name = Name::from(self.unique_node_name(&format!("{}_identity", self.value(old).name)));
        self.node_names.insert(&self.nodes, name.clone());
        self.generation += 1;
        self.live_nodes += 1;
        self.nodes.push(Some(Node {
            op: Op::Identity,
            name: Some(name),
            spelling: None,
            rest: None,
            inputs: smallvec::smallvec![Some(new)],
            outputs: smallvec::smallvec![Some(old)],
            captures: Default::default(),
            order,
        }));
        self.value_mut(old).producer = Some((id, 0));
        self.value_mut(new)
            .uses
            .push(Use::Input { node: id, slot: 0 });
    }

    fn swap_names(&mut self, a: ValueId, b: ValueId) {
        let na = std::mem::take(&mut self.value_mut(a).name);
        let nb = std::mem::take(&mut self.value_mut(b).name);
        self.names.repoint(&na, a, b);
        self.names.repoint(&nb, b, a);
        self.value_mut(a).name = nb;
        self.value_mut(b).name = na;
        for v in [a, b] {
            let val = self.value_mut(v);
            if let Some(t) = val.initializer.as_mut() {
                t.set_name(&val.name);
            }
        }
    }

    /// Removes a node. Its outputs must no longer be read by anything; they
    /// are removed with it.
    pub fn remove_node(&mut self, id: NodeId) {
        self.generation += 1;
        let inputs = self.node(id).inputs.clone();
        for (slot, v) in inputs.iter().enumerate() {
            if v.is_some() {
                self.set_input(id, slot, None);
            }
        }
        for v in self.node(id).captures.clone() {
            let uses = &mut self.value_mut(v).uses;
            uses.retain(|u| *u != Use::Capture { node: id });
        }
        for out in self.node(id).outputs.clone().into_iter().flatten() {
            debug_assert!(
                self.value(out).uses.is_empty() && !self.is_graph_output(out),
                "removing node with live output {}",
                self.value(out).name
            );
            self.remove_value(out);
        }
        if let Some(name) = self.node_mut(id).name.take() {
            self.node_names.remove(name);
        }
        self.nodes[id.index()] = None;
        self.live_nodes -= 1;
    }

    /// Removes a value nothing reads or produces any more (e.g. an unused
    /// initializer), with its `value_info`.
    pub fn remove_value(&mut self, v: ValueId) {
        self.generation += 1;
        // The name's entry goes stale (see `Graph::names`).
        self.stale_names += 1;
        // `value_info` and `initializer_order` drop the id lazily (readers
        // skip removed values): retaining here would make removal O(n).
        if self.initializers_are_inputs {
            self.inputs.retain(|(x, _)| *x != v);
        }
        if let Some(raw) = self.values[v.index()]
            .take()
            .and_then(|val| val.initializer)
            .and_then(|t| t.into_proto().raw_data)
        {
            // A dropped weight's pages in the mapped input are not needed.
            crate::mapped::release(&raw);
        }
        if self.stale_names > 1024 && self.stale_names > self.names.len() / 2 {
            self.names.drop_stale(&self.values);
            self.stale_names = 0;
        }
    }

    /// Frees what an initializer nothing reads any more (its last reader
    /// was rewired or removed) holds, ahead of `eliminate-dead`: a merge
    /// that absorbs a block's convs would otherwise keep every old weight
    /// resident beside the merged ones until the sweep.
    ///
    /// A constant a rewrite of this run computed is dropped: its bytes are
    /// freed (see [`Graph::begin_rewrites`]). The model's own constants
    /// are kept (an unused initializer of the input is written as read
    /// unless the sweep runs); of one mapped from the input file only the
    /// pages are released, which is safe if it is read again (see
    /// [`crate::mapped::release`]).
    fn release_if_unread(&mut self, v: ValueId) {
        let Some(val) = self.try_value(v) else { return };
        if !val.uses.is_empty() || self.is_graph_output(v) {
            return;
        }
        // Not a graph input (an IR < 4 weight is one: dropping it would
        // leave an input the caller must feed), nor named by a
        // `value_info` entry (kept as the model's text).
        let droppable = self.rewriting
            && val.written == Written::Computed
            && val
                .initializer
                .as_deref()
                .is_some_and(|t| t.byte_size() >= Graph::MIN_DROP_BYTES)
            && !val.is_graph_input
            && !val.declared;
        if droppable {
            let val = self.value_mut(v);
            val.written = Written::Dropped;
            if let Some(raw) = val.initializer.take().and_then(|t| t.into_proto().raw_data) {
                // A computed tensor may share the input's mapped bytes (a
                // folded Reshape of a weight).
                crate::mapped::release(&raw);
            }
            return;
        }
        if let Some(raw) = val
            .initializer
            .as_deref()
            .and_then(|t| t.proto().raw_data.as_ref())
        {
            crate::mapped::release(raw);
        }
    }

    /// The least a computed constant holds for [`Graph::begin_rewrites`]
    /// to drop it. Smaller ones (shapes, scalars, the biases) are held
    /// until `eliminate-dead` as before: freeing them saves nothing that
    /// shows, and they are what its duplicate merge meets — a live
    /// constant identical to an unread one that comes first takes the
    /// unread one's name, and the output must not change.
    pub const MIN_DROP_BYTES: u64 = 1024;

    /// Starts a run of rewrites; the pass manager calls it before the
    /// first pass and [`Graph::end_rewrites`] after the last. In between,
    /// every constant [`Graph::add_initializer`],
    /// [`Graph::set_initializer`] or [`Graph::make_constant`] writes is
    /// marked as computed, and a computed constant whose last reader goes
    /// is dropped at once: its bytes are freed, and the value is left
    /// bytes-less, written nowhere, until `eliminate-dead` removes it
    /// with the other unread initializers (its name stays taken until
    /// then, so the names of later constants, and the report, are as if
    /// it had been held). Without this, the weights a merge absorbs (a
    /// TorchScript export's BN-folded branch convs) stayed resident
    /// beside the merged ones until the sweep: RepVGG-A0 peaked at 1.9×
    /// its file.
    ///
    /// Only bytes npuopt made go: the constants the graph holds now are
    /// the model's own, whoever built them (a model read from a file and
    /// the same one built in memory are treated alike), and an unread one
    /// is written byte for byte unless `eliminate-dead` runs. A computed
    /// constant that is a graph output, read by a subgraph, an IR < 4
    /// graph input or named by a `value_info` entry is kept.
    pub fn begin_rewrites(&mut self) {
        for v in self.values.iter_mut().flatten() {
            if v.written == Written::Computed {
                v.written = Written::Given;
            }
        }
        self.rewriting = true;
    }

    /// Ends the run [`Graph::begin_rewrites`] started: constants written
    /// from now on are the model's own, and nothing is dropped.
    pub fn end_rewrites(&mut self) {
        self.rewriting = false;
    }

    /// How a constant written now counts (see [`Graph::begin_rewrites`]).
    fn written_now(&self) -> Written {
        if self.rewriting {
            Written::Computed
        } else {
            Written::Given
        }
    }

    pub(crate) fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.generation += 1;
        self.nodes[id.index()].as_mut().expect("node was removed")
    }

    pub(crate) fn value_mut(&mut self, id: ValueId) -> &mut Value {
        self.generation += 1;
        self.values[id.index()].as_mut().expect("value was removed")
    }

    /// Sets the type of a value (for passes that know it better).
    pub fn set_type(&mut self, v: ValueId, ty: Option<TensorType>) {
        self.value_mut(v).ty = ty;
    }

    /// Sets `v`'s type for a rewrite that really changes its shape (channel
    /// padding): a `value_info` entry the model declared for `v` is
    /// rewritten to `ty` too — its name, doc string and metadata kept — so
    /// the written model does not declare a stale shape.
    pub fn redeclare_type(&mut self, v: ValueId, ty: TensorType) {
        for (id, info) in &mut self.value_info {
            if *id == Some(v) {
                info.r#type = crate::export::value_info_proto("", &ty).r#type;
            }
        }
        self.value_mut(v).ty = Some(ty);
    }

    /// The name table's fault, named: a live value its name does not map
    /// to (the first by id), else an entry that points at a value under
    /// another name, or a wrong count of removed values' entries.
    fn check_name_table(&self) -> Result<()> {
        for v in self.value_ids() {
            let val = self.value(v);
            if self.live_name(val.name.as_str()) != Some(v) {
                return Err(IrError::Invalid(format!(
                    "value '{}' is missing from the name table",
                    val.name
                )));
            }
        }
        // Every live value's name finds it, so the table holds at least one
        // entry per value: any other entry points at a live value under
        // another name (or past the table), or the count of removed
        // values' entries is off.
        let wrong = self
            .names
            .iter()
            .filter(|&(h, v)| match self.values.get(v.index()) {
                Some(Some(val)) => {
                    self.names.hash(&val.name) != h || self.live_name(&val.name) != Some(v)
                }
                Some(None) => false,
                None => true,
            })
            .map(|(_, v)| v)
            .min();
        let mut live_ids: Vec<ValueId> = self
            .names
            .iter()
            .map(|(_, v)| v)
            .filter(|&v| self.try_value(v).is_some())
            .collect();
        live_ids.sort_unstable();
        let twice = live_ids.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]);
        if let (None, Some(v)) = (wrong, twice) {
            return Err(IrError::Invalid(format!(
                "value '{}' has two name table entries",
                self.value(v).name
            )));
        }
        Err(IrError::Invalid(match wrong {
            Some(v) => match self.try_value(v) {
                Some(val) => format!(
                    "a name table entry points at value '{}' under another name",
                    val.name
                ),
                None => format!("a name table entry points at value {} past the table", v.0),
            },
            None => format!(
                "the name table counts {} entries of removed values, not {}",
                self.stale_names,
                self.names
                    .iter()
                    .filter(|&(_, v)| self.try_value(v).is_none())
                    .count()
            ),
        }))
    }

    /// Checks every invariant; a pass manager calls this after each pass.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(IrError::Invalid(m));
        let mut registered_uses = 0usize;
        let mut live_values = 0usize;
        // A bit per live value id, set in this walk over the values (in
        // memory order), for the name table's check below.
        let mut live = vec![0u64; self.values.len().div_ceil(64)];
        for v in self.value_ids() {
            live_values += 1;
            live[v.index() / 64] |= 1u64 << (v.index() % 64);
            let val = self.value(v);
            if val.id != v {
                return bad(format!("value '{}' is filed under id {}", val.name, v.0));
            }
            if let Some((n, slot)) = val.producer {
                match self.try_node(n) {
                    Some(node) if node.output(slot) == Some(v) => {}
                    _ => return bad(format!("value '{}' has a stale producer", val.name)),
                }
            }
            let defined = val.producer.is_some()
                || val.is_graph_input
                || val.initializer.is_some()
                || val.sparse;
            if !defined && (!val.uses.is_empty() || self.is_graph_output(v)) {
                if val.written == Written::Dropped {
                    // A rewrite detached a computed constant, which freed
                    // it (see `begin_rewrites`), and then wired it again.
                    return bad(format!(
                        "value '{}' is read after it was dropped for want of a reader",
                        val.name
                    ));
                }
                return bad(format!("value '{}' is read but never defined", val.name));
            }
            for u in &val.uses {
                let ok = match *u {
                    Use::Input { node, slot } => self
                        .try_node(node)
                        .is_some_and(|n| n.input(slot) == Some(v)),
                    Use::Capture { node } => {
                        self.try_node(node).is_some_and(|n| n.captures.contains(&v))
                    }
                };
                if !ok {
                    return bad(format!("value '{}' has a stale use {u:?}", val.name));
                }
            }
            if val.uses.len() > 1 {
                let mut sorted = val.uses.clone();
                sorted.sort_unstable();
                if sorted.windows(2).any(|w| w[0] == w[1]) {
                    return bad(format!("value '{}' lists a use twice", val.name));
                }
            }
            registered_uses += val.uses.len();
        }
        // The name table is checked from its side: one entry per live value
        // (a second bit per id marks the ones seen), each of the hash of the
        // value's name, plus as many entries of removed values as were
        // counted. It reads only the table and the bits, not the values in
        // the table's (random) order; the lookups run only to name a fault.
        // Rehashing every name runs in debug builds (the tests): a value's
        // name changes only in `new_value` and `swap_names`, which update
        // the table, and in a release build the rehash was most of this
        // check.
        let mut stale = 0;
        let mut seen = vec![0u64; live.len()];
        let table_ok = self.names.iter().all(|(h, v)| {
            let (word, bit) = (v.index() / 64, 1u64 << (v.index() % 64));
            if v.index() >= self.values.len() {
                false
            } else if live[word] & bit != 0 {
                let first = seen[word] & bit == 0;
                seen[word] |= bit;
                first && (!cfg!(debug_assertions) || self.names.hash(&self.value(v).name) == h)
            } else {
                stale += 1;
                true
            }
        });
        drop((live, seen));
        if !(table_ok && stale == self.stale_names && self.names.len() - stale == live_values) {
            self.check_name_table()?;
        }
        // Every use points back to a distinct node input or capture (checked
        // above); equal counts then mean every node input is registered.
        // Counting instead of searching each value's use list keeps this
        // linear when one value has thousands of readers.
        let mut wired = 0;
        let mut live_nodes = 0;
        for id in self.node_ids() {
            live_nodes += 1;
            let n = self.node(id);
            for v in n.inputs.iter().flatten().chain(&n.captures) {
                if self.try_value(*v).is_none() {
                    return bad(format!(
                        "node '{}' ({}) reads a removed value",
                        n.name(),
                        n.op_type()
                    ));
                }
                wired += 1;
            }
            for (slot, v) in n.outputs.iter().enumerate() {
                let Some(v) = v else { continue };
                if self.try_value(*v).and_then(|x| x.producer) != Some((id, slot)) {
                    return bad(format!(
                        "node '{}' ({}) output {slot} does not point back to it",
                        n.name(),
                        n.op_type()
                    ));
                }
            }
        }
        if live_nodes != self.live_nodes {
            return bad(format!(
                "{live_nodes} live nodes but a count of {}",
                self.live_nodes
            ));
        }
        if wired != registered_uses {
            return bad(format!(
                "{wired} node inputs but {registered_uses} registered uses: some input is not registered"
            ));
        }
        for (v, _) in self.outputs.iter().chain(&self.inputs) {
            if self.try_value(*v).is_none() {
                return bad("a graph input or output was removed".into());
            }
        }
        self.topo_order()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    /// Random graphs built the way passes build them — nodes placed after
    /// a chosen node or at the end, inputs rewired, nodes removed — so that
    /// the order keys are sometimes, and sometimes not, a topological
    /// order: the sorted fast path must give exactly the walk's order.
    #[test]
    fn the_sorted_order_is_the_walks_order() {
        let mut state = 0x2545F4914F6CDD1Du64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let (mut fast, mut slow) = (0, 0);
        for round in 0..200 {
            let mut g = Graph::new("g", 13);
            let x = g
                .add_input("x", &TensorType::new(DType::FLOAT, &[1]))
                .unwrap();
            let mut values = vec![x];
            let mut nodes = Vec::new();
            for i in 0..2 + next(40) {
                let a = values[next(values.len())];
                let b = values[next(values.len())];
                let near = (!nodes.is_empty() && next(2) == 0).then(|| nodes[next(nodes.len())]);
                let (n, out) = g.add_node(
                    &format!("n{i}"),
                    Op::Add(Default::default()),
                    &[Some(a), Some(b)],
                    &["v"],
                    near,
                );
                nodes.push(n);
                values.push(out[0]);
            }
            g.add_output(*values.last().unwrap());
            let walk = g.topo_by_walk();
            let got = g.compute_topo_order();
            match (&got, &walk) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "round {round}"),
                (Err(_), Err(_)) => {}
                _ => panic!("round {round}: {got:?} vs {walk:?}"),
            }
            let sorted = {
                let mut k: Vec<_> = g.node_ids().map(|id| (g.node(id).order, id)).collect();
                k.sort();
                k.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
            };
            if got.as_ref().ok() == Some(&sorted) {
                fast += 1;
            } else {
                slow += 1;
            }
        }
        // Both paths were taken.
        assert!(fast > 10 && slow > 10, "{fast} in key order, {slow} not");
    }

    /// During a run of rewrites, a constant a rewrite computed goes the
    /// moment its last reader does (its bytes freed, its name kept until
    /// `eliminate-dead`); the model's own constants, a computed graph
    /// output, a small one, and anything outside a run are kept.
    #[test]
    fn an_unread_computed_constant_is_dropped_at_once() {
        const N: usize = 256;
        assert_eq!(N as u64 * 4, Graph::MIN_DROP_BYTES);
        let mut g = Graph::new("g", 13);
        let x = g
            .add_input("x", &TensorType::new(DType::FLOAT, &[N as i64]))
            .unwrap();
        let weight = |name: &str, k: f64| {
            let data: Vec<f64> = (0..N).map(|i| i as f64 * k).collect();
            Tensor::from_f64_as(name, DType::FLOAT, &[N as i64], &data)
        };
        // Built before the run: the model's own, whatever built it.
        let own = g.add_initializer("own", weight("own", 1.0));
        let add = |g: &mut Graph, name: &str, v: ValueId| {
            let (n, out) = g.add_node(
                name,
                Op::Add(Default::default()),
                &[Some(x), Some(v)],
                &["y"],
                None,
            );
            g.add_output(out[0]);
            n
        };
        let reads_own = add(&mut g, "reads_own", own);
        g.begin_rewrites();
        let w = g.add_initializer("w", weight("w", 2.0));
        let out = g.add_initializer("out", weight("out", 3.0));
        g.add_output(out);
        let small = g.add_initializer("small", Tensor::from_f64_as("", DType::FLOAT, &[1], &[1.0]));
        let (a, b, c, d) = (
            add(&mut g, "a", w),
            add(&mut g, "b", w),
            add(&mut g, "c", out),
            add(&mut g, "d", small),
        );
        assert_eq!(g.computed_constant_bytes(), 2 * 1024 + 4);
        // Rewired in place: read throughout, never dropped.
        g.set_inputs(a, &[Some(w), Some(x)]);
        // One of two readers goes: still read.
        g.set_input(a, 0, None);
        assert!(g.value(w).initializer().is_some());
        g.set_input(b, 1, None);
        let dropped = g.value(w);
        assert!(dropped.is_dropped_constant() && dropped.initializer().is_none());
        assert_eq!(
            g.computed_constant_bytes(),
            1024 + 4,
            "'out' and 'small' are left"
        );
        assert!(!g.initializers().any(|v| v == w));
        assert!(g.initializers_and_dropped().any(|v| v == w));
        assert_eq!(g.unique_name("w"), "w_1", "the name is still taken");
        // A graph output stays; so do a small one and the model's own.
        g.set_input(c, 1, None);
        g.set_input(d, 1, None);
        g.set_input(reads_own, 1, None);
        assert_eq!(g.value(out).initializer(), Some(&weight("out", 3.0)));
        assert_eq!(g.value(own).initializer(), Some(&weight("own", 1.0)));
        assert_eq!(g.computed_constant_bytes(), 1024 + 4);
        g.validate().unwrap();
        // Wired again after it was dropped: the validator names it.
        g.set_input(b, 1, Some(w));
        let err = g.validate().unwrap_err().to_string();
        assert!(err.contains("'w' is read after it was dropped"), "{err}");
        g.set_input(b, 1, Some(x));
        g.end_rewrites();
        // Outside a run, nothing is dropped.
        let late = g.add_initializer("late", weight("late", 4.0));
        g.set_input(c, 1, Some(late));
        g.set_input(c, 1, None);
        assert!(g.value(late).initializer().is_some());
        // A later run counts the first run's constants as the model's own.
        g.begin_rewrites();
        assert_eq!(g.computed_constant_bytes(), 0);
    }
}
