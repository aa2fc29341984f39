//! How well a model's weights survive int8: the quantization view.
//!
//! Per linear layer (Conv, Gemm, MatMul with a float constant weight):
//!
//! * **range spread**: `max_i rᵢ / min_i rᵢ` over the output channels'
//!   ranges `rᵢ = max|W[i, …]|` (channels whose weights are all zero left
//!   out). Per-tensor int8 gives every channel the step of the widest one,
//!   so a spread of 100 leaves the narrowest channel under 2 of its 255
//!   levels.
//! * **weight SQNR**: per output channel `i`,
//!   `10·log10(Σ wᵢ² / Σ (wᵢ − Q(wᵢ))²)` in dB, averaged over the output
//!   channels, with `Q` symmetric int8 round-to-nearest on `[-127, 127]`:
//!   per tensor (one step `max|W|/127` for every channel) or per output
//!   channel (`rᵢ/127` each). Each 6 dB is one bit. An SQNR over the whole
//!   tensor would be dominated by the widest channels and blind to the
//!   narrow ones a shared step wipes out — yet every output channel is a
//!   feature the next layer reads, so each counts once. Channels whose
//!   weights are all zero are left out; `None` when all are; infinite when
//!   `Q` is exact.
//!
//! These are properties of the weights alone (no data): they say how much
//! the *weights* lose, not how the activations will be quantized.

use npuopt_ir::{Graph, NodeId, Op};

use crate::linear_layer::{LayerShape, LinearLayer};

/// The quantization figures of one layer's weights.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerQuant {
    pub node: String,
    pub op_type: String,
    pub out_channels: usize,
    pub weights: usize,
    /// `max rᵢ / min rᵢ` over non-zero output channels (1 with one channel).
    pub range_spread: f64,
    pub sqnr_per_tensor_db: Option<f64>,
    pub sqnr_per_channel_db: Option<f64>,
}

/// The figures of every linear layer of `g` with a float constant weight,
/// in topological order. The weights are streamed from their tensors, never
/// copied: a model's peak memory does not grow by its largest weight.
pub fn quant_view(g: &Graph) -> Vec<LayerQuant> {
    let Ok(order) = g.topo_order() else {
        return Vec::new();
    };
    order
        .into_iter()
        .filter(|&id| matches!(g.node(id).op(), Op::Conv(_) | Op::Gemm(_) | Op::MatMul))
        .filter_map(|id| layer_quant(g, id))
        .collect()
}

/// The figures of one layer, or `None` when it has no float constant
/// weight that can be read.
pub fn layer_quant(g: &Graph, id: NodeId) -> Option<LayerQuant> {
    let shape = LayerShape::read(g, id).ok()?;
    let t = g.constant(shape.weight)?;
    let numel = usize::try_from(t.numel()?).ok()?;
    let f = figures(
        shape.out_channels,
        |k| shape.out_channel_of(k, numel),
        |visit| {
            let mut k = 0;
            t.for_each_float(|v| {
                visit(k, v);
                k += 1;
            })
            .is_ok()
        },
    )?;
    let n = g.node(id);
    Some(LayerQuant {
        node: n.name().to_string(),
        op_type: n.op_type().to_string(),
        out_channels: shape.out_channels,
        weights: numel,
        range_spread: f.range_spread,
        sqnr_per_tensor_db: f.sqnr_per_tensor_db,
        sqnr_per_channel_db: f.sqnr_per_channel_db,
    })
}

/// Channel-mean SQNR of a layer already read into f64, with one step for
/// the whole weight.
pub fn sqnr_per_tensor(l: &LinearLayer) -> Option<f64> {
    let (out, numel) = (l.out_channels, l.weight.len());
    let channel_of = |k| l.layout.out_channel_of(k, numel, out, l.in_channels);
    figures(out, channel_of, |visit| {
        l.weight.iter().enumerate().for_each(|(k, &v)| visit(k, v));
        true
    })?
    .sqnr_per_tensor_db
}

/// What [`figures`] computes for one weight.
struct Figures {
    range_spread: f64,
    sqnr_per_tensor_db: Option<f64>,
    sqnr_per_channel_db: Option<f64>,
}

