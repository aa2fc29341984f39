//! `pad-channels`: zero-pads a conv's output channels to the hardware's
//! channel alignment (REWRITES.md §7).
//!
//! Before:  y = Conv_2(Relu(BN(Conv_1(x, W1, b1))), W2, b2)     C channels
//! After:   y = Conv_2'(Relu(BN'(Conv_1'(x, W1', b1'))), W2', b2)  C' = ⌈C/A⌉·A
//!
//! Formula, with C' = ⌈C/A⌉·A and new channels c ∈ [C, C'):
//! * a producer conv (G = 1) gets zero filters and zero bias:
//!   `W1'[c] = 0`, `b1'[c] = 0` — its new channels are exactly 0;
//! * per-channel ops pass the padding through with neutral parameters:
//!   BN `γ = 0, β = 0, μ = 0, σ² = 1`; a per-channel constant of Add, Sub,
//!   Mul: 0, of Div (the divisor): 1; a depthwise conv (G = C, one filter
//!   per channel): zero kernel, zero bias, `group = C'`;
//! * element-wise activations (Relu, Clip, Sigmoid, HardSwish, HardSigmoid,
//!   Tanh, LeakyRelu, …), pools (MaxPool, AveragePool, GlobalAveragePool),
//!   Identity and inference Dropout pass it through unchanged;
//! * element-wise binaries (Add, Sub, Mul, Div, Sum) pass it through only
//!   when every non-constant operand is padded the same way (the region
//!   then grows backwards to that operand's producer: a residual Add pads
//!   both branches);
//! * an absorbing consumer ends the region: a G = 1 conv reading the padded
//!   tensor gets zero weights for the new input channels,
//!   `W2'[:, c] = 0`; a Flatten(axis = 1) read only by Gemm (transA = 0) /
//!   MatMul with a constant B gets zero rows of B for the new features
//!   (Flatten of `[N, C', H, W]` puts channel c's features at
//!   `c·H·W … (c+1)·H·W`, so the new ones are exactly the trailing
//!   `(C' − C)·H·W`).
//!
//! Values in the new channels are 0 after the producer and stay finite
//! through every op above (Sigmoid(0) = 0.5 is fine); the absorbing
//! consumer multiplies them by zero weights, so every value outside the
//! region is unchanged: the rewrite is exact.
//!
//! Preconditions (all-or-nothing per region: if any fails, nothing
//! changes and the report says why):
//! * every tensor of the region has a known channel count C on axis 1 and a
//!   known rank and is not a graph output (graph outputs keep their shapes;
//!   no Slice is inserted — the padding simply does not happen). A declared
//!   `value_info` of a region tensor is rewritten to the padded shape (doc
//!   string and metadata kept), as dynamo exports declare every tensor;
//! * every producer and consumer is one of the ops above; a grouped conv
//!   (1 < G, or a depthwise conv with multiplier > 1) reading the region, a
//!   Concat, a Reshape, a graph input feeding a padded binary, or any other
//!   op stops the whole region;
//! * weights, biases, BN parameters and per-channel operands are float
//!   constants; BN is in inference mode with only its first output read.
//!
//! Gating: A is [`PadChannels::align`] when set; otherwise the target's
//! alignments are tried largest first — a multiple of `align.cin` and
//! `align.cout` (what the consuming conv reads at full rate: Axera wants
//! Cin a multiple of 16, Cout of 8), then `align.cout` — the smaller only
//! when the cost model turned the larger down. With a target, each region
//! is a [`Proposal`] to the cost model (`adds_capacity`: under `--intent
//! capacity` it is applied within the latency budget, under `deploy` the
//! estimate must fall); rejected regions are skips carrying both
//! estimates. Without a target the pass does nothing, unless it was built
//! with an explicit alignment (tests, library callers): then every region
//! that plans is applied, ungated.

use std::collections::{HashMap, HashSet, VecDeque};

use npuopt_ir::op::Conv;
use npuopt_ir::shape::Dim;
use npuopt_ir::{DType, Graph, NodeId, Op, TensorType, ValueId};

use crate::change::Change;
use crate::gate::{Outcome, Proposal};
use crate::pass::{for_each_live_node, Pass, PassContext, PassError};
use crate::rewrite::set_constant_input;

const NAME: &str = "pad-channels";
const RULE: &str = "pad-region";

