//! Everything that is not a conv: element-wise ops, activations, pools,
//! concat, data movement, and ops the target does not know.

use npuopt_ir::Op;

use super::{round_up, Bound, Cost, Ctx, LayerKind};

/// Activation op types (by ONNX name; several are opaque in the IR).
const ACTIVATIONS: &[&str] = &[
    "Relu",
    "Clip",
    "LeakyRelu",
    "PRelu",
    "Sigmoid",
    "Tanh",
    "HardSwish",
    "HardSigmoid",
    "Elu",
    "Selu",
    "Gelu",
    "Softplus",
    "Mish",
    "Swish",
];

/// Piecewise-linear activations: cost `relu_cpe`, not `lut_cpe`.
const PIECEWISE_LINEAR: &[&str] = &["Relu", "Clip", "LeakyRelu", "PRelu"];

/// Ops that produce no work: views, no-ops at inference.
const FREE: &[&str] = &[
    "Identity",
    "Dropout",
    "Constant",
    "Shape",
    "Squeeze",
    "Unsqueeze",
    "Size",
];

/// Pools, and the reductions exporters write for them (a global average
/// pool is often `ReduceMean` over H, W).
fn is_pool(op: &Op, op_type: &str, standard: bool) -> bool {
    matches!(
        op,
        Op::MaxPool(_) | Op::AveragePool(_) | Op::GlobalAveragePool
    ) || (standard
        && matches!(
            op_type,
            "GlobalMaxPool" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceSum"
        ))
}

/// Ops a conv (or Gemm) can absorb into its output stage.
fn is_conv_like(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv(_) | Op::ConvTranspose(_) | Op::Gemm(_) | Op::MatMul
    )
}

/// `p` is a conv, or a BatchNormalization the target's compiler folds into
/// the conv before it: what follows fuses into that conv either way, so the
/// estimate of an unfolded export is the estimate of its folded form (the
/// vendor compiler folds BN itself; npuopt gets no credit for doing it).
fn is_conv_output(g: &npuopt_ir::Graph, p: npuopt_ir::NodeId) -> bool {
    let n = g.node(p);
    if is_conv_like(n.op()) {
        return true;
    }
    matches!(n.op(), Op::BatchNormalization(_))
        && n.input(0).is_some_and(|v| {
            g.has_single_use(v)
                && !g.is_graph_output(v)
                && g.producer(v).is_some_and(|q| is_conv_like(g.node(q).op()))
        })
}

pub(crate) fn cost(ctx: &Ctx) -> Option<Cost> {
    let n = ctx.node();
    let op_type = n.op_type();
    let standard = n.domain().is_empty() || n.domain() == "ai.onnx";
    if standard && FREE.contains(&op_type) {
        return Some(Cost::free("no work at inference"));
    }
    let out = ctx.elems(n.output(0))?;
    let t = ctx.t;
    if standard && ACTIVATIONS.contains(&op_type) {
        return Some(activation(ctx, op_type, out));
    }
    let c = match n.op() {
        Op::BatchNormalization(_) => {
            if let Some(p) = ctx.fusable_producer(0) {
                if is_conv_like(ctx.g.node(p).op()) {
                    return Some(Cost::free(format!("folded into {}", ctx.g.node(p).name())));
                }
            }
            eltwise(
                ctx,
                out,
                t.eltwise.mul_cpe + t.eltwise.add_cpe,
                "scale and shift",
            )
        }
        Op::Add(_) | Op::Sub(_) | Op::Sum => {
            if t.eltwise.fused_add {
                let fused = (0..n.inputs().len()).find_map(|i| {
                    ctx.fusable_producer(i)
                        .filter(|p| is_conv_output(ctx.g, *p))
                });
                if let Some(p) = fused {
                    return Some(Cost::free(format!("fused into {}", ctx.g.node(p).name())));
                }
            }
            eltwise(ctx, out, t.eltwise.add_cpe, "")
        }
        Op::Mul(_) | Op::Div(_) => eltwise(ctx, out, t.eltwise.mul_cpe, ""),
        Op::Concat { axis } => concat(ctx, *axis, out),
        _ if is_pool(n.op(), op_type, standard) => {
            let input = ctx.elems(n.input(0))?;
            Cost::max_of(
                &[
                    (Bound::Output, out as f64 * t.pool.out_cpe),
                    (Bound::Output, input as f64 * t.pool.in_cpe),
                    (Bound::Memory, ctx.memory_cycles()),
                ],
                0,
                LayerKind::Other,
            )
        }
        Op::Reshape(_) | Op::Flatten { .. } => {
            if t.movement.reshape_cpe > 0.0 {
                movement(ctx, out, t.movement.reshape_cpe)
            } else {
                Cost::free("a view")
            }
        }
        Op::Transpose { .. } => movement(ctx, out, t.movement.transpose_cpe),
        Op::Split(_) | Op::Slice(_) | Op::Pad(_) => {
            let total: u64 = n
                .outputs()
                .iter()
                .flatten()
                .map(|v| ctx.elems(Some(*v)).unwrap_or(0))
                .sum();
            movement(ctx, total, t.movement.copy_cpe)
        }
        Op::Identity | Op::Dropout(_) | Op::Constant(_) => Cost::free("no work at inference"),
        _ => {
            if t.movement.other_supported.iter().any(|s| s == op_type) {
                movement(ctx, out, t.movement.other_cpe)
            } else {
                ctx.fallback(out, format!("{op_type} is not supported"), LayerKind::Other)
            }
        }
    };
    Some(c)
}

