//! `equalize-ranges`: cross-layer equalization (CLE) — rescales the
//! channels between two linear layers so that per-tensor int8 weights lose
//! less (REWRITES.md §10; Nagel et al. 2019, "Data-Free Quantization
//! through Weight Equalization and Bias Correction").
//!
//! Before:  y = L2(f(L1(x)))          (L = Conv, Gemm or MatMul[+Add])
//! After:   the same ops; output channel i of L1 (weights and bias) is
//!          divided by sᵢ, the weights of L2 that read channel i are
//!          multiplied by sᵢ.
//!
//! Formula, per intermediate channel i:
//!   `r1ᵢ = max|W1[i, …]|` (L1's output channel i),
//!   `r2ᵢ = max|W2[…, i, …]|` (the weights of L2 reading channel i),
//!   `sᵢ = √(r1ᵢ / r2ᵢ)`, after which both ranges would be `√(r1ᵢ·r2ᵢ)`.
//! What is applied is `2^round(log₂ sᵢ)`, and only when `sᵢ` is more than
//! `2^(0.5 + ALREADY_EQUAL_LOG2)` away from 1: multiplying a float by a
//! power of two is exact (short of overflow and subnormals), so the
//! rewritten model computes the same bits as the input. A chain
//! L1 → L2 → L3 … is swept pair by pair, each step balancing a channel
//! against the layers as they now are, until a sweep moves nothing (at
//! most [`MAX_SWEEPS`] sweeps); then every pair's two ranges of a channel
//! are within a factor `2^(1 + 2·ALREADY_EQUAL_LOG2)` of each other, and a
//! second run finds nothing to do. A channel with a zero range on either
//! side keeps sᵢ = 1.
//!
//! Exact in real arithmetic, because `f` is positive-homogeneous per channel:
//! `f(z/s) = f(z)/s` for every s > 0, so
//! `W2·s·f((W1x + b1)/s) = W2·f(W1x + b1)`. The scales are always > 0.
//!
//! Preconditions (else the pair is not equalized):
//! * L1 and L2 are Conv (any group count: dense, grouped, depthwise — the
//!   depthwise-separable triple 1×1 → dw → 1×1 is a chain of two pairs),
//!   Gemm (transA = 0, alpha = 1, beta = 1 when it has C; C per column) or
//!   MatMul with a 2-D constant weight (its bias is the `[N]` Add right
//!   after it); float constant weights that no other node reads;
//! * between them only ops that act per channel and are positive-
//!   homogeneous: Relu, LeakyRelu, PRelu (any slope: a positive factor does
//!   not change a sign), MaxPool, AveragePool, GlobalAveragePool,
//!   GlobalMaxPool, Identity, Dropout; and for a Conv feeding a Gemm or
//!   MatMul, a `Flatten(axis = 1)` of a known `[N, C, H, W]` (channel i is
//!   L2's inputs `i·H·W … (i+1)·H·W − 1`);
//! * every value on the way is read by exactly the next op (not twice, not
//!   a graph output): otherwise another reader would see the scaled
//!   channels;
//! * L1's output channels are L2's input channels (and the channel axis
//!   matches: axis 1 for convs, the last axis for Gemm/MatMul).
//!
//! Not positive-homogeneous, so never crossed — a skip says so when one
//! sits between two linear layers: Clip / Relu6 (its bound would have to
//! be scaled per channel: a different op), HardSwish, HardSigmoid, Sigmoid,
//! Tanh, Gelu, Erf, Elu, Selu, Softplus, Mish, Sin….
//!
//! Bias absorption (Nagel §4.1, moving part of a bias into the next layer)
//! is *not* done: it is exact only where the activation is known never to
//! clip the moved amount, which needs the data. Nothing here needs data.
//!
//! The change is function-preserving in float; it does not change MACs,
//! shapes or latency. It pays when the model is then quantized with
//! per-tensor conv weights, and can cost accuracy with per-channel ones
//! (measured: `Quantization::equalization_helps`), so it joins a target's
//! pipeline only when the target's `[quantization]` says conv weights are
//! per tensor; `--passes +equalize-ranges` runs it anywhere.

use std::collections::HashMap;

use npuopt_ir::{Graph, NodeId, Op, ValueId};

