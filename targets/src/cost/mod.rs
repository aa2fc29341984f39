//! The cost model: a graph plus a target → per-layer cycles, utilisation
//! and the bound that sets them, whole-model totals, and flags for the
//! biggest losses with the rewrite that would address them.
//!
//! Formulas follow `TARGETS.md` (⌈x⌉ₐ = x rounded up to a multiple of a,
//! P = MACs/cycle × cores):
//! * dense conv: `max(⌈Cout⌉·⌈Cin⌉·k²·Ho·Wo / (P·eff), Ho·Wo·Cout·out_cpe,
//!   bytes / bandwidth)`, eff = kernel × stride-2 × dilation efficiency
//!   (`conv.rs`);
//! * depthwise: `⌈C⌉·⌈k²⌉_kstep·Ho·Wo / (P·frac_of_peak)` × stride-2
//!   penalty; an unsupported kernel falls back to the CPU;
//! * group conv: native / split / cpu;
//! * add, mul, concat, activations, pools, data movement (`simple.rs`);
//! * anything the target cannot run: CPU time plus the transfers;
//! * with `memory.weight_prefetch`, a layer's weight transfer starts under
//!   the previous layer (Vela's double-buffered weights): it costs only
//!   what that layer's memory slack — its cycles minus its own transfers —
//!   cannot hide.
//!
//! Absolute figures are estimates (public analytic models land within
//! about ±10% of a vendor's estimator); use them to compare alternatives.
//! The model only reads the graph. One pass over the nodes in topological
//! order: linear in the graph's size, and deterministic.

mod constants;
mod conv;
mod flags;
mod simple;

use npuopt_ir::{macs, DType, Graph, NodeId, ValueId};
use serde::Serialize;

use crate::schema::Target;

pub use flags::{Flag, FlagKind};

/// What sets a layer's cycles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// The MAC array (including padding and kernel/stride inefficiency).
    Compute,
    /// The output stage: cycles per output element.
    Output,
    /// Memory bandwidth.
    Memory,
    /// Run on the CPU, plus transfers.
    Fallback,
    /// Costs nothing: fused into its producer, in place, or a reshape.
    Free,
    /// A value it reads or writes has no known shape: not costed (see
    /// [`LayerCost::missing_shape`]).
    Unsized,
}

impl Bound {
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::Compute => "compute",
            Bound::Output => "output",
            Bound::Memory => "memory",
            Bound::Fallback => "fallback",
            Bound::Free => "free",
            Bound::Unsized => "unsized",
        }
    }
}

/// How the cost model classified a layer (drives the flags).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    DenseConv {
        cin: i64,
        cout: i64,
        /// Input channels come straight from a graph input (cannot be
        /// re-padded by a rewrite).
        cin_from_input: bool,
    },
    Depthwise {
        channels: i64,
        kernel: Vec<i64>,
    },
    GroupConv {
        group: i64,
    },
    Concat {
        /// Channel offsets of the inputs that are not aligned.
        misaligned: Vec<i64>,
    },
    Other,
}

/// The cost of one node.
#[derive(Clone, Debug, Serialize)]
pub struct LayerCost {
    pub name: String,
    pub op: String,
    /// Input and output shapes, `1x32x112x112 -> 1x16x112x112`.
    pub shapes: String,
    /// Useful MACs: the model's own arithmetic.
    pub macs: u64,
    /// MACs the hardware executes, counting channel padding and kernel
    /// steps (zeros are never useful work).
    pub executed_macs: u64,
    pub cycles: u64,
    /// Useful MACs / (cycles × peak MACs per cycle); 0 for MAC-free ops.
    pub utilization: f64,
    pub bound: Bound,
    /// Whether the NPU runs it (false: CPU fallback).
    pub supported: bool,
    /// Why: fused into X, falls back because Y …
    pub note: String,
    pub kind: LayerKind,
    /// The layer could not be sized: the value it reads or writes whose
    /// shape is unknown ("unsized"). Its cycles (0) are not an estimate.
    pub missing_shape: Option<String>,
}

