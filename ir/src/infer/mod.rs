//! Shape and dtype inference, keeping symbolic dims, with partial data
//! propagation for shape tensors.
//!
//! One walk over the nodes in topological order. Each default-domain op
//! type has a rule (a function of `Ctx`) in the file of its family —
//! `conv`, `elementwise`, `matmul`, `quant`, `reduce`, `resize`,
//! `shape_ops`, `index_ops` — found through one table, so adding an op is
//! one function in the right file and one line in its family's `RULES`.
//!
//! Besides types, the walk carries the *values* of small tensors
//! (`data.rs`): constants (initializers, `Constant` nodes, and whatever the
//! shared evaluator [`crate::eval`] computes from them) and the elements of
//! shape tensors as dims (`Shape → Gather → Concat → Reshape` resolves to
//! `[N, 144, 8400]` without folding anything first, as ONNX's own
//! `data_prop` does).
//!
//! Where inference cannot say (an opaque op, a data-dependent shape), the
//! type the model declared in `value_info` or the graph outputs is kept;
//! where it can, known dims win over symbols and unknowns. Data-dependent
//! dims (NonZero's count, TopK's runtime k) become fresh symbols named by
//! the node (`NonZero_12_count`), so two runs give the same names.

mod conv;
mod data;
mod dims;
mod elementwise;
mod index_ops;
mod matmul;
mod quant;
mod reduce;
mod resize;
mod shape_ops;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::attr::Attrs;
use crate::dtype::DType;
use crate::eval::Val;
use crate::graph::Graph;
use crate::ids::{NodeId, ValueId};
use crate::node::Node;
use crate::shape::{Dim, TensorType};

pub use data::Data;

/// A rule: reads the node's inputs through the context and sets the types
/// (and, for shape tensors, the values) of its outputs.
pub(crate) type Rule = fn(&mut Ctx);

/// Op type → rule, for the default domain.
fn table() -> &'static HashMap<&'static str, Rule> {
    static TABLE: OnceLock<HashMap<&'static str, Rule>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let families: [&[(&str, Rule)]; 9] = [
            conv::RULES,
            elementwise::RULES,
            index_ops::RULES,
            matmul::RULES,
            quant::RULES,
            reduce::RULES,
            resize::RULES,
            shape_ops::RULES,
            data::RULES,
        ];
        let mut t = HashMap::new();
        for family in families {
            for (op, rule) in family {
                let old = t.insert(*op, *rule);
                debug_assert!(old.is_none(), "two rules for {op}");
            }
        }
        t
    })
}

/// True when inference has a rule for this default-domain op type.
pub fn has_rule(op_type: &str) -> bool {
    table().contains_key(op_type)
}

/// Infers the type of every node output, in topological order. Declared
/// types are merged in: known dims win over symbols and unknowns. Where a
/// declared type contradicts the inferred one, the value is disputed (see
/// [`crate::graph::Dispute`]): it keeps the inferred type, so inference
/// goes on from what the ops compute, but [`Graph::ty`] refuses it.
pub fn infer_types(graph: &mut Graph) {
    let Ok(order) = graph.topo_order() else {
        return;
    };
    let declared = declared_types(graph);
    for d in std::mem::take(&mut graph.disputes) {
        if let Some(v) = graph.value_by_name(&d.value) {
            graph.value_mut(v).disputed = false;
        }
    }
    let mut state = State {
        data: Default::default(),
    };
    for &id in &order {
        let (mut types, data) = run_rule(graph, &state, id);
        for slot in 0..graph.node(id).outputs.len() {
            let Some(out) = graph.node(id).outputs[slot] else {
                continue;
            };
            if let Some(Some(d)) = data.get(slot) {
                state.data.insert(out, d.clone());
            }
            let Some(t) = types.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            if let Some(d) = declared.get(&out) {
                if contradicts(&t, d) {
                    let name = graph.value(out).name.to_string();
                    graph.disputes.push(crate::graph::Dispute {
                        value: name,
                        declared: d.clone(),
                        inferred: t.clone(),
                    });
                    let v = graph.value_mut(out);
                    v.ty = Some(t);
                    v.disputed = true;
                    continue;
                }
            }
            let v = graph.value_mut(out);
            // Merging a type into itself gives it back: most walks after
            // the first change no type, and allocate none.
            match &v.ty {
                Some(current) if *current == t => {}
                Some(current) => v.ty = Some(t.merge(current)),
                None => v.ty = Some(t),
            }
        }
    }
    // Only types changed: the order computed at the start still holds
    // (the next pass asks for it; recomputing it was a full sort per pass).
    graph.topo_cache.set(graph.generation, &order);
}