/// The figures of a weight with `out` output channels, `channel_of` mapping
/// a flat index to its channel, `values` visiting `(index, value)` in any
/// order (twice: once for the ranges, once for the errors) and returning
/// false when the values cannot be read. Memory is O(`out`).
fn figures(
    out: usize,
    channel_of: impl Fn(usize) -> usize,
    values: impl Fn(&mut dyn FnMut(usize, f64)) -> bool,
) -> Option<Figures> {
    let mut range = vec![0.0f64; out];
    let ok = values(&mut |k, v| {
        let r = &mut range[channel_of(k).min(out - 1)];
        *r = r.max(v.abs());
    });
    if !ok || out == 0 {
        return None;
    }
    let tensor_step = range.iter().fold(0.0f64, |m, &r| m.max(r)) / 127.0;
    let (mut signal, mut noise_tensor, mut noise_channel) =
        (vec![0.0f64; out], vec![0.0f64; out], vec![0.0f64; out]);
    let quantize = |v: f64, step: f64| {
        if step > 0.0 {
            (v / step).round().clamp(-127.0, 127.0) * step
        } else {
            0.0
        }
    };
    values(&mut |k, v| {
        let i = channel_of(k).min(out - 1);
        signal[i] += v * v;
        let e = v - quantize(v, tensor_step);
        noise_tensor[i] += e * e;
        let e = v - quantize(v, range[i] / 127.0);
        noise_channel[i] += e * e;
    });
    let (lo, hi) = range
        .iter()
        .filter(|&&r| r > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &r| {
            (lo.min(r), hi.max(r))
        });
    Some(Figures {
        range_spread: if hi > 0.0 { hi / lo } else { 1.0 },
        sqnr_per_tensor_db: channel_mean_db(&signal, &noise_tensor),
        sqnr_per_channel_db: channel_mean_db(&signal, &noise_channel),
    })
}

/// Mean over channels of `10·log10(signal/noise)`, skipping all-zero
/// channels; infinite when a channel is quantized exactly (the mean of a
/// set holding +∞), `None` when every channel is zero.
fn channel_mean_db(signal: &[f64], noise: &[f64]) -> Option<f64> {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for (&s, &e) in signal.iter().zip(noise) {
        if s == 0.0 {
            continue;
        }
        n += 1;
        if e == 0.0 {
            return Some(f64::INFINITY);
        }
        sum += 10.0 * (s / e).log10();
    }
    (n > 0).then(|| sum / n as f64)
}

/// A summary over layers: the worst layer and the weight-count-weighted
/// mean, in dB, of the per-tensor figures.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantSummary {
    pub layers: usize,
    pub worst_sqnr_per_tensor_db: Option<f64>,
    pub worst_layer: Option<String>,
    pub mean_sqnr_per_tensor_db: Option<f64>,
    pub max_range_spread: f64,
}

pub fn summarize(rows: &[LayerQuant]) -> QuantSummary {
    let finite: Vec<&LayerQuant> = rows
        .iter()
        .filter(|r| r.sqnr_per_tensor_db.is_some())
        .collect();
    let worst = finite.iter().min_by(|a, b| {
        a.sqnr_per_tensor_db
            .partial_cmp(&b.sqnr_per_tensor_db)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let total: usize = finite
        .iter()
        .filter(|r| r.sqnr_per_tensor_db.is_some_and(f64::is_finite))
        .map(|r| r.weights)
        .sum();
    let mean = (total > 0).then(|| {
        finite
            .iter()
            .filter_map(|r| {
                r.sqnr_per_tensor_db
                    .filter(|d| d.is_finite())
                    .map(|d| (d, r.weights))
            })
            .map(|(d, w)| d * w as f64)
            .sum::<f64>()
            / total as f64
    });
    QuantSummary {
        layers: rows.len(),
        worst_sqnr_per_tensor_db: worst.and_then(|r| r.sqnr_per_tensor_db),
        worst_layer: worst.map(|r| r.node.clone()),
        mean_sqnr_per_tensor_db: mean,
        max_range_spread: rows.iter().map(|r| r.range_spread).fold(1.0, f64::max),
    }
}