use crate::change::Change;
use crate::linear_layer::{Layout, LinearLayer};
use crate::pass::{Pass, PassContext, PassError};
use crate::quant_stats;

pub struct EqualizeRanges;

const NAME: &str = "equalize-ranges";
const RULE: &str = "equalize-chain";

/// A sweep that moves no channel by more than this (|ln sᵢ|) has settled:
/// every step moves by a power of two, so this means it moved nothing.
pub const SETTLED: f64 = 1e-4;
/// A channel whose ideal scale lies within `2^(±(0.5 + this))` is balanced
/// (its power of two would be 1, or a tie): the margin keeps a step from
/// undoing the last one on a tie.
pub const ALREADY_EQUAL_LOG2: f64 = 1e-2;
/// Sweeps of a chain before giving up on settling it further.
pub const MAX_SWEEPS: usize = 500;

impl Pass for EqualizeRanges {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "cross-layer equalization: rescale the channels between two linear layers joined by Relu/LeakyRelu/PRelu/pools so per-tensor int8 weights lose less (exact in float)"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let g = &mut model.graph;
        let order = g.topo_order()?;
        let mut layers: Vec<LinearLayer> = Vec::new();
        let mut index: HashMap<NodeId, usize> = HashMap::new();
        let mut pairs: Vec<Pair> = Vec::new();
        for id in order {
            let Some(pair) = find_pair(g, id, cx) else {
                continue;
            };
            let (l1, l2) = (pair.0, pair.1);
            let mut slot = |layer: LinearLayer| -> usize {
                *index.entry(layer.node).or_insert_with(|| {
                    layers.push(layer);
                    layers.len() - 1
                })
            };
            let a = slot(l1);
            let b = slot(l2);
            pairs.push(Pair {
                first: a,
                second: b,
                spread: pair.2,
            });
        }
        for chain in chains(&pairs) {
            if !cx.may_rewrite() {
                break;
            }
            equalize_chain(g, &mut layers, &pairs, &chain, cx);
        }
        Ok(())
    }
}

/// Two layers joined through positive-homogeneous per-channel ops.
#[derive(Clone, Copy, Debug)]
struct Pair {
    first: usize,
    second: usize,
    /// How many of the second layer's inputs each intermediate channel
    /// feeds (`H·W` through a Flatten, else 1).
    spread: usize,
}

/// Ops that act per channel and commute with a positive per-channel scale.
fn is_positive_homogeneous(g: &Graph, id: NodeId) -> bool {
    let n = g.node(id);
    match n.op() {
        Op::Relu | Op::MaxPool(_) | Op::AveragePool(_) | Op::GlobalAveragePool | Op::Identity => {
            true
        }
        // Inference Dropout is the identity; its mask output must be unread.
        Op::Dropout(_) => n.outputs()[1..]
            .iter()
            .flatten()
            .all(|&o| g.value(o).uses().is_empty() && !g.is_graph_output(o)),
        Op::Other if n.domain().is_empty() || n.domain() == "ai.onnx" => {
            matches!(n.op_type(), "LeakyRelu" | "PRelu" | "GlobalMaxPool")
        }
        _ => false,
    }
}

/// Element-wise ops that would sit between two layers but do not commute
/// with a per-channel scale: named in the skip.
fn why_not_homogeneous(g: &Graph, id: NodeId) -> Option<String> {
    let n = g.node(id);
    let what = match n.op() {
        Op::Clip(_) => "Clip (e.g. Relu6): its bound would have to be scaled per channel",
        Op::HardSwish => "HardSwish is not positive-homogeneous",
        Op::HardSigmoid { .. } => "HardSigmoid is not positive-homogeneous",
        Op::Sigmoid => "Sigmoid is not positive-homogeneous",
        Op::Other => match n.op_type() {
            "Tanh" | "Gelu" | "Erf" | "Elu" | "Selu" | "Celu" | "Softplus" | "Mish" | "Sin"
            | "Cos" | "Exp" => "it is not positive-homogeneous",
            _ => return None,
        },
        _ => return None,
    };
    Some(format!(
        "'{}' ({}) lies between them: {what}",
        n.name(),
        n.op_type()
    ))
}