/// The types the model declares for node outputs: `value_info` entries and
/// graph outputs.
fn declared_types(graph: &Graph) -> HashMap<ValueId, TensorType> {
    let mut out = HashMap::new();
    let infos = graph
        .value_info
        .iter()
        .filter_map(|(v, info)| Some(((*v)?, info)))
        .chain(graph.outputs.iter().map(|(v, info)| (*v, info)));
    for (v, info) in infos {
        let live = graph.try_value(v).is_some_and(|val| val.producer.is_some());
        if !live {
            continue;
        }
        if let Some(t) = info.r#type.as_ref().and_then(TensorType::from_proto) {
            out.insert(v, t);
        }
    }
    out
}

/// True when two statements of a type cannot both hold: different element
/// types, ranks, or a dim both give as different numbers.
fn contradicts(a: &TensorType, b: &TensorType) -> bool {
    if a.dtype.0 != 0 && b.dtype.0 != 0 && a.dtype != b.dtype {
        return true;
    }
    match (&a.shape, &b.shape) {
        (Some(x), Some(y)) => {
            x.len() != y.len()
                || x.iter().zip(y).any(|p| match p {
                    (Dim::Known(i), Dim::Known(j)) => i != j,
                    _ => false,
                })
        }
        _ => false,
    }
}

/// The values known so far, by value id.
pub(crate) struct State {
    /// By value: only shape tensors and small constants have one (a table
    /// over every value was tens of MB to clear per walk on a large graph).
    data: HashMap<ValueId, Data, foldhash::fast::RandomState>,
}

type Outputs = (Vec<Option<TensorType>>, Vec<Option<Data>>);

fn run_rule(graph: &Graph, state: &State, id: NodeId) -> Outputs {
    let n = graph.node(id);
    let mut cx = Ctx {
        g: graph,
        n,
        id,
        state,
        out: vec![None; n.outputs.len()],
        data: vec![None; n.outputs.len()],
    };
    let standard = n.domain().is_empty() || n.domain() == "ai.onnx";
    if !standard {
        return (cx.out, cx.data);
    }
    if let Some(rule) = table().get(n.op_type()) {
        rule(&mut cx);
    }
    // Values: a constant computed from constants, else a shape tensor's
    // elements as dims.
    if cx.data.first().is_some_and(Option::is_none) && n.outputs.len() == 1 {
        if let Some(v) = data::evaluate(&cx) {
            cx.data[0] = Some(v);
        } else {
            data::propagate(&mut cx);
        }
    }
    // A value whose type the rule could not say has the type of its data.
    for slot in 0..cx.out.len() {
        if cx.out[slot].is_none() {
            if let Some(d) = &cx.data[slot] {
                cx.out[slot] = d.ty(cx.declared_dtype(slot));
            }
        }
    }
    (cx.out, cx.data)
}

/// What a rule sees: the node, its inputs' types and values, and the
/// outputs it sets.
pub(crate) struct Ctx<'a> {
    g: &'a Graph,
    pub n: &'a Node,
    id: NodeId,
    state: &'a State,
    pub out: Vec<Option<TensorType>>,
    pub data: Vec<Option<Data>>,
}

/// Constants larger than this many elements are not carried as values
/// (inference needs shapes, scales and axes, not weights).
pub(crate) const MAX_CONST_ELEMS: u64 = 1024;

impl<'a> Ctx<'a> {
    pub fn opset(&self) -> i64 {
        self.g.opset()
    }