/// The cost of a whole model on one target. Every figure is an estimate.
#[derive(Clone, Debug, Serialize)]
pub struct Estimate {
    pub target: String,
    pub clock_mhz: f64,
    pub peak_macs_per_cycle: f64,
    pub total_cycles: u64,
    /// `total_cycles` at the target's clock, in milliseconds (an estimate).
    pub latency_ms: f64,
    pub macs: u64,
    pub executed_macs: u64,
    /// Useful MACs / (total cycles × peak).
    pub utilization: f64,
    /// Layers that could not be sized (a value without a known shape):
    /// not costed, so the total is a lower bound.
    pub unsized_layers: usize,
    /// Of those, convs and matrix products: their MACs are missing from
    /// `macs`.
    pub unsized_mac_layers: usize,
    /// Symbolic dims the estimate evaluated at 1 (no `--input-shape` pinned
    /// them), sorted.
    pub symbols_at_one: Vec<String>,
    pub layers: Vec<LayerCost>,
    pub flags: Vec<Flag>,
}

/// The costing of one node before it is named.
#[derive(Clone, Debug)]
pub(crate) struct Cost {
    pub executed_macs: u64,
    pub cycles: f64,
    pub bound: Bound,
    pub supported: bool,
    pub note: String,
    pub kind: LayerKind,
    /// How the cycles split between the engine and memory, for layers
    /// costed as `max(engine, memory)`; `None` for free and fallback ones.
    pub overlap: Option<Overlap>,
}

/// A layer costed as `max(engine, memory) + serial`: what
/// [`Cost::with_prefetch`] needs to re-cost it when part of its memory
/// traffic (its weights) moved under the previous layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Overlap {
    /// The slowest non-memory bound (compute or output stage).
    pub engine: f64,
    pub engine_bound: Bound,
    /// Activation and weight transfer cycles.
    pub memory: f64,
    /// Cycles added after the overlap (a split group conv's concat).
    pub serial: f64,
}

impl Cost {
    pub fn free(note: impl Into<String>) -> Cost {
        Cost {
            executed_macs: 0,
            cycles: 0.0,
            bound: Bound::Free,
            supported: true,
            note: note.into(),
            kind: LayerKind::Other,
            overlap: None,
        }
    }

    /// The slowest of the candidate bounds (ties go to the earlier one).
    pub fn max_of(parts: &[(Bound, f64)], executed_macs: u64, kind: LayerKind) -> Cost {
        let slowest = |acc: (Bound, f64), p: (Bound, f64)| if p.1 > acc.1 { p } else { acc };
        let (bound, cycles) = parts.iter().copied().fold((Bound::Free, 0.0), slowest);
        let (engine_bound, engine) = parts
            .iter()
            .copied()
            .filter(|p| p.0 != Bound::Memory)
            .fold((Bound::Free, 0.0), slowest);
        let memory = parts
            .iter()
            .filter(|p| p.0 == Bound::Memory)
            .map(|p| p.1)
            .sum();
        Cost {
            executed_macs,
            cycles,
            bound,
            supported: true,
            note: String::new(),
            kind,
            overlap: Some(Overlap {
                engine,
                engine_bound,
                memory,
                serial: 0.0,
            }),
        }
    }

    /// Adds cycles that run after the layer's overlapped part.
    pub fn add_serial(&mut self, cycles: f64) {
        self.cycles += cycles;
        if let Some(o) = &mut self.overlap {
            o.serial += cycles;
        }
    }

    /// Re-costs the layer with its weight transfer (`weights()` cycles, part
    /// of its memory cycles) started under the previous layer, which left
    /// the memory idle for `slack` cycles; returns the slack this layer
    /// leaves for the next one. The model follows Vela's double-buffered
    /// weights: the hidden part is `min(weights, slack)`.
    fn with_prefetch(&mut self, weights: impl FnOnce() -> f64, slack: f64) -> f64 {
        let Some(o) = self.overlap else {
            // A fallback keeps the NPU's DMA out of the picture; a free
            // layer takes no time and passes the slack on.
            return if self.cycles > 0.0 { 0.0 } else { slack };
        };
        // The weights are only worth counting when there is slack to hide
        // them in (most layers of a compute-bound model have none).
        let hidden = if slack > 0.0 {
            weights().min(slack)
        } else {
            0.0
        };
        let memory = o.memory - hidden;
        let overlapped = o.engine.max(memory);
        self.cycles = overlapped + o.serial;
        if memory > o.engine {
            self.bound = Bound::Memory;
        } else if self.bound == Bound::Memory {
            self.bound = o.engine_bound;
        }
        if hidden >= 1.0 {
            let note =
                format!("weights fetched under the previous layer ({hidden:.0} cycles hidden)");
            self.note = if self.note.is_empty() {
                note
            } else {
                format!("{}; {note}", self.note)
            };
        }
        if self.cycles > 0.0 {
            (overlapped - memory).max(0.0)
        } else {
            slack
        }
    }
}

