//! Convolutions, pools and normalisations.

use super::dims::{norm_axis, window};
use super::{Ctx, Rule};
use crate::dtype::DType;
use crate::op::{Op, Window};
use crate::shape::Dim;

pub(crate) const RULES: &[(&str, Rule)] = &[
    ("Conv", conv),
    ("ConvInteger", conv_integer),
    ("QLinearConv", qlinear_conv),
    ("ConvTranspose", conv_transpose),
    ("MaxPool", pool),
    ("AveragePool", pool),
    ("LpPool", pool),
    ("GlobalAveragePool", global_pool),
    ("GlobalMaxPool", global_pool),
    ("GlobalLpPool", global_pool),
    ("BatchNormalization", batch_norm),
    ("InstanceNormalization", same_as_input),
    ("GroupNormalization", same_as_input),
    ("LRN", same_as_input),
    ("MeanVarianceNormalization", same_as_input),
    ("LpNormalization", same_as_input),
    ("LayerNormalization", layer_norm),
];

fn same_as_input(cx: &mut Ctx) {
    cx.same_as(0, 0);
}

/// The node's window geometry: the typed op's, or parsed from attributes.
fn window_of(cx: &Ctx) -> Option<Window> {
    match cx.n.op() {
        Op::Conv(c) => Some(c.window.clone()),
        Op::ConvTranspose(c) => Some(c.window.clone()),
        Op::MaxPool(p) | Op::AveragePool(p) => Some(p.window.clone()),
        _ => Window::parse(&cx.attrs()).ok(),
    }
}

/// `[N, Cout, spatial…]` of a conv of `x` by weights `w`.
fn conv_shape(x: &[Dim], w: &[Dim], win: &Window) -> Option<Vec<Dim>> {
    if w.len() < 3 || x.len() != w.len() {
        return None;
    }
    let kernel: Vec<i64> = match &win.kernel_shape {
        Some(k) => k.clone(),
        None => w[2..].iter().map(Dim::known).collect::<Option<_>>()?,
    };
    let mut shape = vec![x[0].clone(), w[0].clone()];
    shape.extend(spatial(x, &kernel, win, false)?);
    Some(shape)
}

/// The spatial output dims of a window op on `x: [N, C, spatial…]`.
fn spatial(x: &[Dim], kernel: &[i64], w: &Window, ceil: bool) -> Option<Vec<Dim>> {
    let n = kernel.len();
    if x.len() != n + 2 {
        return None;
    }
    let (s, d, p) = (w.strides(n), w.dilations(n), w.pads(n));
    if s.len() != n || d.len() != n || p.len() != 2 * n {
        return None;
    }
    Some(
        (0..n)
            .map(|i| {
                window(
                    &x[i + 2],
                    kernel[i],
                    s[i],
                    d[i],
                    (p[i], p[i + n]),
                    w.auto_pad,
                    ceil,
                )
            })
            .collect(),
    )
}

fn conv_like(cx: &mut Ctx, x: usize, w: usize, dtype: Option<DType>) {
    let Some(win) = window_of(cx) else { return };
    let (Some(xs), Some(ws)) = (cx.shape(x), cx.shape(w)) else {
        return;
    };
    let Some(dtype) = dtype.or_else(|| cx.dtype(x)) else {
        return;
    };
    if let Some(s) = conv_shape(xs, ws, &win) {
        cx.set_shape(0, dtype, s);
    }
}

fn conv(cx: &mut Ctx) {
    conv_like(cx, 0, 1, None);
}

fn conv_integer(cx: &mut Ctx) {
    conv_like(cx, 0, 1, Some(DType::INT32));
}

/// `QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B)`:
/// the output has y_zero_point's type.
fn qlinear_conv(cx: &mut Ctx) {
    let dtype = cx.dtype(7);
    conv_like(cx, 0, 3, dtype);
}

