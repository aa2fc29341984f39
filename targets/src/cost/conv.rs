//! Convolutions (dense, depthwise, grouped), ConvTranspose, Gemm and MatMul.

use npuopt_ir::op::Window;

use super::{round_up, Bound, Cost, Ctx, LayerKind};
use crate::schema::{FormulaArgs, GroupMode};

/// The geometry the formulas need, whatever op it came from.
#[derive(Clone, Debug)]
pub(crate) struct Geom {
    pub cin: i64,
    pub cout: i64,
    pub group: i64,
    pub kernel: Vec<i64>,
    pub max_stride: i64,
    pub max_dilation: i64,
    /// Output positions the array sweeps: N·Ho·Wo (input positions for a
    /// ConvTranspose, rows for a Gemm).
    pub positions: u64,
    pub out_elems: u64,
}

impl Geom {
    fn kprod(&self) -> i64 {
        self.kernel.iter().product::<i64>().max(1)
    }
}

pub(crate) fn conv(ctx: &Ctx, group: i64, w: &Window) -> Option<Cost> {
    let x = ctx.in_shape(0)?;
    let wt = ctx.in_shape(1)?;
    let y = ctx.out_shape(0)?;
    if x.len() < 3 || wt.len() != x.len() || y.len() != x.len() {
        return None;
    }
    let n_sp = x.len() - 2;
    let g = Geom {
        cin: x[1],
        cout: y[1],
        group: group.max(1),
        kernel: wt[2..].to_vec(),
        max_stride: w.strides(n_sp).into_iter().max().unwrap_or(1),
        max_dilation: w.dilations(n_sp).into_iter().max().unwrap_or(1),
        positions: prod(&[&y[..1], &y[2..]].concat())?,
        out_elems: prod(&y)?,
    };
    Some(classify(ctx, &g))
}

pub(crate) fn conv_transpose(ctx: &Ctx, group: i64, w: &Window) -> Option<Cost> {
    let x = ctx.in_shape(0)?;
    let wt = ctx.in_shape(1)?;
    let y = ctx.out_shape(0).or_else(|| Some(x.clone()))?;
    if x.len() < 3 || wt.len() != x.len() {
        return None;
    }
    let n_sp = x.len() - 2;
    let g = Geom {
        cin: x[1],
        cout: wt[1] * group.max(1),
        group: group.max(1),
        kernel: wt[2..].to_vec(),
        max_stride: 1,
        max_dilation: w.dilations(n_sp).into_iter().max().unwrap_or(1),
        positions: prod(&[&x[..1], &x[2..]].concat())?,
        out_elems: prod(&y)?,
    };
    if g.group > 1 {
        return Some(group_conv(ctx, &g));
    }
    Some(dense(ctx, &g, LayerKind::Other))
}

/// Gemm and MatMul: a 1×1 conv with K input and N output channels over the
/// M rows.
pub(crate) fn matmul(ctx: &Ctx) -> Option<Cost> {
    let y = ctx.out_shape(0)?;
    let n = *y.last()?;
    let out_elems = prod(&y)?;
    if n <= 0 {
        return Some(Cost::free("empty"));
    }
    let k = ctx.macs / out_elems.max(1);
    let g = Geom {
        cin: k as i64,
        cout: n,
        group: 1,
        kernel: vec![1],
        max_stride: 1,
        max_dilation: 1,
        positions: out_elems / n as u64,
        out_elems,
    };
    Some(dense(ctx, &g, LayerKind::Other))
}

fn prod(s: &[i64]) -> Option<u64> {
    s.iter()
        .try_fold(1u64, |a, &d| a.checked_mul(u64::try_from(d).ok()?))
}

fn classify(ctx: &Ctx, g: &Geom) -> Cost {
    let t = ctx.t;
    if let Some(max) = t.conv.max_stride {
        if g.max_stride > max as i64 {
            return ctx.fallback(
                ctx.macs,
                format!("stride {} > {} is not supported", g.max_stride, max),
                LayerKind::Other,
            );
        }
    }
    if g.group == 1 {
        let cin_from_input = ctx
            .node()
            .input(0)
            .is_some_and(|v| ctx.g.value(v).is_graph_input());
        let kind = LayerKind::DenseConv {
            cin: g.cin,
            cout: g.cout,
            cin_from_input,
        };
        return dense(ctx, g, kind);
    }
    let mult = if g.cin > 0 { g.cout / g.cin } else { 0 };
    let depthwise = g.group == g.cin && g.cout % g.cin == 0;
    if depthwise && mult >= 1 && mult <= t.depthwise.max_multiplier as i64 {
        return depthwise_conv(ctx, g);
    }
    group_conv(ctx, g)
}