/// What the op classes need to know about a node.
pub(crate) struct Ctx<'a> {
    pub g: &'a Graph,
    pub t: &'a Target,
    pub id: NodeId,
    pub macs: u64,
    /// Symbols the estimate evaluated at 1.
    pub symbols: &'a SymbolsAtOne,
    /// Values known before run time (see `constants.rs`), by value index.
    pub constants: &'a [bool],
}

/// The symbolic dims an estimate evaluated at 1, as they are met.
#[derive(Default)]
pub(crate) struct SymbolsAtOne(std::cell::RefCell<std::collections::BTreeSet<String>>);

impl SymbolsAtOne {
    /// A symbol's value for the cost model: 1, noted.
    pub fn bind(&self, s: &str) -> Option<i64> {
        let mut set = self.0.borrow_mut();
        if !set.contains(s) {
            set.insert(s.to_string());
        }
        Some(1)
    }

    fn into_vec(self) -> Vec<String> {
        self.0.into_inner().into_iter().collect()
    }
}

impl Ctx<'_> {
    pub fn node(&self) -> &npuopt_ir::Node {
        self.g.node(self.id)
    }

    /// True when `v` is known before run time: an initializer, or computed
    /// from constants alone (the compiler folds it; it is a weight).
    pub fn is_constant(&self, v: ValueId) -> bool {
        self.constants.get(v.index()).copied().unwrap_or(false)
    }

    /// `v`'s shape, symbolic dims evaluated at 1.
    pub fn shape(&self, v: Option<ValueId>) -> Option<Vec<i64>> {
        self.g.ty(v?)?.concrete_with(&|s| self.symbols.bind(s))
    }

    /// The first value the layer reads (not a constant) or writes (and is
    /// read) whose shape is unknown: inputs first, as the likelier cause.
    fn missing_shape(&self) -> Option<ValueId> {
        let n = self.node();
        let read = |v: &ValueId| !self.g.value(*v).uses().is_empty() || self.g.is_graph_output(*v);
        n.inputs()
            .iter()
            .flatten()
            .filter(|v| !self.is_constant(**v))
            .chain(n.outputs().iter().flatten().filter(|v| read(v)))
            .copied()
            .find(|v| self.shape(Some(*v)).is_none())
    }

    pub fn in_shape(&self, i: usize) -> Option<Vec<i64>> {
        self.shape(self.node().input(i))
    }

    pub fn out_shape(&self, i: usize) -> Option<Vec<i64>> {
        self.shape(self.node().output(i))
    }

    pub fn peak(&self) -> f64 {
        self.t.peak_macs_per_cycle()
    }

    /// Cycles to move `bytes` at `gbps` GB/s; 0 when the bandwidth is 0
    /// (not modelled).
    pub fn transfer_cycles(&self, bytes: u64, gbps: f64) -> f64 {
        if gbps <= 0.0 {
            0.0
        } else {
            bytes as f64 * self.t.target.clock_mhz / (gbps * 1000.0)
        }
    }

    /// Memory cycles of a node reading its non-constant inputs and
    /// constant weights and writing its outputs.
    pub fn memory_cycles(&self) -> f64 {
        let (act, weights) = self.memory_parts();
        act + weights
    }

    /// The weight-transfer part of [`Ctx::memory_cycles`].
    pub fn weight_cycles(&self) -> f64 {
        self.memory_parts().1
    }

    /// Transfer cycles of the activations (non-constant inputs and the
    /// outputs) and of the constant inputs (weights, biases).
    fn memory_parts(&self) -> (f64, f64) {
        let bpe = self.t.compute.bytes_per_elem as u64;
        let n = self.node();
        let (mut act, mut weights) = (0u64, 0u64);
        // A conv's or Gemm's bias is not counted: a quantised layer carries a
        // per-channel bias and scale whether the float model has a bias or
        // not (Vela charges them per output channel either way), so folding
        // a BatchNormalization into a bias must not look like extra traffic.
        let bias_slot = matches!(
            n.op(),
            npuopt_ir::Op::Conv(_) | npuopt_ir::Op::ConvTranspose(_) | npuopt_ir::Op::Gemm(_)
        )
        .then_some(2);
        for (slot, v) in n.inputs().iter().enumerate() {
            let Some(v) = v else { continue };
            let e = self.elems(Some(*v)).unwrap_or(0);
            if self.is_constant(*v) {
                if Some(slot) != bias_slot {
                    weights += e;
                }
            } else {
                act += e;
            }
        }
        for v in n.outputs().iter().flatten() {
            act += self.elems(Some(*v)).unwrap_or(0);
        }
        let m = &self.t.memory;
        let weight_gbps = if m.weights_in_dram {
            m.dram_gbps
        } else {
            m.sram_gbps
        };
        (
            self.transfer_cycles(act * bpe, m.sram_gbps),
            self.transfer_cycles(weights * bpe, weight_gbps),
        )
    }

    /// Elements of `v` as the hardware stores it: a feature map an NPU op
    /// produced (rank ≥ 3, channels on axis 1) has its channels rounded up
    /// to `align.cout` — the hardware pads them whether the model wants it
    /// or not, so every per-element cost is paid on the padded count.
    /// Weights and graph inputs (written densely by the host) are not.
    pub fn elems(&self, v: Option<ValueId>) -> Option<u64> {
        let mut shape = self.shape(v)?;
        let v = v?;
        let produced = self.g.value(v).producer().is_some();
        if produced && shape.len() >= 3 && !self.is_constant(v) {
            let a = self.t.align.cout.max(1) as i64;
            shape[1] = (shape[1] + a - 1) / a * a;
        }
        shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(u64::try_from(d).ok()?))
    }

    /// Elements of every non-constant input plus every output.
    pub fn io_elems(&self) -> u64 {
        let n = self.node();
        let ins: u64 = n
            .inputs()
            .iter()
            .flatten()
            .filter(|v| !self.is_constant(**v))
            .map(|v| self.elems(Some(*v)).unwrap_or(0))
            .sum();
        let outs: u64 = n
            .outputs()
            .iter()
            .flatten()
            .map(|v| self.elems(Some(*v)).unwrap_or(0))
            .sum();
        ins + outs
    }

    /// The CPU runs the node: `work` MACs (or element ops) at the host's
    /// rate, plus moving its inputs and outputs across.
    pub fn fallback(&self, work: u64, why: impl Into<String>, kind: LayerKind) -> Cost {
        let f = &self.t.fallback;
        let cpu = work as f64 * self.t.target.clock_mhz / (f.cpu_gmacs * 1000.0);
        let bytes = self.io_elems() * self.t.compute.bytes_per_elem as u64;
        let xfer = self.transfer_cycles(bytes, f.transfer_gbps);
        Cost {
            executed_macs: self.macs,
            cycles: cpu + xfer,
            bound: Bound::Fallback,
            supported: false,
            note: why.into(),
            kind,
            overlap: None,
        }
    }

    /// The producer of input `i` when this node may be fused into it: the
    /// value is read only here and is not a graph output.
    pub fn fusable_producer(&self, i: usize) -> Option<NodeId> {
        let v = self.node().input(i)?;
        let p = self.g.producer(v)?;
        self.g.has_single_use(v).then_some(p)
    }
}