/// The single node reading `v` at input slot 0, when nothing else reads it.
fn only_reader(g: &Graph, v: ValueId) -> Option<NodeId> {
    let reader = crate::rewrite::single_consumer(g, v)?;
    (g.node(reader).input(0) == Some(v)
        && g.node(reader).inputs()[1..].iter().all(|&i| i != Some(v)))
    .then_some(reader)
}

/// The pair starting at `id`, if `id` is a layer and a layer follows it
/// through positive-homogeneous ops. Records a skip where a rule matched
/// but must not fire.
fn find_pair(
    g: &Graph,
    id: NodeId,
    cx: &mut PassContext,
) -> Option<(LinearLayer, LinearLayer, usize)> {
    if !matches!(g.node(id).op(), Op::Conv(_) | Op::Gemm(_) | Op::MatMul) {
        return None;
    }
    let first = LinearLayer::read(g, id).ok()?;
    let first_name = g.node(id).name().to_string();
    let mut v = g.node(first.output_node).output(0)?;
    let mut spread = 1usize;
    let mut saw_flatten = false;
    let second = loop {
        let reader = only_reader(g, v)?;
        if matches!(g.node(reader).op(), Op::Conv(_) | Op::Gemm(_) | Op::MatMul) {
            break reader;
        }
        if let Op::Flatten { axis: 1 } = g.node(reader).op() {
            let dims = g.ty(v).and_then(|t| t.concrete())?;
            if !matches!(first.layout, Layout::Conv { .. }) || dims.len() < 3 || saw_flatten {
                return None;
            }
            spread = dims[2..].iter().product::<i64>().max(0) as usize;
            saw_flatten = true;
        } else if !is_positive_homogeneous(g, reader) {
            // Name the blocker only where it really separates two layers.
            if let Some(why) = why_not_homogeneous(g, reader) {
                let next = g.node(reader).output(0).and_then(|o| only_reader(g, o));
                if next.is_some_and(|n| LinearLayer::read(g, n).is_ok()) {
                    let second = g.node(next.expect("checked")).name().to_string();
                    cx.skip(
                        NAME,
                        RULE,
                        &first_name,
                        format!("'{first_name}' → '{second}' not equalized: {why}"),
                    );
                }
            }
            return None;
        }
        v = g.node(reader).output(0)?;
    };
    let second_name = g.node(second).name().to_string();
    let skip = |cx: &mut PassContext, why: String| {
        cx.skip(
            NAME,
            RULE,
            &first_name,
            format!("'{first_name}' → '{second_name}' not equalized: {why}"),
        );
    };
    let second_layer = match LinearLayer::read(g, second) {
        Ok(l) => l,
        Err(why) => {
            skip(cx, format!("'{second_name}': {why}"));
            return None;
        }
    };
    // Convs carry channels on axis 1, Gemm/MatMul on the last axis: they
    // meet only through a Flatten of a conv's output.
    let first_is_conv = matches!(first.layout, Layout::Conv { .. });
    let second_is_conv = matches!(second_layer.layout, Layout::Conv { .. });
    let flattened = spread != 1 || first_is_conv != second_is_conv;
    if flattened && !(first_is_conv && !second_is_conv && saw_flatten) {
        return None;
    }
    if second_layer.in_channels != first.out_channels * spread {
        skip(
            cx,
            format!(
                "'{first_name}' has {} output channels but '{second_name}' reads {} (×{spread})",
                first.out_channels, second_layer.in_channels
            ),
        );
        return None;
    }
    if !first.owns_parameters(g) || !second_layer.owns_parameters(g) {
        skip(cx, "a weight or bias is shared with another node".into());
        return None;
    }
    Some((first, second_layer, spread))
}

/// Groups pairs into chains (layers linked through shared layers), each a
/// list of pair indices in discovery (topological) order.
fn chains(pairs: &[Pair]) -> Vec<Vec<usize>> {
    // A layer is `second` of at most one pair and `first` of at most one
    // (its output has one reader), so chains are simple paths.
    let by_first: HashMap<usize, usize> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| (p.first, i))
        .collect();
    let seconds: std::collections::HashSet<usize> = pairs.iter().map(|p| p.second).collect();
    let mut out = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        if seconds.contains(&p.first) {
            continue; // not the head of its chain
        }
        let mut chain = vec![i];
        let mut cur = p.second;
        while let Some(&next) = by_first.get(&cur) {
            chain.push(next);
            cur = pairs[next].second;
        }
        out.push(chain);
    }
    out
}