/// The pass. `align: None` takes the alignment from the target in the
/// context; with neither, the pass does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct PadChannels {
    /// Channel alignment A (a target's `align.cout`).
    pub align: Option<usize>,
}

impl Pass for PadChannels {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "zero-pad conv output channels to the target's alignment, through per-channel and element-wise ops, absorbed by the consuming conv or Gemm"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let alignments = self.alignments(cx);
        if alignments.is_empty() {
            return Ok(());
        }
        let g = &mut model.graph;
        // Producers of regions already put to the cost model: a residual
        // stream is one region, proposed once, not once per conv.
        let mut proposed: HashSet<NodeId> = HashSet::new();
        for_each_live_node(g, cx, |g, id, cx| {
            if proposed.contains(&id) {
                return;
            }
            let Some(c) = dense_conv_out_channels(g, id) else {
                return;
            };
            // The largest alignment first; a smaller one is tried only if
            // the cost model turned the larger one down.
            let mut tried: Option<usize> = None;
            for &align in &alignments {
                // 24 channels pad to 32 for A = 32 and A = 16 alike: one
                // proposal.
                let padded = c.next_multiple_of(align);
                if padded == c || tried == Some(padded) {
                    continue;
                }
                tried = Some(padded);
                let name = g.node(id).name().to_string();
                let plan = match pad_region(g, id, align) {
                    Ok(plan) => plan,
                    Err(why) => {
                        cx.skip(
                            NAME,
                            RULE,
                            &name,
                            format!(
                                "'{name}': {c} → {} channels not padded: {why}",
                                c.next_multiple_of(align)
                            ),
                        );
                        // The region's structure, not the alignment, is
                        // what refused: a smaller one fails the same way.
                        break;
                    }
                };
                let change = plan.change(g);
                proposed.extend(plan.producers.iter().copied());
                if cx.target().is_none() {
                    // An explicit alignment without a target: exact, ungated.
                    plan.apply(g);
                    cx.record(change);
                    break;
                }
                // Node and value ids are those of a clone too: the plan
                // applies to the candidate graph the cost model compares.
                let outcome = cx.propose(
                    g,
                    Proposal {
                        pass: NAME,
                        rule: RULE,
                        node: &name,
                        adds_capacity: true,
                        veto: None,
                    },
                    |candidate| {
                        plan.apply(candidate);
                        Ok(change)
                    },
                );
                if outcome != Outcome::Rejected {
                    break;
                }
            }
        })
    }
}

impl PadChannels {
    /// The alignments to pad to, largest first: the pass's own; else the
    /// target's — a multiple of both `align.cin` and `align.cout` (what the
    /// consuming conv reads best and what the producer writes), then
    /// `align.cout` alone. Empty (do nothing) without either.
    pub fn alignments(&self, cx: &PassContext) -> Vec<usize> {
        let mut out = match (self.align, cx.target()) {
            (Some(a), _) => vec![a],
            (None, Some(t)) => {
                let (cin, cout) = (t.align.cin.max(1) as usize, t.align.cout.max(1) as usize);
                vec![lcm(cin, cout), cout]
            }
            (None, None) => vec![],
        };
        out.dedup();
        out.retain(|&a| a > 1);
        out
    }
}

fn lcm(a: usize, b: usize) -> usize {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    a / gcd(a, b) * b
}

/// Output channels of a G = 1 conv with a constant 2-D-or-more weight.
fn dense_conv_out_channels(g: &Graph, id: NodeId) -> Option<usize> {
    let Op::Conv(conv) = g.node(id).op() else {
        return None;
    };
    if conv.group.max(1) != 1 {
        return None;
    }
    let w = g.constant(g.node(id).input(1)?)?;
    (w.dims().len() >= 3).then_some(w.dims()[0] as usize)
}

/// One constant input to rewrite (through [`set_constant_input`]).
#[derive(Clone, Debug)]
struct ConstEdit {
    node: NodeId,
    slot: usize,
    name_hint: String,
    dtype: DType,
    dims: Vec<i64>,
    data: Vec<f64>,
}

