//! Resampling: Resize and Upsample (by scales or sizes), GridSample,
//! RoiAlign.

use super::dims::{norm_axes, norm_axis, unify};
use super::{Ctx, Rule};
use crate::shape::Dim;

pub(crate) const RULES: &[(&str, Rule)] = &[
    ("Resize", resize),
    ("Upsample", upsample),
    ("GridSample", grid_sample),
    ("RoiAlign", roi_align),
];

/// `floor(d · scale)` as ONNX computes it (in f32); a symbolic dim keeps
/// an integer scale.
fn scaled(d: &Dim, scale: f64) -> Dim {
    match d {
        Dim::Known(v) => Dim::Known(((*v as f32) * scale as f32).floor() as i64),
        _ if scale.fract() == 0.0 && (1.0..1e9).contains(&scale) => {
            d.mul(&Dim::Known(scale as i64))
        }
        _ => Dim::Unknown,
    }
}

/// True when input `i` is absent or an empty tensor (opset 11+ writes an
/// empty `scales` when `sizes` is given).
fn absent_or_empty(cx: &Ctx, i: usize) -> bool {
    !cx.has_input(i) || matches!(cx.shape(i), Some([Dim::Known(0)]))
}

/// Resize (opset 10: `X, scales`; 11+: `X, roi, scales, sizes`; 18+:
/// `axes` and `keep_aspect_ratio_policy`).
fn resize(cx: &mut Ctx) {
    let (Some(x), Some(dtype)) = (cx.shape(0), cx.dtype(0)) else {
        return;
    };
    let r = x.len();
    let axes = match cx.ints_attr("axes") {
        Some(a) => match norm_axes(&a, r) {
            // norm_axes sorts; sizes and scales follow the attribute's order.
            Some(_) => a
                .iter()
                .map(|&v| norm_axis(v, r).expect("checked"))
                .collect(),
            None => return,
        },
        None => (0..r).collect::<Vec<_>>(),
    };
    let mut out = x.to_vec();
    let unknown_axes = |out: &mut Vec<Dim>| {
        for &a in &axes {
            out[a] = Dim::Unknown;
        }
    };
    let (scales_at, sizes_at) = if cx.opset() < 11 {
        (1, None)
    } else {
        (2, Some(3))
    };
    if let Some(si) = sizes_at.filter(|&i| !absent_or_empty(cx, i)) {
        match cx.dims_value(si) {
            Some(sizes) if sizes.len() == axes.len() => {
                let policy = cx.string_attr("keep_aspect_ratio_policy");
                match policy.as_deref() {
                    None | Some("stretch") => {
                        for (k, &a) in axes.iter().enumerate() {
                            out[a] = sizes[k].clone();
                        }
                    }
                    Some(p) => keep_aspect_ratio(p == "not_larger", x, &axes, &sizes, &mut out),
                }
            }
            _ => unknown_axes(&mut out),
        }
        return cx.set_shape(0, dtype, out);
    }
    if absent_or_empty(cx, scales_at) {
        return cx.set_shape(0, dtype, vec![Dim::Unknown; r]);
    }
    match cx.floats(scales_at) {
        Some(s) if s.len() == axes.len() => {
            for (k, &a) in axes.iter().enumerate() {
                out[a] = scaled(&x[a], s[k]);
            }
        }
        _ => unknown_axes(&mut out),
    }
    cx.set_shape(0, dtype, out);
}

/// One scale for all axes, `min` (not larger) or `max` (not smaller) of
/// the per-axis ratios; each output is `round(scale · d)`.
fn keep_aspect_ratio(not_larger: bool, x: &[Dim], axes: &[usize], sizes: &[Dim], out: &mut [Dim]) {
    let pairs: Option<Vec<(i64, i64)>> = axes
        .iter()
        .zip(sizes)
        .map(|(&a, s)| Some((x[a].known()?, s.known()?)))
        .collect();
    let Some(pairs) = pairs.filter(|p| p.iter().all(|(d, _)| *d > 0)) else {
        for &a in axes {
            out[a] = Dim::Unknown;
        }
        return;
    };
    let ratios = pairs.iter().map(|(d, s)| *s as f32 / *d as f32);
    let scale = if not_larger {
        ratios.fold(f32::INFINITY, f32::min)
    } else {
        ratios.fold(f32::NEG_INFINITY, f32::max)
    };
    for (&a, (d, _)) in axes.iter().zip(&pairs) {
        out[a] = Dim::Known((scale * *d as f32).round() as i64);
    }
}

/// Upsample: scales as an attribute (opset 7) or input (opset 9).
fn upsample(cx: &mut Ctx) {
    let (Some(x), Some(dtype)) = (cx.shape(0), cx.dtype(0)) else {
        return;
    };
    let scales = match cx.attrs().floats("scales").ok().flatten() {
        Some(s) => Some(s.into_iter().map(f64::from).collect::<Vec<_>>()),
        None => cx.floats(1),
    };
    let out = match scales {
        Some(s) if s.len() == x.len() => x.iter().zip(&s).map(|(d, k)| scaled(d, *k)).collect(),
        _ => vec![Dim::Unknown; x.len()],
    };
    cx.set_shape(0, dtype, out);
}

/// `[N, C, grid's spatial dims…]`.
fn grid_sample(cx: &mut Ctx) {
    let (Some(x), Some(g), Some(dtype)) = (cx.shape(0), cx.shape(1), cx.dtype(0)) else {
        return;
    };
    if x.len() < 3 || g.len() != x.len() {
        return;
    }
    let mut s = vec![x[0].clone(), x[1].clone()];
    s.extend(g[1..g.len() - 1].iter().cloned());
    cx.set_shape(0, dtype, s);
}

/// `[num_rois, C, output_height, output_width]`.
fn roi_align(cx: &mut Ctx) {
    let (Some(x), Some(rois), Some(dtype)) = (cx.shape(0), cx.shape(1), cx.dtype(0)) else {
        return;
    };
    if x.len() != 4 || rois.len() != 2 {
        return;
    }
    // The roi count is stated twice: by the rois and the batch indices.
    let rois_n = match cx.shape(2) {
        Some([n]) => unify(&rois[0], n),
        _ => rois[0].clone(),
    };
    let h = cx.int_attr("output_height").unwrap_or(1);
    let w = cx.int_attr("output_width").unwrap_or(1);
    cx.set_shape(
        0,
        dtype,
        vec![rois_n, x[1].clone(), Dim::Known(h), Dim::Known(w)],
    );
}