/// `out = stride·(in − 1) + output_padding + (k − 1)·dilation + 1 − pads`,
/// or `output_shape`, or `in·stride` with SAME padding; channels are
/// `W[1]·group`.
fn conv_transpose(cx: &mut Ctx) {
    let Some(win) = window_of(cx) else { return };
    let (Some(x), Some(w), Some(dtype)) = (cx.shape(0), cx.shape(1), cx.dtype(0)) else {
        return;
    };
    if w.len() < 3 || x.len() != w.len() {
        return;
    }
    let n = x.len() - 2;
    let (group, output_padding, output_shape) = match cx.n.op() {
        Op::ConvTranspose(c) => (c.group, c.output_padding.clone(), c.output_shape.clone()),
        _ => (
            cx.int_attr("group").unwrap_or(1),
            cx.ints_attr("output_padding"),
            cx.ints_attr("output_shape"),
        ),
    };
    let mut shape = vec![x[0].clone(), w[1].mul(&Dim::Known(group))];
    if let Some(os) = output_shape {
        let os = if os.len() == n + 2 { &os[2..] } else { &os[..] };
        if os.len() != n {
            return;
        }
        shape.extend(os.iter().map(|&v| Dim::Known(v)));
        cx.set_shape(0, dtype, shape);
        return;
    }
    let kernel: Vec<i64> = match &win.kernel_shape {
        Some(k) => k.clone(),
        None => match w[2..].iter().map(Dim::known).collect() {
            Some(k) => k,
            None => return,
        },
    };
    let (s, d, p) = (win.strides(n), win.dilations(n), win.pads(n));
    let op = output_padding.unwrap_or_else(|| vec![0; n]);
    if kernel.len() != n || s.len() != n || d.len() != n || p.len() != 2 * n || op.len() != n {
        return;
    }
    for i in 0..n {
        let xi = &x[i + 2];
        let dim = match win.auto_pad {
            crate::op::AutoPad::SameUpper | crate::op::AutoPad::SameLower => {
                xi.mul(&Dim::Known(s[i]))
            }
            a => {
                let pads = if a == crate::op::AutoPad::Valid {
                    0
                } else {
                    p[i] + p[i + n]
                };
                let ek = (kernel[i] - 1) * d[i] + 1;
                xi.sub(&Dim::Known(1))
                    .mul(&Dim::Known(s[i]))
                    .add(&Dim::Known(op[i] + ek - pads))
            }
        };
        shape.push(dim);
    }
    cx.set_shape(0, dtype, shape);
}

/// MaxPool (and its Indices), AveragePool, LpPool.
fn pool(cx: &mut Ctx) {
    let Some(win) = window_of(cx) else { return };
    let ceil = match cx.n.op() {
        Op::MaxPool(p) | Op::AveragePool(p) => p.ceil_mode != 0,
        _ => cx.int_attr("ceil_mode").unwrap_or(0) != 0,
    };
    let (Some(x), Some(dtype)) = (cx.shape(0), cx.dtype(0)) else {
        return;
    };
    let Some(kernel) = win.kernel_shape.clone() else {
        return;
    };
    if x.len() < 2 {
        return;
    }
    let Some(sp) = spatial(x, &kernel, &win, ceil) else {
        return;
    };
    let mut shape = vec![x[0].clone(), x[1].clone()];
    shape.extend(sp);
    if cx.n_outputs() > 1 {
        cx.set_shape(1, DType::INT64, shape.clone());
    }
    cx.set_shape(0, dtype, shape);
}

fn global_pool(cx: &mut Ctx) {
    let (Some(x), Some(dtype)) = (cx.shape(0), cx.dtype(0)) else {
        return;
    };
    let shape = x
        .iter()
        .enumerate()
        .map(|(i, d)| if i < 2 { d.clone() } else { Dim::Known(1) })
        .collect();
    cx.set_shape(0, dtype, shape);
}

/// Y is X; training outputs (running or saved statistics) are `[C]`.
fn batch_norm(cx: &mut Ctx) {
    cx.same_as(0, 0);
    let (Some(c), Some(dtype)) = (cx.shape(0).and_then(|s| s.get(1)).cloned(), cx.dtype(0)) else {
        return;
    };
    for slot in 1..cx.n_outputs() {
        let dt = cx.dtype(3).unwrap_or(dtype);
        cx.set_shape(slot, dt, vec![c.clone()]);
    }
}

/// Y is X; Mean and InvStdDev keep the dims before `axis` and are 1 from
/// it, in `stash_type` (float by default).
fn layer_norm(cx: &mut Ctx) {
    cx.same_as(0, 0);
    let Some(x) = cx.shape(0) else { return };
    let Some(axis) = norm_axis(cx.int_attr("axis").unwrap_or(-1), x.len()) else {
        return;
    };
    let stash = DType(cx.int_attr("stash_type").unwrap_or(1) as i32);
    let shape: Vec<Dim> = x
        .iter()
        .enumerate()
        .map(|(i, d)| if i < axis { d.clone() } else { Dim::Known(1) })
        .collect();
    for slot in 1..cx.n_outputs().min(3) {
        cx.set_shape(slot, stash, shape.clone());
    }
}