/// Rounds `x` up to a multiple of `a`.
pub(crate) fn round_up(x: i64, a: u32) -> i64 {
    let a = a.max(1) as i64;
    (x + a - 1) / a * a
}

fn shape_text(g: &Graph, constants: &[bool], vs: &[Option<ValueId>]) -> String {
    vs.iter()
        .flatten()
        .filter(|v| !constants.get(v.index()).copied().unwrap_or(false))
        .map(|v| match g.ty(*v).and_then(|t| t.shape.as_ref()) {
            Some(s) => s
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x"),
            None => "?".into(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when every output is an integer or boolean tensor: shape
/// arithmetic an NPU compiler folds away.
fn is_shape_arithmetic(g: &Graph, id: NodeId) -> bool {
    let outs = g.node(id).outputs();
    !outs.is_empty()
        && outs.iter().flatten().all(|v| {
            g.ty(*v).is_some_and(|t| {
                [DType::INT64, DType::INT32, DType::BOOL].contains(&t.dtype)
                    && t.concrete().is_some_and(|s| s.len() <= 1)
            })
        })
}

/// Costs one node.
fn cost_node(ctx: &Ctx) -> Option<Cost> {
    use npuopt_ir::Op;
    let n = ctx.node();
    if !n.outputs().is_empty() && n.outputs().iter().flatten().all(|v| ctx.is_constant(*v)) {
        return Some(Cost::free("computes a constant (folded by the compiler)"));
    }
    if is_shape_arithmetic(ctx.g, ctx.id) {
        return Some(Cost::free("shape arithmetic (folded by the compiler)"));
    }
    match n.op() {
        Op::Conv(c) => conv::conv(ctx, c.group, &c.window),
        Op::ConvTranspose(c) => conv::conv_transpose(ctx, c.group, &c.window),
        Op::Gemm(_) | Op::MatMul => conv::matmul(ctx),
        _ => simple::cost(ctx),
    }
}

/// An unsized layer: its node, the value without a shape, and whether it
/// is a conv or a matrix product (MACs missing from the total).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unsized {
    pub node: String,
    pub value: String,
    pub has_macs: bool,
    /// `unknown`, or `disputed` (declared and inferred shapes differ).
    pub why: &'static str,
}

/// Costs every node of `g` in schedule (topological) order, carrying the
/// weight-prefetch slack from layer to layer, and hands each to `visit`
/// with its cycles rounded up (and the value it lacks a shape for, when it
/// cannot be sized). Returns the unsized layers and the symbols evaluated
/// at 1.
fn walk(
    g: &Graph,
    t: &Target,
    mut visit: impl FnMut(&Ctx, Cost, u64, Option<String>),
) -> (Vec<Unsized>, Vec<String>) {
    let order = g
        .topo_order()
        .unwrap_or_else(|_| g.node_ids().collect::<Vec<_>>());
    let symbols = SymbolsAtOne::default();
    let constants = constants::constant_values(g, &order);
    let mut unsized_layers = Vec::new();
    // Memory cycles the previous layer left idle (weight prefetch).
    let mut slack = 0.0;
    for id in order {
        let useful = macs::node_macs_with(g, id, &|s| symbols.bind(s));
        let ctx = Ctx {
            g,
            t,
            id,
            macs: useful.unwrap_or(0),
            symbols: &symbols,
            constants: &constants,
        };
        // A layer that is not free must see every value it moves: one
        // costed with a missing size would be costed as 0 by accident.
        let missing = |ctx: &Ctx| ctx.missing_shape().map(|v| g.value(v).name().to_string());
        let sized = match useful.and_then(|_| cost_node(&ctx)) {
            Some(c) if c.bound == Bound::Free => Ok(c),
            Some(c) => missing(&ctx).map_or(Ok(c), Err),
            None => Err(missing(&ctx).unwrap_or_else(|| {
                let out = ctx.node().output(0);
                out.map(|v| g.value(v).name().to_string())
                    .unwrap_or_default()
            })),
        };
        let (mut cost, missing) = match sized {
            Ok(c) => (c, None),
            Err(v) => {
                let n = ctx.node();
                let why = match g.value_by_name(&v) {
                    Some(id) if g.is_disputed(id) => "disputed",
                    _ => "unknown",
                };
                unsized_layers.push(Unsized {
                    node: n.name().to_string(),
                    value: v.clone(),
                    why,
                    has_macs: matches!(
                        n.op(),
                        npuopt_ir::Op::Conv(_)
                            | npuopt_ir::Op::ConvTranspose(_)
                            | npuopt_ir::Op::Gemm(_)
                            | npuopt_ir::Op::MatMul
                    ),
                });
                let note = format!("unsized: the shape of '{v}' is {why} (not costed)");
                (
                    Cost {
                        executed_macs: 0,
                        cycles: 0.0,
                        bound: Bound::Unsized,
                        supported: true,
                        note,
                        kind: LayerKind::Other,
                        overlap: None,
                    },
                    Some(v),
                )
            }
        };
        if t.memory.weight_prefetch {
            slack = cost.with_prefetch(|| ctx.weight_cycles(), slack);
        }
        let cycles = cost.cycles.max(0.0).ceil() as u64;
        visit(&ctx, cost, cycles, missing);
    }
    (unsized_layers, symbols.into_vec())
}

/// The whole-model figures a cost gate compares, without the per-layer
/// report (no names, shapes or useful-MAC scan of the weights).
#[derive(Clone, Debug, PartialEq)]
pub struct Totals {
    pub total_cycles: u64,
    /// `total_cycles` at the target's clock, in milliseconds.
    pub latency_ms: f64,
    /// The layers that could not be sized.
    pub unsized_layers: Vec<Unsized>,
}

/// [`estimate`]'s totals only: the same cycles, at a fraction of the work.
pub fn totals(g: &Graph, t: &Target) -> Totals {
    let mut total_cycles = 0u64;
    let (unsized_layers, _) = walk(g, t, |_, _, cycles, _| total_cycles += cycles);
    Totals {
        total_cycles,
        latency_ms: total_cycles as f64 / (t.target.clock_mhz * 1000.0),
        unsized_layers,
    }
}

/// Estimates the cost of every node of `g` on target `t`.
pub fn estimate(g: &Graph, t: &Target) -> Estimate {
    // Every layer's useful MACs read its whole weight: counted up front,
    // on every core.
    macs::count_weight_nonzeros(g);
    let peak = t.peak_macs_per_cycle();
    let mut layers = Vec::with_capacity(g.node_count());
    let (unsized_layers, symbols_at_one) = walk(g, t, |ctx, cost, cycles, missing| {
        let (id, n) = (ctx.id, ctx.node());
        let dense = ctx.macs;
        // Zero weights (a rewrite's block-diagonal or padding zeros) are
        // executed but never useful.
        let m = macs::useful_node_macs_with(g, id, &|s| ctx.symbols.bind(s)).unwrap_or(dense);
        let utilization = if m > 0 && cycles > 0 {
            m as f64 / (cycles as f64 * peak)
        } else {
            0.0
        };
        let op = if n.domain().is_empty() || n.domain() == "ai.onnx" {
            n.op_type().to_string()
        } else {
            format!("{}::{}", n.domain(), n.op_type())
        };
        layers.push(LayerCost {
            name: n.name().to_string(),
            op,
            shapes: format!(
                "{} -> {}",
                shape_text(g, ctx.constants, n.inputs()),
                shape_text(g, ctx.constants, n.outputs())
            ),
            macs: m,
            executed_macs: cost
                .executed_macs
                .max(dense)
                .max(if cost.supported { 0 } else { m }),
            cycles,
            utilization,
            bound: cost.bound,
            supported: cost.supported,
            note: cost.note,
            kind: cost.kind,
            missing_shape: missing,
        });
    });
    let total_cycles: u64 = layers.iter().map(|l| l.cycles).sum();
    let total_macs: u64 = layers.iter().map(|l| l.macs).sum();
    let executed: u64 = layers.iter().map(|l| l.executed_macs).sum();
    let flags = flags::flags(t, &layers, total_cycles);
    Estimate {
        target: t.name().to_string(),
        clock_mhz: t.target.clock_mhz,
        peak_macs_per_cycle: peak,
        total_cycles,
        latency_ms: total_cycles as f64 / (t.target.clock_mhz * 1000.0),
        macs: total_macs,
        executed_macs: executed,
        utilization: if total_cycles > 0 {
            total_macs as f64 / (total_cycles as f64 * peak)
        } else {
            0.0
        },
        unsized_mac_layers: unsized_layers.iter().filter(|u| u.has_macs).count(),
        unsized_layers: unsized_layers.len(),
        symbols_at_one,
        layers,
        flags,
    }
}