/// Everything a padding region changes, computed before anything is
/// touched: applying it cannot fail.
#[derive(Clone, Debug)]
pub struct PaddingPlan {
    /// Channel count before (C) and after (C').
    pub channels: usize,
    pub padded: usize,
    /// Tensors whose channel axis grows from C to C'.
    pub tensors: Vec<ValueId>,
    /// G = 1 convs that get zero filters (the region's producers).
    pub producers: Vec<NodeId>,
    /// Nodes the padding passes through (BN, activations, pools, depthwise
    /// convs, element-wise binaries, Flatten).
    pub through: Vec<NodeId>,
    /// Convs, Gemms and MatMuls that get zero weights for the new inputs.
    pub absorbers: Vec<NodeId>,
    edits: Vec<ConstEdit>,
    ops: Vec<(NodeId, Op)>,
    types: Vec<(ValueId, TensorType)>,
}

impl PaddingPlan {
    /// Rewrites the graph. Every precondition was checked by
    /// [`pad_region`].
    pub fn apply(&self, g: &mut Graph) {
        for e in &self.edits {
            set_constant_input(g, e.node, e.slot, &e.name_hint, e.dtype, &e.dims, &e.data);
        }
        for (node, op) in &self.ops {
            g.set_op(*node, op.clone());
        }
        for (v, ty) in &self.types {
            g.redeclare_type(*v, ty.clone());
        }
    }