/// Sweeps one chain to its fixed point; writes its layers back and records
/// the change unless it was already equalized.
fn equalize_chain(
    g: &mut Graph,
    layers: &mut [LinearLayer],
    pairs: &[Pair],
    chain: &[usize],
    cx: &mut PassContext,
) {
    let members: Vec<usize> = std::iter::once(pairs[chain[0]].first)
        .chain(chain.iter().map(|&p| pairs[p].second))
        .collect();
    let before: Vec<LinearLayer> = members.iter().map(|&m| layers[m].clone()).collect();
    let mut total: Vec<Vec<f64>> = chain
        .iter()
        .map(|&p| vec![0.0; layers[pairs[p].first].out_channels])
        .collect();
    let mut sweeps = 0;
    loop {
        sweeps += 1;
        let mut largest = 0.0f64;
        for (k, &p) in chain.iter().enumerate() {
            let moved = equalize_pair(layers, pairs[p], &mut total[k]);
            largest = largest.max(moved);
        }
        if largest < SETTLED || sweeps >= MAX_SWEEPS {
            break;
        }
    }
    if total.iter().flatten().all(|&l| l == 0.0) {
        return; // already equalized: no channel moved
    }
    for &m in &members {
        layers[m].write(g);
    }
    let names: Vec<String> = members
        .iter()
        .map(|&m| g.node(layers[m].node).name().to_string())
        .collect();
    let sqnr = |ls: &[&LinearLayer]| -> f64 {
        ls.iter()
            .filter_map(|l| quant_stats::sqnr_per_tensor(l))
            .fold(f64::INFINITY, f64::min)
    };
    let old_refs: Vec<&LinearLayer> = before.iter().collect();
    let new_refs: Vec<&LinearLayer> = members.iter().map(|&m| &layers[m]).collect();
    let (lo, hi) = total
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &l| {
            (lo.min(l), hi.max(l))
        });
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    cx.record(Change::new(
        NAME,
        RULE,
        &refs,
        format!(
            "equalized {} ({} pair{}, {sweeps} sweep{}): channel scales {:.3}–{:.3}; worst per-tensor int8 weight SQNR {:.1} → {:.1} dB",
            names.join(" → "),
            chain.len(),
            if chain.len() == 1 { "" } else { "s" },
            if sweeps == 1 { "" } else { "s" },
            lo.exp(),
            hi.exp(),
            sqnr(&old_refs),
            sqnr(&new_refs),
        ),
    ));
}

/// One equalization step of a pair; returns the largest |ln sᵢ| applied
/// and adds each ln sᵢ to `total`.
fn equalize_pair(layers: &mut [LinearLayer], pair: Pair, total: &mut [f64]) -> f64 {
    let (a, b) = (pair.first, pair.second);
    let mut largest = 0.0f64;
    for (i, total_i) in total.iter_mut().enumerate() {
        let r1 = layers[a].out_range(i);
        let inputs = i * pair.spread..(i + 1) * pair.spread;
        let r2 = inputs
            .clone()
            .map(|j| layers[b].in_range(j))
            .fold(0.0f64, f64::max);
        let ideal = (r1 / r2).sqrt();
        if !(r1 > 0.0 && r2 > 0.0 && ideal.is_finite() && ideal > 0.0) {
            continue;
        }
        // Applied as the nearest power of two, only when the ideal is
        // more than √2 (and a margin, so that ties do not flip back and
        // forth) away: exact, and the pair ends within a factor 2.
        let log2 = ideal.log2();
        if log2.abs() <= 0.5 + ALREADY_EQUAL_LOG2 {
            continue;
        }
        let s = log2.round().exp2();
        let ln = s.ln();
        layers[a].scale_out(i, 1.0 / s);
        for j in inputs {
            layers[b].scale_in(j, s);
        }
        *total_i += ln;
        largest = largest.max(ln.abs());
    }
    largest
}