fn eltwise(ctx: &Ctx, out: u64, cpe: f64, note: &str) -> Cost {
    let mut c = Cost::max_of(
        &[
            (Bound::Output, out as f64 * cpe),
            (Bound::Memory, ctx.memory_cycles()),
        ],
        0,
        LayerKind::Other,
    );
    c.note = note.to_string();
    c
}

fn movement(ctx: &Ctx, elems: u64, cpe: f64) -> Cost {
    Cost::max_of(
        &[
            (Bound::Output, elems as f64 * cpe),
            (Bound::Memory, ctx.memory_cycles()),
        ],
        0,
        LayerKind::Other,
    )
}

fn activation(ctx: &Ctx, op_type: &str, out: u64) -> Cost {
    let a = &ctx.t.act;
    if !a.supported.iter().any(|s| s == op_type) {
        return ctx.fallback(out, format!("{op_type} is not supported"), LayerKind::Other);
    }
    if a.fused.iter().any(|s| s == op_type) {
        if let Some(p) = ctx.fusable_producer(0) {
            let pn = ctx.g.node(p);
            let fusable = is_conv_like(pn.op())
                || matches!(
                    pn.op(),
                    Op::Add(_) | Op::Mul(_) | Op::Sub(_) | Op::BatchNormalization(_)
                );
            if fusable {
                return Cost::free(format!("fused into {}", pn.name()));
            }
        }
    }
    let cpe = if PIECEWISE_LINEAR.contains(&op_type) {
        a.relu_cpe
    } else {
        a.lut_cpe
    };
    let mut c = eltwise(ctx, out, cpe, "");
    if !PIECEWISE_LINEAR.contains(&op_type) {
        c.note = "lookup table".into();
    }
    c
}

/// A concat is a copy of every input (`elements · copy_cpe`), or free when
/// it joins channels at aligned offsets and the target writes in place.
fn concat(ctx: &Ctx, axis: i64, out: u64) -> Cost {
    let n = ctx.node();
    let rank = ctx.out_shape(0).map_or(0, |s| s.len()) as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    let align = ctx.t.align.concat_offset;
    let mut misaligned = Vec::new();
    let mut offset = 0i64;
    for v in n.inputs().iter().flatten() {
        if offset != round_up(offset, align) {
            misaligned.push(offset);
        }
        offset += ctx
            .shape(Some(*v))
            .and_then(|s| s.get(axis as usize).copied())
            .unwrap_or(0);
    }
    let channel_axis = axis == 1 && rank >= 3;
    if channel_axis && misaligned.is_empty() && ctx.t.concat.in_place_when_aligned {
        return Cost::free("in place: every channel offset is aligned");
    }
    let mut c = Cost::max_of(
        &[
            (Bound::Output, out as f64 * ctx.t.concat.copy_cpe),
            (Bound::Memory, ctx.memory_cycles()),
        ],
        0,
        LayerKind::Concat { misaligned },
    );
    c.note = "copy".into();
    c
}