    /// The change record of this plan.
    pub fn change(&self, g: &Graph) -> Change {
        let names = |ids: &[NodeId]| -> Vec<String> {
            ids.iter().map(|&n| g.node(n).name().to_string()).collect()
        };
        let producers = names(&self.producers);
        let matched: Vec<&str> = producers.iter().map(String::as_str).collect();
        let through = if self.through.is_empty() {
            "nothing".to_string()
        } else {
            self.through
                .iter()
                .map(|&n| match g.node(n).op() {
                    Op::Conv(_) => "depthwise Conv".to_string(),
                    _ => g.node(n).op_type().to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        Change::new(
            NAME,
            RULE,
            &matched,
            format!(
                "padded {} → {} channels with zeros: through {through}; absorbed by {}",
                self.channels,
                self.padded,
                names(&self.absorbers)
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    }
}

/// What a conv in the region has padded.
#[derive(Clone, Copy, Debug, Default)]
struct ConvRole {
    out: bool,
    input: bool,
}

struct Planner<'g> {
    g: &'g Graph,
    c: usize,
    cp: usize,
    in_region: HashSet<ValueId>,
    queue: VecDeque<ValueId>,
    tensors: Vec<ValueId>,
    convs: HashMap<NodeId, ConvRole>,
    conv_order: Vec<NodeId>,
    through: Vec<NodeId>,
    through_set: HashSet<NodeId>,
    /// Flatten → Gemm/MatMul heads: flatten node, its readers, H·W.
    heads: Vec<(NodeId, Vec<NodeId>, usize)>,
}

/// Plans padding the output channels of the G = 1 conv `producer` to a
/// multiple of `align`, with everything that must be padded with it. The
/// error says which precondition failed; the graph is never touched.
pub fn pad_region(g: &Graph, producer: NodeId, align: usize) -> Result<PaddingPlan, String> {
    if align == 0 {
        return Err("alignment 0".into());
    }
    let c = dense_conv_out_channels(g, producer)
        .ok_or("not a G = 1 Conv with a constant weight of rank ≥ 3")?;
    let cp = c.next_multiple_of(align);
    if cp == c {
        return Err(format!("{c} channels are already a multiple of {align}"));
    }
    let mut p = Planner {
        g,
        c,
        cp,
        in_region: HashSet::new(),
        queue: VecDeque::new(),
        tensors: Vec::new(),
        convs: HashMap::new(),
        conv_order: Vec::new(),
        through: Vec::new(),
        through_set: HashSet::new(),
        heads: Vec::new(),
    };
    let out = g.node(producer).output(0).ok_or("the conv has no output")?;
    p.add(out);
    while let Some(t) = p.queue.pop_front() {
        p.visit_tensor(t)?;
    }
    p.finish()
}

fn describe(g: &Graph, n: NodeId) -> String {
    format!("'{}' ({})", g.node(n).name(), g.node(n).op_type())
}

/// Element-wise unary ops the IR keeps opaque that map finite values to
/// finite values.
const OPAQUE_UNARY: &[&str] = &[
    "Tanh",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Celu",
    "Softplus",
    "Softsign",
    "Mish",
    "Gelu",
    "Abs",
    "Neg",
    "Erf",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Output = f(input 0) per element or per channel; other inputs are
    /// scalars or absent.
    Unary,
    BatchNorm,
    Depthwise,
    /// Add, Sub, Mul, Div, Sum.
    Binary,
}

impl Planner<'_> {
    fn add(&mut self, v: ValueId) {
        if self.in_region.insert(v) {
            self.tensors.push(v);
            self.queue.push_back(v);
        }
    }

    fn name(&self, v: ValueId) -> String {
        format!("'{}'", self.g.value(v).name())
    }

    /// The channel count on axis 1 and the rank of `v`, if known.
    fn channels_of(&self, v: ValueId) -> Option<(usize, usize)> {
        let shape = self.g.ty(v)?.shape.as_ref()?;
        let c = shape.get(1)?.known()?;
        Some((c as usize, shape.len()))
    }

    fn visit_tensor(&mut self, t: ValueId) -> Result<(), String> {
        let g = self.g;
        if g.is_graph_output(t) {
            return Err(format!(
                "{} is a graph output (graph outputs keep their shapes)",
                self.name(t)
            ));
        }
        match self.channels_of(t) {
            Some((c, rank)) if c == self.c && rank >= 3 => {}
            Some((c, rank)) => {
                return Err(format!(
                    "{} has {c} channels at rank {rank}, not {} at rank ≥ 3",
                    self.name(t),
                    self.c
                ))
            }
            None => return Err(format!("{} has an unknown channel count", self.name(t))),
        }
        let Some(producer) = g.producer(t) else {
            return Err(format!(
                "{} is a graph input or a constant, which cannot be padded",
                self.name(t)
            ));
        };
        self.visit_producer(producer)?;
        let uses: Vec<(NodeId, usize)> = g
            .value(t)
            .uses()
            .iter()
            .filter_map(|u| match *u {
                npuopt_ir::value::Use::Input { node, slot } => Some((node, slot)),
                npuopt_ir::value::Use::Capture { .. } => None,
            })
            .collect();
        if uses.len() != g.value(t).uses().len() {
            return Err(format!("{} is read by a subgraph", self.name(t)));
        }
        for (node, slot) in uses {
            self.visit_consumer(node, slot, t)?;
        }
        Ok(())
    }

    fn kind(&self, n: NodeId) -> Option<Kind> {
        let node = self.g.node(n);
        Some(match node.op() {
            Op::Relu
            | Op::Sigmoid
            | Op::HardSwish
            | Op::HardSigmoid { .. }
            | Op::Clip(_)
            | Op::Identity
            | Op::Dropout(_)
            | Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalAveragePool => Kind::Unary,
            Op::BatchNormalization(_) => Kind::BatchNorm,
            Op::Conv(conv) if self.is_depthwise(n, conv) => Kind::Depthwise,
            Op::Add(b) | Op::Sub(b) | Op::Mul(b) | Op::Div(b)
                if b.is_numpy_broadcast(self.g.opset()) =>
            {
                Kind::Binary
            }
            Op::Sum => Kind::Binary,
            Op::Other
                if (node.domain().is_empty() || node.domain() == "ai.onnx")
                    && OPAQUE_UNARY.contains(&node.op_type())
                    && node.inputs().len() == 1
                    && node.outputs().len() == 1 =>
            {
                Kind::Unary
            }
            _ => return None,
        })
    }

    /// A conv with one group per channel of the region and one filter per
    /// group (multiplier 1).
    fn is_depthwise(&self, n: NodeId, conv: &Conv) -> bool {
        let Some(w) = self.g.node(n).input(1).and_then(|w| self.g.constant(w)) else {
            return false;
        };
        conv.group == self.c as i64
            && w.dims().len() >= 3
            && w.dims()[0] as usize == self.c
            && w.dims()[1] == 1
    }

    fn visit_producer(&mut self, p: NodeId) -> Result<(), String> {
        let g = self.g;
        if let Op::Conv(conv) = g.node(p).op() {
            if conv.group.max(1) == 1 {
                return self.mark_conv(p, true);
            }
        }
        match self.kind(p) {
            Some(k) => self.visit_through(p, k),
            None => Err(format!(
                "{} produces a tensor of the region and cannot be padded",
                describe(g, p)
            )),
        }
    }

    fn visit_consumer(&mut self, n: NodeId, slot: usize, t: ValueId) -> Result<(), String> {
        let g = self.g;
        match g.node(n).op() {
            Op::Conv(conv) if slot == 0 && conv.group.max(1) == 1 => self.mark_conv(n, false),
            Op::Conv(conv) if slot == 0 && !self.is_depthwise(n, conv) => Err(format!(
                "{} is a grouped conv (group {}) reading {}: its groups would shift",
                describe(g, n),
                conv.group,
                self.name(t)
            )),
            Op::Flatten { axis } if slot == 0 => self.visit_flatten(n, *axis),
            _ => match self.kind(n) {
                Some(Kind::Binary) if matches!(g.node(n).op(), Op::Div(_)) && slot != 0 => {
                    Err(format!("{} divides by {}", describe(g, n), self.name(t)))
                }
                Some(k) if k == Kind::Binary || slot == 0 => self.visit_through(n, k),
                _ => Err(format!(
                    "{} reads {} and can neither pass nor absorb the padding",
                    describe(g, n),
                    self.name(t)
                )),
            },
        }
    }

    fn mark_conv(&mut self, n: NodeId, out: bool) -> Result<(), String> {
        let g = self.g;
        let w = g
            .node(n)
            .input(1)
            .and_then(|w| g.constant(w))
            .ok_or_else(|| format!("{}: its weight is not a constant", describe(g, n)))?;
        if !w.dtype().is_float() || w.dims().len() < 3 {
            return Err(format!(
                "{}: its weight is not a float tensor of rank ≥ 3",
                describe(g, n)
            ));
        }
        let dim = if out { 0 } else { 1 };
        if w.dims()[dim] as usize != self.c {
            return Err(format!(
                "{}: its weight has {} {} channels, not {}",
                describe(g, n),
                w.dims()[dim],
                if out { "output" } else { "input" },
                self.c
            ));
        }
        if out {
            // Its bias, when present, must be a constant too.
            if let Some(b) = g.node(n).input(2) {
                if g.constant(b).is_none_or(|t| !t.dtype().is_float()) {
                    return Err(format!(
                        "{}: its bias is not a float constant",
                        describe(g, n)
                    ));
                }
            }
            if let Some(o) = g.node(n).output(0) {
                self.add(o);
            }
        }
        if !self.convs.contains_key(&n) {
            self.conv_order.push(n);
        }
        let role = self.convs.entry(n).or_default();
        if out {
            role.out = true;
        } else {
            role.input = true;
        }
        Ok(())
    }

    fn visit_through(&mut self, n: NodeId, kind: Kind) -> Result<(), String> {
        if !self.through_set.insert(n) {
            return Ok(());
        }
        self.through.push(n);
        let g = self.g;
        let node = g.node(n);
        // Only the first output is padded; any other output must be unread.
        for o in node.outputs().iter().skip(1).flatten() {
            if !g.value(*o).uses().is_empty() || g.is_graph_output(*o) {
                return Err(format!(
                    "{}: its output '{}' is read",
                    describe(g, n),
                    g.value(*o).name()
                ));
            }
        }
        let out = node
            .output(0)
            .ok_or_else(|| format!("{} has no output", describe(g, n)))?;
        match kind {
            Kind::Unary => {
                let x = node
                    .input(0)
                    .ok_or_else(|| format!("{} has no input", describe(g, n)))?;
                self.add(x);
            }
            Kind::BatchNorm => {
                let Op::BatchNormalization(bn) = node.op() else {
                    unreachable!()
                };
                if let Some(why) = bn.why_not_inference(g.opset()) {
                    return Err(format!("{}: {why}", describe(g, n)));
                }
                for slot in 1..5 {
                    self.per_channel_param(n, slot)?;
                }
                self.add(node.input(0).ok_or("a BN without input")?);
            }
            Kind::Depthwise => {
                let w = g
                    .constant(node.input(1).expect("checked"))
                    .expect("checked");
                if !w.dtype().is_float() {
                    return Err(format!("{}: its weight is not float", describe(g, n)));
                }
                if let Some(b) = node.input(2) {
                    if g.constant(b).is_none_or(|t| !t.dtype().is_float()) {
                        return Err(format!(
                            "{}: its bias is not a float constant",
                            describe(g, n)
                        ));
                    }
                }
                self.add(node.input(0).ok_or("a conv without input")?);
            }
            Kind::Binary => {
                let (_, rank) = self.channels_of(out).ok_or_else(|| {
                    format!("{}: its output has an unknown shape", describe(g, n))
                })?;
                let is_div = matches!(node.op(), Op::Div(_));
                for (slot, v) in node.inputs().iter().enumerate() {
                    let Some(v) = *v else { continue };
                    if g.constant(v).is_some() {
                        self.per_channel_operand(n, slot, rank)?;
                    } else if is_div && slot == 1 {
                        return Err(format!("{} divides by a computed tensor", describe(g, n)));
                    } else {
                        match self.channels_of(v) {
                            Some((c, r)) if c == self.c && r == rank => self.add(v),
                            _ => {
                                return Err(format!(
                                    "{}: operand {} is not padded the same way (it is not a {}-channel tensor of rank {rank})",
                                    describe(g, n),
                                    self.name(v),
                                    self.c
                                ))
                            }
                        }
                    }
                }
            }
        }
        self.add(out);
        Ok(())
    }

    /// A BN parameter: a float constant with C values.
    fn per_channel_param(&self, n: NodeId, slot: usize) -> Result<(), String> {
        let g = self.g;
        let t = g
            .node(n)
            .input(slot)
            .and_then(|v| g.constant(v))
            .ok_or_else(|| format!("{}: parameter {slot} is not a constant", describe(g, n)))?;
        if !t.dtype().is_float() || t.numel() != Some(self.c as u64) {
            return Err(format!(
                "{}: parameter {slot} is not {} float values",
                describe(g, n),
                self.c
            ));
        }
        Ok(())
    }

    /// A constant operand of a binary: a scalar (kept) or a per-channel
    /// constant (padded).
    fn per_channel_operand(&self, n: NodeId, slot: usize, rank: usize) -> Result<(), String> {
        let g = self.g;
        let v = g.node(n).input(slot).expect("present");
        let t = g.constant(v).expect("a constant");
        if t.dims().len() > rank {
            return Err(format!(
                "{}: a constant operand of rank {} broadcasts the output",
                describe(g, n),
                t.dims().len()
            ));
        }
        if t.numel() == Some(1) {
            return Ok(());
        }
        if !t.dtype().is_float() || channel_pos(t.dims(), rank, self.c).is_none() {
            return Err(format!(
                "{}: constant operand '{}' {:?} is not per channel",
                describe(g, n),
                g.value(v).name(),
                t.dims()
            ));
        }
        Ok(())
    }

    fn visit_flatten(&mut self, n: NodeId, axis: i64) -> Result<(), String> {
        let g = self.g;
        let node = g.node(n);
        let x = node.input(0).expect("slot 0");
        let (_, rank) = self.channels_of(x).expect("checked by visit_tensor");
        let axis = if axis < 0 { axis + rank as i64 } else { axis };
        if axis != 1 {
            return Err(format!(
                "{} flattens from axis {axis}, not 1",
                describe(g, n)
            ));
        }
        let out = node.output(0).ok_or("a Flatten without output")?;
        if g.is_graph_output(out) {
            return Err(format!("{}: its output is a graph output", describe(g, n)));
        }
        let mut readers = Vec::new();
        let mut hw = None;
        for u in g.value(out).uses() {
            let r = u.node();
            let npuopt_ir::value::Use::Input { slot: 0, .. } = *u else {
                return Err(format!(
                    "{} is read by {} other than as its first input",
                    describe(g, n),
                    describe(g, r)
                ));
            };
            let k = match g.node(r).op() {
                Op::Gemm(gemm) if !gemm.trans_a && gemm.broadcast.is_none() => {
                    let b = self.matrix(r)?;
                    if gemm.trans_b {
                        b[1]
                    } else {
                        b[0]
                    }
                }
                Op::MatMul => self.matrix(r)?[0],
                _ => {
                    return Err(format!(
                        "{} is read by {}, which does not absorb padding",
                        describe(g, n),
                        describe(g, r)
                    ))
                }
            };
            if k % self.c != 0 {
                return Err(format!(
                    "{} reads {k} features, not a multiple of {} channels",
                    describe(g, r),
                    self.c
                ));
            }
            if hw.is_some_and(|h| h != k / self.c) {
                return Err(format!("{}: readers disagree on K", describe(g, n)));
            }
            hw = Some(k / self.c);
            if !readers.contains(&r) {
                readers.push(r);
            }
        }
        if let Some(Some(k)) = g
            .ty(out)
            .and_then(|t| t.shape.as_ref())
            .and_then(|s| s.get(1).map(Dim::known))
        {
            if hw.is_some_and(|h| h * self.c != k as usize) {
                return Err(format!("{}: its width disagrees with K", describe(g, n)));
            }
        }
        self.through.push(n);
        self.heads.push((n, readers, hw.unwrap_or(1)));
        Ok(())
    }

    /// Dims of the constant float matrix B of a Gemm / MatMul.
    fn matrix(&self, r: NodeId) -> Result<[usize; 2], String> {
        let g = self.g;
        let t = g
            .node(r)
            .input(1)
            .and_then(|b| g.constant(b))
            .ok_or_else(|| format!("{}: its B is not a constant", describe(g, r)))?;
        match t.dims() {
            [k, n] if t.dtype().is_float() => Ok([*k as usize, *n as usize]),
            _ => Err(format!("{}: its B is not a float matrix", describe(g, r))),
        }
    }

    /// Computes every edit of the region.
    fn finish(self) -> Result<PaddingPlan, String> {
        let g = self.g;
        let (c, cp) = (self.c, self.cp);
        let mut edits = Vec::new();
        let mut ops = Vec::new();
        let mut producers = Vec::new();
        let mut absorbers = Vec::new();
        let data = |v: ValueId| -> Result<(DType, Vec<i64>, Vec<f64>), String> {
            let t = g.constant(v).ok_or("not a constant")?;
            Ok((t.dtype(), t.dims().to_vec(), t.to_f64()?))
        };
        let base = |n: NodeId| g.node(n).name().to_string();
        for &n in &self.conv_order {
            let role = self.convs[&n];
            if role.out {
                producers.push(n);
            }
            if role.input {
                absorbers.push(n);
            }
            let (dtype, dims, w) = data(g.node(n).input(1).expect("checked"))?;
            let (o, i) = (dims[0] as usize, dims[1] as usize);
            let taps: usize = dims[2..].iter().product::<i64>() as usize;
            let (no, ni) = (
                if role.out { cp } else { o },
                if role.input { cp } else { i },
            );
            let mut nw = vec![0.0; no * ni * taps];
            for oo in 0..o {
                for ii in 0..i {
                    let src = (oo * i + ii) * taps;
                    let dst = (oo * ni + ii) * taps;
                    nw[dst..dst + taps].copy_from_slice(&w[src..src + taps]);
                }
            }
            let mut nd = dims.clone();
            nd[0] = no as i64;
            nd[1] = ni as i64;
            edits.push(ConstEdit {
                node: n,
                slot: 1,
                name_hint: format!("{}.weight_padded", base(n)),
                dtype,
                dims: nd,
                data: nw,
            });
            if role.out {
                if let Some(b) = g.node(n).input(2) {
                    edits.push(pad_vector(n, 2, &base(n), "bias", data(b)?, cp, 0.0)?);
                }
            }
        }
        for &n in &self.through {
            let node = g.node(n);
            match node.op() {
                Op::BatchNormalization(_) => {
                    for (slot, what, fill) in [
                        (1, "scale", 0.0),
                        (2, "bias", 0.0),
                        (3, "mean", 0.0),
                        (4, "var", 1.0),
                    ] {
                        let v = node.input(slot).expect("checked");
                        edits.push(pad_vector(n, slot, &base(n), what, data(v)?, cp, fill)?);
                    }
                }
                Op::Conv(conv) => {
                    // Depthwise: one filter per channel.
                    let (dtype, dims, w) = data(node.input(1).expect("checked"))?;
                    let per: usize = dims[1..].iter().product::<i64>() as usize;
                    let mut nw = w;
                    nw.resize(cp * per, 0.0);
                    let mut nd = dims.clone();
                    nd[0] = cp as i64;
                    edits.push(ConstEdit {
                        node: n,
                        slot: 1,
                        name_hint: format!("{}.weight_padded", base(n)),
                        dtype,
                        dims: nd,
                        data: nw,
                    });
                    if let Some(b) = node.input(2) {
                        edits.push(pad_vector(n, 2, &base(n), "bias", data(b)?, cp, 0.0)?);
                    }
                    ops.push((
                        n,
                        Op::Conv(Conv {
                            window: conv.window.clone(),
                            group: cp as i64,
                        }),
                    ));
                }
                Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) | Op::Sum => {
                    let fill = if matches!(node.op(), Op::Div(_)) {
                        1.0
                    } else {
                        0.0
                    };
                    let out = node.output(0).expect("checked");
                    let rank = self.channels_of(out).expect("checked").1;
                    for (slot, v) in node.inputs().iter().enumerate() {
                        let Some(v) = *v else { continue };
                        if g.constant(v).is_none() {
                            continue;
                        }
                        let (dtype, dims, vals) = data(v)?;
                        if vals.len() == 1 {
                            continue;
                        }
                        let pos = channel_pos(&dims, rank, c).expect("checked");
                        let mut nd = dims.clone();
                        nd[pos] = cp as i64;
                        let mut nv = vals;
                        nv.resize(cp, fill);
                        edits.push(ConstEdit {
                            node: n,
                            slot,
                            name_hint: format!("{}.operand{slot}_padded", base(n)),
                            dtype,
                            dims: nd,
                            data: nv,
                        });
                    }
                }
                _ => {}
            }
        }
        let mut types: Vec<(ValueId, TensorType)> = self
            .tensors
            .iter()
            .map(|&v| {
                let mut ty = g.ty(v).expect("checked").clone();
                if let Some(s) = ty.shape.as_mut() {
                    s[1] = Dim::Known(cp as i64);
                }
                (v, ty)
            })
            .collect();
        for (flatten, readers, hw) in &self.heads {
            let out = g.node(*flatten).output(0).expect("checked");
            let (k, kp) = (c * hw, cp * hw);
            if let Some(mut ty) = g.ty(out).cloned() {
                if let Some(s) = ty.shape.as_mut().filter(|s| s.len() == 2) {
                    s[1] = Dim::Known(kp as i64);
                    types.push((out, ty));
                }
            }
            for &r in readers {
                absorbers.push(r);
                let trans_b = matches!(g.node(r).op(), Op::Gemm(gm) if gm.trans_b);
                let (dtype, dims, b) = data(g.node(r).input(1).expect("checked"))?;
                let (nd, nb) = if trans_b {
                    // [N, K] → [N, K']: zero columns.
                    let n_out = dims[0] as usize;
                    let mut nb = vec![0.0; n_out * kp];
                    for row in 0..n_out {
                        nb[row * kp..row * kp + k].copy_from_slice(&b[row * k..(row + 1) * k]);
                    }
                    (vec![dims[0], kp as i64], nb)
                } else {
                    // [K, N] → [K', N]: zero rows.
                    let mut nb = b;
                    nb.resize(kp * dims[1] as usize, 0.0);
                    (vec![kp as i64, dims[1]], nb)
                };
                edits.push(ConstEdit {
                    node: r,
                    slot: 1,
                    name_hint: format!("{}.weight_padded", base(r)),
                    dtype,
                    dims: nd,
                    data: nb,
                });
            }
        }
        if absorbers.is_empty() {
            return Err("nothing absorbs the padding".into());
        }
        Ok(PaddingPlan {
            channels: c,
            padded: cp,
            tensors: self.tensors,
            producers,
            through: self.through,
            absorbers,
            edits,
            ops,
            types,
        })
    }
}

/// A `[C]` vector padded to `[C']` with `fill`.
fn pad_vector(
    n: NodeId,
    slot: usize,
    base: &str,
    what: &str,
    (dtype, dims, mut vals): (DType, Vec<i64>, Vec<f64>),
    cp: usize,
    fill: f64,
) -> Result<ConstEdit, String> {
    if dims.len() != 1 {
        return Err(format!("'{base}': its {what} is not a vector"));
    }
    vals.resize(cp, fill);
    Ok(ConstEdit {
        node: n,
        slot,
        name_hint: format!("{base}.{what}_padded"),
        dtype,
        dims: vec![cp as i64],
        data: vals,
    })
}

/// Position of the channel dim in a constant that broadcasts per channel
/// against a rank-`rank` tensor with `c` channels on axis 1 (right-aligned
/// broadcasting; every other dim 1).
fn channel_pos(dims: &[i64], rank: usize, c: usize) -> Option<usize> {
    let pos = 1 + dims.len() as isize - rank as isize;
    if pos < 0 {
        return None;
    }
    let pos = pos as usize;
    dims.iter()
        .enumerate()
        .all(|(i, &d)| if i == pos { d as usize == c } else { d == 1 })
        .then_some(pos)
}