fn efficiency(ctx: &Ctx, g: &Geom, cout_per_group: i64) -> f64 {
    let c = &ctx.t.conv;
    let args = FormulaArgs {
        cout: cout_per_group,
        k: g.kernel.iter().copied().max().unwrap_or(1),
        d: g.max_dilation,
    };
    let mut eff = c.kernel_eff.of(&g.kernel);
    if g.max_stride >= 2 {
        eff *= c.stride2_eff.eval(args);
    }
    if g.max_dilation >= 2 {
        eff *= c.dilation_eff.eval(args);
    }
    eff.clamp(1e-6, 1.0)
}

/// `max(⌈Cout⌉·⌈Cin⌉·k²·positions / (P·eff), out·out_cpe, memory)`.
pub(crate) fn dense(ctx: &Ctx, g: &Geom, kind: LayerKind) -> Cost {
    let a = &ctx.t.align;
    let cin_g = g.cin / g.group.max(1);
    let cout_g = g.cout / g.group.max(1);
    let executed = (g.group * round_up(cout_g, a.cout) * round_up(cin_g, a.cin) * g.kprod()) as u64
        * g.positions;
    let eff = efficiency(ctx, g, cout_g);
    Cost::max_of(
        &[
            (Bound::Compute, executed as f64 / (ctx.peak() * eff)),
            (
                Bound::Output,
                g.out_elems as f64 * ctx.t.conv.out_cycles_per_elem,
            ),
            (Bound::Memory, ctx.memory_cycles()),
        ],
        executed,
        kind,
    )
}

/// `⌈C⌉·⌈k²⌉_kstep·positions / (P·frac_of_peak)` × stride-2 penalty.
fn depthwise_conv(ctx: &Ctx, g: &Geom) -> Cost {
    let d = &ctx.t.depthwise;
    let kind = LayerKind::Depthwise {
        channels: g.cout,
        kernel: g.kernel.clone(),
    };
    let square = g.kernel.windows(2).all(|w| w[0] == w[1]);
    let k = g.kernel.first().copied().unwrap_or(1);
    if !square || !d.kernels.iter().any(|&s| s as i64 == k) {
        let ks: Vec<String> = g.kernel.iter().map(|k| k.to_string()).collect();
        return ctx.fallback(
            ctx.macs,
            format!(
                "{} depthwise kernel is not supported (NPU kernels: {:?})",
                ks.join("×"),
                d.kernels
            ),
            kind,
        );
    }
    let executed =
        (round_up(g.cout, ctx.t.align.cout) * round_up(g.kprod(), d.kstep)) as u64 * g.positions;
    let mut compute = executed as f64 / (ctx.peak() * d.frac_of_peak);
    if g.max_stride >= 2 {
        compute *= d.stride2_penalty;
    }
    Cost::max_of(
        &[
            (Bound::Compute, compute),
            (
                Bound::Output,
                g.out_elems as f64 * ctx.t.conv.out_cycles_per_elem,
            ),
            (Bound::Memory, ctx.memory_cycles()),
        ],
        executed,
        kind,
    )
}

/// native: one conv, each group padded to `align_per_group`; split: G dense
/// convs plus a concat of their outputs; cpu: fallback.
fn group_conv(ctx: &Ctx, g: &Geom) -> Cost {
    let kind = LayerKind::GroupConv { group: g.group };
    let cout_g = g.cout / g.group.max(1);
    let cin_g = g.cin / g.group.max(1);
    match ctx.t.group.mode {
        GroupMode::Cpu => ctx.fallback(
            ctx.macs,
            format!("group conv (G = {}) is not supported", g.group),
            kind,
        ),
        GroupMode::Native => {
            let apg = ctx.t.group.align_per_group;
            let executed = (g.group * round_up(cout_g, apg) * round_up(cin_g, apg) * g.kprod())
                as u64
                * g.positions;
            let eff = efficiency(ctx, g, cout_g);
            Cost::max_of(
                &[
                    (Bound::Compute, executed as f64 / (ctx.peak() * eff)),
                    (
                        Bound::Output,
                        g.out_elems as f64 * ctx.t.conv.out_cycles_per_elem,
                    ),
                    (Bound::Memory, ctx.memory_cycles()),
                ],
                executed,
                kind,
            )
        }
        GroupMode::Split => {
            let mut c = dense(ctx, g, kind);
            let concat = g.out_elems as f64 * ctx.t.concat.copy_cpe;
            c.add_serial(concat);
            c.note = format!("split into {} convs + concat", g.group);
            c
        }
    }
}