    pub fn attrs(&self) -> Attrs<'a> {
        Attrs(self.n.attributes())
    }

    pub fn int_attr(&self, name: &str) -> Option<i64> {
        self.attrs().int(name).ok().flatten()
    }

    pub fn ints_attr(&self, name: &str) -> Option<Vec<i64>> {
        self.attrs().ints(name).ok().flatten()
    }

    pub fn string_attr(&self, name: &str) -> Option<String> {
        self.attrs().string(name).ok().flatten()
    }

    pub fn has_input(&self, i: usize) -> bool {
        self.n.input(i).is_some()
    }

    pub fn n_inputs(&self) -> usize {
        self.n.inputs.len()
    }

    pub fn n_outputs(&self) -> usize {
        self.n.outputs.len()
    }

    /// Input `i`'s type (as inferred or declared so far).
    pub fn ty(&self, i: usize) -> Option<&'a TensorType> {
        self.g.value(self.n.input(i)?).ty.as_ref()
    }

    pub fn dtype(&self, i: usize) -> Option<DType> {
        self.ty(i).map(|t| t.dtype)
    }

    pub fn shape(&self, i: usize) -> Option<&'a [Dim]> {
        self.ty(i)?.shape.as_deref()
    }

    pub fn rank(&self, i: usize) -> Option<usize> {
        self.shape(i).map(<[Dim]>::len)
    }

    /// The node's name for fresh symbols: its name, or `op_type_id`.
    pub fn node_label(&self) -> String {
        if self.n.name().is_empty() {
            format!("{}_{}", self.n.op_type(), self.id.index())
        } else {
            self.n.name().to_string()
        }
    }

    /// A fresh symbol for a data-dependent dim of this node.
    pub fn fresh(&self, what: &str) -> Dim {
        Dim::sym(&format!("{}_{what}", self.node_label()))
    }

    /// Input `i`'s value as carried by the walk or stored as a small
    /// constant.
    pub fn data(&self, i: usize) -> Option<Data> {
        let v = self.n.input(i)?;
        if let Some(d) = self.state.data.get(&v) {
            return Some(d.clone());
        }
        let t = self.g.constant(v)?;
        if t.numel()? > MAX_CONST_ELEMS {
            return None;
        }
        Some(Data::Const(Arc::new(Val::of(t)?)))
    }

    /// Input `i`'s value when every element is known.
    pub fn konst(&self, i: usize) -> Option<Arc<Val>> {
        let dtype = self.dtype(i);
        self.data(i)?.to_const(dtype)
    }

    /// Input `i`'s integer values, when all known.
    pub fn ints(&self, i: usize) -> Option<Vec<i64>> {
        self.konst(i)?.ints()
    }

    /// Input `i`'s float values (f32 or f64), when all known.
    pub fn floats(&self, i: usize) -> Option<Vec<f64>> {
        let v = self.konst(i)?;
        match v.dtype {
            DType::FLOAT => Some(v.f32s().into_iter().map(f64::from).collect()),
            DType::DOUBLE => Some(v.f64s()),
            _ => None,
        }
    }

    /// Input `i` — a 0-D or 1-D integer tensor — element by element, each
    /// a dim (known, symbolic or unknown). When only its length is known
    /// (from its type), every element is unknown.
    pub fn dims_value(&self, i: usize) -> Option<Vec<Dim>> {
        if let Some(d) = self.data(i) {
            if let Some(e) = d.elems() {
                return Some(e);
            }
        }
        match self.shape(i)? {
            [] => Some(vec![Dim::Unknown]),
            [Dim::Known(n)] if (0..=data::MAX_DIMS as i64).contains(n) => {
                Some(vec![Dim::Unknown; *n as usize])
            }
            _ => None,
        }
    }

    /// The dtype a model declared for output `slot`, if any.
    fn declared_dtype(&self, slot: usize) -> Option<DType> {
        let v = self.n.output(slot)?;
        self.g.value(v).ty.as_ref().map(|t| t.dtype)
    }

    /// Sets output `slot`'s type.
    pub fn set(&mut self, slot: usize, t: TensorType) {
        if let Some(o) = self.out.get_mut(slot) {
            *o = Some(t);
        }
    }

    /// Sets output `slot` to `dtype` with `shape`.
    pub fn set_shape(&mut self, slot: usize, dtype: DType, shape: Vec<Dim>) {
        self.set(
            slot,
            TensorType {
                dtype,
                shape: Some(shape),
            },
        );
    }

    /// Sets output `slot` to `dtype` of unknown shape (when only the
    /// element type is known).
    pub fn set_dtype(&mut self, slot: usize, dtype: DType) {
        self.set(slot, TensorType { dtype, shape: None });
    }

    /// Output `slot` has input `i`'s type.
    pub fn same_as(&mut self, slot: usize, i: usize) {
        if let Some(t) = self.ty(i) {
            self.set(slot, t.clone());
        }
    }

    pub fn set_data(&mut self, slot: usize, d: Data) {
        if let Some(o) = self.data.get_mut(slot) {
            *o = Some(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_rule_is_registered_once() {
        // The table panics in debug builds on a duplicate; build it.
        assert!(has_rule("Conv") && has_rule("Split") && has_rule("Einsum"));
        assert!(!has_rule("NoSuchOp"));
    }
}
