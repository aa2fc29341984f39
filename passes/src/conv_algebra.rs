//! Conv weight algebra shared by the re-parameterization passes
//! (`merge-branches`, `merge-sequential-convs`, `combine-parallel-convs`).
//!
//! Everything is computed in f64 (ONNX OIHW layout, 2-D convs only) and
//! stored back in the weights' own dtype, rounded once. Most passes work on
//! a dense f64 [`Kernel`]; `merge-branches` sums [`BranchKernel`]s — the
//! branches' weights read where they lie — output channel by output channel
//! straight into the merged weight's final buffer ([`combine`]): the same
//! f64 sums in the same order, with no f64 copy of a whole weight.
//!
//! * kernel alignment: a `k×k` window with pads `p` sits inside a `K×K`
//!   window with pads `P` at offset `o = P_begin − p_begin`, exactly when
//!   `0 ≤ o ≤ K − k` and `p_end = P_end − (K − k − o)` on every axis (for
//!   odd `K − k` and symmetric pads this is REWRITES.md §2's centring,
//!   `p = P − (K−k)/2`);
//! * group expansion: a conv with `g` groups is the conv with any `G | g`
//!   groups whose weight is block-diagonal (zeros elsewhere);
//! * identity and per-channel affine (a standalone BN) as a kernel:
//!   `W[o, o mod (Cin/G), cy, cx] = s[o]` at the window's centre tap;
//! * AveragePool as a kernel: `1/(kh·kw)` on the diagonal, every tap;
//! * an affine map after a conv: `W' = s·W`, `b' = s·b + t`.

use npuopt_ir::op::{AutoPad, BatchNorm, Window};
use npuopt_ir::tensor::{F64Sink, FloatView};
use npuopt_ir::{DType, Graph, NodeId, Op, Tensor, ValueId};

use crate::rewrite::const_f64;

/// A 2-D conv weight `[cout, cin/group, kh, kw]` in f64.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub cout: usize,
    /// Input channels of the whole conv (not per group).
    pub cin: usize,
    pub group: usize,
    pub kh: usize,
    pub kw: usize,
    pub data: Vec<f64>,
}

impl Kernel {
    pub fn zeros(cout: usize, cin: usize, group: usize, kh: usize, kw: usize) -> Kernel {
        Kernel {
            cout,
            cin,
            group,
            kh,
            kw,
            data: vec![0.0; cout * (cin / group) * kh * kw],
        }
    }

    /// Input channels per group.
    pub fn cin_g(&self) -> usize {
        self.cin / self.group
    }

    /// Output channels per group.
    pub fn cout_g(&self) -> usize {
        self.cout / self.group
    }

    pub fn dims(&self) -> [i64; 4] {
        [
            self.cout as i64,
            self.cin_g() as i64,
            self.kh as i64,
            self.kw as i64,
        ]
    }

    /// Flat index of `W[o, j, y, x]` (`j` local to the group).
    pub fn idx(&self, o: usize, j: usize, y: usize, x: usize) -> usize {
        ((o * self.cin_g() + j) * self.kh + y) * self.kw + x
    }

    /// The local input index of absolute input channel `a` for output `o`,
    /// if `a` is in `o`'s group.
    pub fn local_input(&self, o: usize, a: usize) -> Option<usize> {
        let grp = o / self.cout_g();
        let first = grp * self.cin_g();
        (a >= first && a < first + self.cin_g()).then(|| a - first)
    }

    /// The same conv with `group` groups (`group` must divide this
    /// kernel's group count): block-diagonal expansion.
    pub fn regroup(&self, group: usize) -> Kernel {
        assert!(self.group.is_multiple_of(group), "regroup to a non-divisor");
        if group == self.group {
            return self.clone();
        }
        let mut out = Kernel::zeros(self.cout, self.cin, group, self.kh, self.kw);
        let taps = self.kh * self.kw;
        for o in 0..self.cout {
            let first_in = (o / self.cout_g()) * self.cin_g();
            for j in 0..self.cin_g() {
                let lj = out
                    .local_input(o, first_in + j)
                    .expect("a sub-group lies in its merged group");
                let src = self.idx(o, j, 0, 0);
                let dst = out.idx(o, lj, 0, 0);
                out.data[dst..dst + taps].copy_from_slice(&self.data[src..src + taps]);
            }
        }
        out
    }

    /// Adds `coef[o]·other` with `other`'s window at offset `(oy, ox)` in
    /// this kernel. `other` must have the same channels and a group count
    /// this kernel's divides.
    pub fn accumulate(&mut self, other: &Kernel, coef: &[f64], oy: usize, ox: usize) {
        // Borrowed when the groups already match: a copy of a large kernel
        // was a fifth of RepVGG-A0's peak memory.
        let regrouped;
        let other = if other.group == self.group {
            other
        } else {
            regrouped = other.regroup(self.group);
            &regrouped
        };
        assert!(other.cout == self.cout && other.cin == self.cin);
        assert!(oy + other.kh <= self.kh && ox + other.kw <= self.kw);
        for (o, &k) in coef.iter().enumerate().take(self.cout) {
            for j in 0..self.cin_g() {
                for y in 0..other.kh {
                    for x in 0..other.kw {
                        let v = other.data[other.idx(o, j, y, x)];
                        if v != 0.0 {
                            let d = self.idx(o, j, oy + y, ox + x);
                            self.data[d] += k * v;
                        }
                    }
                }
            }
        }
    }

    /// `coef[o]·self` as [`Kernel::accumulate`] would add it into a zero
    /// kernel of the same shape (a zero tap stays `+0.0`, every other tap
    /// is `0.0 + coef[o]·v`), computed in place: bit for bit that sum,
    /// without a second kernel-sized buffer.
    pub fn into_scaled(mut self, coef: &[f64]) -> Kernel {
        let per_out = self.cin_g() * self.kh * self.kw;
        for (o, &k) in coef.iter().enumerate().take(self.cout) {
            for v in &mut self.data[o * per_out..(o + 1) * per_out] {
                *v = if *v != 0.0 { 0.0 + k * *v } else { 0.0 };
            }
        }
        // Outputs past `coef` get nothing added to the zero kernel.
        if coef.len() < self.cout {
            self.data[coef.len() * per_out..].fill(0.0);
        }
        self
    }

    /// A per-channel kernel on `c` channels with `group` groups: `value[o]`
    /// at every tap of `kh×kw` on the diagonal. With a 1×1 window this is
    /// `x ↦ value ⊙ x`; with `value = 1/(kh·kw)` it is an AveragePool.
    pub fn diagonal(c: usize, group: usize, kh: usize, kw: usize, value: &[f64]) -> Kernel {
        let mut k = Kernel::zeros(c, c, group, kh, kw);
        for (o, &v) in value.iter().enumerate().take(c) {
            let j = k.local_input(o, o).expect("the diagonal is in the group");
            for y in 0..kh {
                for x in 0..kw {
                    let d = k.idx(o, j, y, x);
                    k.data[d] = v;
                }
            }
        }
        k
    }

    /// Scales output channel `o` by `s[o]`.
    pub fn scale_outputs(&mut self, s: &[f64]) {
        let per = self.cin_g() * self.kh * self.kw;
        for (o, &so) in s.iter().enumerate().take(self.cout) {
            self.data[o * per..(o + 1) * per]
                .iter_mut()
                .for_each(|v| *v *= so);
        }
    }
}

/// An affine map after a conv, per output channel: `W' = s·W`,
/// `b' = s·b + t`.
pub fn affine_after_conv(w: &mut Kernel, b: &mut [f64], s: &[f64], t: &[f64]) {
    w.scale_outputs(s);
    for o in 0..b.len() {
        b[o] = s[o] * b[o] + t[o];
    }
}

/// Greatest common divisor.
pub fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// An inference BN as a per-channel affine map `(s, t)`:
/// `s = γ/√(σ²+ε)`, `t = β − s·μ`.
pub fn bn_as_affine(g: &Graph, id: NodeId, bn: &BatchNorm) -> Result<(Vec<f64>, Vec<f64>), String> {
    if let Some(why) = bn.why_not_inference(g.opset()) {
        return Err(why.to_string());
    }
    let n = g.node(id);
    let extra_read = n.outputs()[1..]
        .iter()
        .flatten()
        .any(|&o| !g.value(o).uses().is_empty() || g.is_graph_output(o));
    if extra_read {
        return Err("its running statistics outputs are read".into());
    }
    let get = |slot: usize, what: &str| -> Result<Vec<f64>, String> {
        n.input(slot)
            .and_then(|v| const_f64(g, v))
            .ok_or_else(|| format!("its {what} is not a float constant"))
    };
    let gamma = get(1, "scale")?;
    let beta = get(2, "bias")?;
    let mean = get(3, "mean")?;
    let var = get(4, "variance")?;
    let c = gamma.len();
    if beta.len() != c || mean.len() != c || var.len() != c {
        return Err("its parameters differ in length".into());
    }
    let eps = bn.epsilon as f64;
    let s: Vec<f64> = (0..c).map(|i| gamma[i] / (var[i] + eps).sqrt()).collect();
    let t = (0..c).map(|i| beta[i] - s[i] * mean[i]).collect();
    Ok((s, t))
}

/// The geometry of a 2-D window: kernel, stride, pads
/// `[top, left, bottom, right]`, dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub kernel: [usize; 2],
    pub stride: [i64; 2],
    pub pads: [i64; 4],
    pub dilation: [i64; 2],
}

impl Geometry {
    /// A 1×1, stride-1, unpadded window (identity, per-channel affine).
    pub fn point() -> Geometry {
        Geometry {
            kernel: [1, 1],
            stride: [1, 1],
            pads: [0; 4],
            dilation: [1, 1],
        }
    }

    /// The window of a conv or pool with kernel `kernel`, with `auto_pad`
    /// resolved exactly from the input's spatial dims when it is set.
    pub fn of_window(
        w: &Window,
        kernel: [usize; 2],
        input_spatial: Option<[i64; 2]>,
    ) -> Result<Geometry, String> {
        let to2 = |v: Vec<i64>, what: &str| -> Result<[i64; 2], String> {
            <[i64; 2]>::try_from(v).map_err(|_| format!("its {what} are not 2-D"))
        };
        let stride = to2(w.strides(2), "strides")?;
        let dilation = to2(w.dilations(2), "dilations")?;
        let pads: [i64; 4] = match w.auto_pad {
            AutoPad::NotSet => {
                <[i64; 4]>::try_from(w.pads(2)).map_err(|_| "its pads are not 2-D".to_string())?
            }
            AutoPad::Valid => [0; 4],
            AutoPad::SameUpper | AutoPad::SameLower => {
                let Some(hw) = input_spatial else {
                    return Err("auto_pad SAME with an unknown input size".into());
                };
                let mut p = [0i64; 4];
                for d in 0..2 {
                    let eff = dilation[d] * (kernel[d] as i64 - 1) + 1;
                    let out = (hw[d] + stride[d] - 1) / stride[d];
                    let total = ((out - 1) * stride[d] + eff - hw[d]).max(0);
                    let (small, big) = (total / 2, total - total / 2);
                    if w.auto_pad == AutoPad::SameUpper {
                        p[d] = small;
                        p[d + 2] = big;
                    } else {
                        p[d] = big;
                        p[d + 2] = small;
                    }
                }
                p
            }
        };
        if pads.iter().any(|&p| p < 0) || stride.iter().any(|&s| s < 1) {
            return Err("it has negative pads or a stride < 1".into());
        }
        Ok(Geometry {
            kernel,
            stride,
            pads,
            dilation,
        })
    }
}

/// Where each window sits in the merged window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alignment {
    /// The merged window: the largest kernel per axis, its pads and the
    /// common stride.
    pub merged: Geometry,
    /// `(row, column)` offset of each input window inside the merged one.
    pub offsets: Vec<[usize; 2]>,
}

/// Aligns windows into the largest one (REWRITES.md §2): same stride,
/// dilation 1, and every window on the same centre (see the module doc).
/// The error says which precondition failed.
pub fn align(windows: &[Geometry]) -> Result<Alignment, String> {
    let first = windows.first().ok_or("no windows")?;
    if let Some(w) = windows.iter().find(|w| w.dilation != [1, 1]) {
        return Err(format!(
            "a branch has dilation {:?} (only 1 merges)",
            w.dilation
        ));
    }
    if let Some(w) = windows.iter().find(|w| w.stride != first.stride) {
        return Err(format!(
            "branches have different strides ({:?} and {:?})",
            first.stride, w.stride
        ));
    }
    let kmax = [0, 1].map(|d| windows.iter().map(|w| w.kernel[d]).max().unwrap_or(1));
    let mut pads = [0i64; 4];
    for d in 0..2 {
        let big: Vec<&Geometry> = windows.iter().filter(|w| w.kernel[d] == kmax[d]).collect();
        let (pb, pe) = (big[0].pads[d], big[0].pads[d + 2]);
        if big.iter().any(|w| w.pads[d] != pb || w.pads[d + 2] != pe) {
            return Err(format!(
                "the {}-wide windows have different pads on axis {d}",
                kmax[d]
            ));
        }
        pads[d] = pb;
        pads[d + 2] = pe;
    }
    let mut offsets = Vec::with_capacity(windows.len());
    for w in windows {
        let mut off = [0usize; 2];
        for d in 0..2 {
            let (k, kk) = (w.kernel[d] as i64, kmax[d] as i64);
            let o = pads[d] - w.pads[d];
            if o < 0 || o > kk - k || w.pads[d + 2] != pads[d + 2] - (kk - k - o) {
                return Err(format!(
                    "misaligned pads: a {}×{} window with pads {:?} is not centred in the {}×{} window with pads {:?}",
                    w.kernel[0], w.kernel[1], w.pads, kmax[0], kmax[1], pads
                ));
            }
            off[d] = o as usize;
        }
        offsets.push(off);
    }
    Ok(Alignment {
        merged: Geometry {
            kernel: kmax,
            stride: first.stride,
            pads,
            dilation: [1, 1],
        },
        offsets,
    })
}

/// A conv's constant parameters and geometry.
#[derive(Clone, Debug)]
pub struct ConvParams {
    pub weight: Kernel,
    pub bias: Vec<f64>,
    /// True when the conv has a bias input.
    pub has_bias: bool,
    pub dtype: DType,
    pub geometry: Geometry,
}

/// A conv's constant parameters and geometry, its weight read in place.
#[derive(Debug)]
pub struct ConvView<'a> {
    pub cout: usize,
    /// Input channels of the whole conv (not per group).
    pub cin: usize,
    pub group: usize,
    pub kh: usize,
    pub kw: usize,
    /// `W[o, j, y, x]` in OIHW order.
    pub values: FloatView<'a>,
    pub bias: Vec<f64>,
    /// True when the conv has a bias input.
    pub has_bias: bool,
    pub dtype: DType,
    pub geometry: Geometry,
}

/// Reads a 2-D Conv node's constant float weight and bias and its window.
pub fn read_conv(g: &Graph, id: NodeId) -> Result<ConvParams, String> {
    let v = view_conv(g, id)?;
    Ok(ConvParams {
        weight: Kernel {
            cout: v.cout,
            cin: v.cin,
            group: v.group,
            kh: v.kh,
            kw: v.kw,
            data: v.values.into_vec(),
        },
        bias: v.bias,
        has_bias: v.has_bias,
        dtype: v.dtype,
        geometry: v.geometry,
    })
}

/// [`read_conv`] without copying the weight: its values are read where
/// they lie (the mapped input, or a pass's buffer).
pub fn view_conv(g: &Graph, id: NodeId) -> Result<ConvView<'_>, String> {
    let n = g.node(id);
    let Op::Conv(conv) = n.op() else {
        return Err("not a Conv".into());
    };
    let x = n.input(0).ok_or("it has no input")?;
    let w = n.input(1).ok_or("it has no weight")?;
    let t = g.constant(w).ok_or("its weight is not a constant")?;
    if !t.dtype().is_float() {
        return Err(format!("its weight is {}, not a float type", t.dtype()));
    }
    let dims = t.dims().to_vec();
    if dims.len() != 4 {
        return Err(format!(
            "its weight has rank {} (only 2-D convs)",
            dims.len()
        ));
    }
    let values = t.float_view()?;
    let group = conv.group.max(1) as usize;
    let (cout, cin_g, kh, kw) = (
        dims[0] as usize,
        dims[1] as usize,
        dims[2] as usize,
        dims[3] as usize,
    );
    if group == 0 || !cout.is_multiple_of(group) {
        return Err("its output channels do not split into its groups".into());
    }
    if let Some(ks) = &conv.window.kernel_shape {
        if ks != &dims[2..] {
            return Err("its kernel_shape disagrees with its weight".into());
        }
    }
    let dtype = t.dtype();
    let bias = match n.input(2) {
        None => None,
        Some(b) => {
            let bt = g.constant(b).ok_or("its bias is not a constant")?;
            if !bt.dtype().is_float() {
                return Err("its bias is not a float type".into());
            }
            let v = bt.to_f64()?;
            if v.len() != cout {
                return Err(format!("its bias has {} values, expected {cout}", v.len()));
            }
            Some(v)
        }
    };
    let spatial = g
        .ty(x)
        .and_then(|t| t.concrete())
        .filter(|s| s.len() == 4)
        .map(|s| [s[2], s[3]]);
    let geometry = Geometry::of_window(&conv.window, [kh, kw], spatial)?;
    Ok(ConvView {
        cout,
        cin: cin_g * group,
        group,
        kh,
        kw,
        values,
        has_bias: bias.is_some(),
        bias: bias.unwrap_or_else(|| vec![0.0; cout]),
        dtype,
        geometry,
    })
}

/// One branch of a linear combination as a kernel `[cout, cin/group, kh,
/// kw]`, its values read where they lie: a conv's weight in place, or a
/// per-channel diagonal — never an f64 copy of a whole weight.
#[derive(Debug)]
pub struct BranchKernel<'a> {
    pub cout: usize,
    /// Input channels of the whole conv (not per group).
    pub cin: usize,
    pub group: usize,
    pub kh: usize,
    pub kw: usize,
    taps: Taps<'a>,
}

#[derive(Debug)]
enum Taps<'a> {
    /// A conv's weight as stored.
    Weight(FloatView<'a>),
    /// Depthwise (`group = cout = cin`): `value[o]` at every tap.
    Diagonal(Vec<f64>),
    /// A 1×1 conv `W1` spread over every tap and scaled:
    /// `W[o, j, y, x] = W1[o, j]·scale` (the f64 product).
    Spread(FloatView<'a>, f64),
}

impl<'a> BranchKernel<'a> {
    /// A conv's own weight.
    pub fn weight(v: ConvView<'a>) -> BranchKernel<'a> {
        BranchKernel {
            cout: v.cout,
            cin: v.cin,
            group: v.group,
            kh: v.kh,
            kw: v.kw,
            taps: Taps::Weight(v.values),
        }
    }

    /// [`Kernel::diagonal`] on `value.len()` channels with one group per
    /// channel: `value[o]` at every tap of `kh×kw` (identity, per-channel
    /// affine, AveragePool).
    pub fn diagonal(kh: usize, kw: usize, value: Vec<f64>) -> BranchKernel<'a> {
        let c = value.len();
        BranchKernel {
            cout: c,
            cin: c,
            group: c.max(1),
            kh,
            kw,
            taps: Taps::Diagonal(value),
        }
    }

    /// A 1×1 conv's weight at every tap of `kh×kw`, times `scale` (an
    /// AveragePool of a 1×1 conv: `scale = 1/(kh·kw)`).
    pub fn spread(v: ConvView<'a>, kh: usize, kw: usize, scale: f64) -> BranchKernel<'a> {
        BranchKernel {
            cout: v.cout,
            cin: v.cin,
            group: v.group,
            kh,
            kw,
            taps: Taps::Spread(v.values, scale),
        }
    }

    fn cin_g(&self) -> usize {
        self.cin / self.group
    }

    fn cout_g(&self) -> usize {
        self.cout / self.group
    }

    /// The `cin_g·kh·kw` values of output channel `o`, in layout order.
    fn read_output(&self, o: usize, out: &mut [f64]) {
        match &self.taps {
            Taps::Weight(v) => v.read(o * out.len(), out),
            Taps::Diagonal(value) => out.fill(value[o]),
            Taps::Spread(v, scale) => {
                let taps = self.kh * self.kw;
                for (j, dst) in out.chunks_exact_mut(taps).enumerate() {
                    dst.fill(v.get(o * self.cin_g() + j) * scale);
                }
            }
        }
    }
}

/// `W[o] = Σ_i coef_i[o]·pad_K(expand_G(K_i))[o]`: each branch's window
/// placed at its offset in the `kh×kw` window, expanded block-diagonally
/// to `group` groups (every branch's group count a multiple of it), and
/// summed in branch order straight into the merged weight, stored in
/// `dtype`. Bit for bit what [`Kernel::accumulate`] of every branch into
/// a zero [`Kernel`] followed by [`Tensor::from_f64_as`] gives: every tap
/// starts at `+0.0` and gets `coef·v` added for each branch value `v` that
/// is not zero, in branch order; only one output channel's f64 values are
/// held at a time.
#[allow(clippy::too_many_arguments)]
pub fn combine(
    branches: &[(BranchKernel, &[f64], [usize; 2])],
    cout: usize,
    cin: usize,
    group: usize,
    kh: usize,
    kw: usize,
    dtype: DType,
) -> Tensor {
    let (cin_g, cout_g) = (cin / group, cout / group);
    let taps = kh * kw;
    let mut out = F64Sink::new(dtype, cout * cin_g * taps);
    let mut row = vec![0.0f64; cin_g * taps];
    let widest = branches
        .iter()
        .map(|(k, _, _)| k.cin_g() * k.kh * k.kw)
        .max()
        .unwrap_or(0);
    let mut src = vec![0.0f64; widest];
    for o in 0..cout {
        row.fill(0.0);
        // The first input channel of o's group, merged and per branch.
        let first = (o / cout_g) * cin_g;
        for (k, coef, off) in branches {
            // `accumulate` adds nothing to outputs past the coefficients.
            let Some(&c) = coef.get(o) else { continue };
            let n = k.cin_g() * k.kh * k.kw;
            let src = &mut src[..n];
            k.read_output(o, src);
            let j0 = (o / k.cout_g()) * k.cin_g() - first;
            if (k.kh, k.kw) == (kh, kw) {
                // Same window (offset 0): a contiguous run of the row.
                let dst = &mut row[j0 * taps..j0 * taps + n];
                for (d, &v) in dst.iter_mut().zip(src.iter()) {
                    *d += skip_zero(c, v);
                }
                continue;
            }
            for (lj, window) in src.chunks_exact(k.kh * k.kw).enumerate() {
                for y in 0..k.kh {
                    for x in 0..k.kw {
                        let v = window[y * k.kw + x];
                        let d = ((j0 + lj) * kh + off[0] + y) * kw + off[1] + x;
                        row[d] += skip_zero(c, v);
                    }
                }
            }
        }
        out.extend(&row);
    }
    out.finish("", &[cout as i64, cin_g as i64, kh as i64, kw as i64])
}

/// What `combine` adds to a tap for a branch value `v` of coefficient `c`:
/// `c·v`, or for `v = ±0` the addend that leaves every tap as it is. That
/// is `−0.0`: `t + (−0.0)` is `t` bit for bit for every `t` (`+0 + −0` is
/// `+0`, `−0 + −0` is `−0`, a NaN stays the NaN), where adding `c·0`
/// would not be (`−0 + 0` is `+0`; `inf·0` is NaN). The same bytes as
/// skipping the addition, as a select the loop vectorises, not a branch.
#[inline(always)]
fn skip_zero(c: f64, v: f64) -> f64 {
    if v != 0.0 {
        c * v
    } else {
        -0.0
    }
}

/// The Conv op for a merged window.
pub fn conv_op(geom: &Geometry, group: usize) -> Op {
    Op::Conv(npuopt_ir::op::Conv {
        window: Window {
            auto_pad: AutoPad::NotSet,
            kernel_shape: Some(vec![geom.kernel[0] as i64, geom.kernel[1] as i64]),
            strides: Some(geom.stride.to_vec()),
            pads: Some(geom.pads.to_vec()),
            dilations: Some(geom.dilation.to_vec()),
        },
        group: group as i64,
    })
}

/// A conv to be added: weight (already in its final form), bias, dtype to
/// store the bias in, window.
#[derive(Clone, Debug)]
pub struct NewConv {
    /// `[cout, cin/group, kh, kw]`, stored in `dtype`.
    pub weight: Tensor,
    pub cout: usize,
    /// Input channels of the whole conv (not per group).
    pub cin: usize,
    pub group: usize,
    pub bias: Vec<f64>,
    pub dtype: DType,
    pub geometry: Geometry,
}

impl NewConv {
    /// A conv whose weight was computed as an f64 [`Kernel`]: stored in
    /// `dtype`, rounded once.
    pub fn from_kernel(
        weight: Kernel,
        bias: Vec<f64>,
        dtype: DType,
        geometry: Geometry,
    ) -> NewConv {
        NewConv {
            weight: Tensor::from_f64_as("", dtype, &weight.dims(), &weight.data),
            cout: weight.cout,
            cin: weight.cin,
            group: weight.group,
            bias,
            dtype,
            geometry,
        }
    }

    /// False when every bias value is zero (`add_conv` then stores none).
    pub fn has_bias(&self) -> bool {
        self.bias.iter().any(|&b| b != 0.0)
    }
}

/// Adds a Conv node computing `conv(x)` near `near`, its weight and bias
/// as new initializers named after the node. Returns the node and its
/// output.
pub fn add_conv(
    g: &mut Graph,
    name: &str,
    x: ValueId,
    c: &NewConv,
    near: NodeId,
) -> (NodeId, ValueId) {
    let node_name = g.unique_node_name(name);
    let wv = g.add_initializer(&format!("{node_name}.weight"), c.weight.clone());
    // A bias of zeros is no bias: not stored (the model gets no heavier).
    let bv = c.has_bias().then(|| {
        g.add_initializer(
            &format!("{node_name}.bias"),
            Tensor::from_f64_as("", c.dtype, &[c.bias.len() as i64], &c.bias),
        )
    });
    let (id, outs) = g.add_node(
        &node_name,
        conv_op(&c.geometry, c.group),
        &[Some(x), Some(wv), bv][..if bv.is_some() { 3 } else { 2 }],
        &[&format!("{node_name}_output")],
        Some(near),
    );
    (id, outs[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(k: [usize; 2], pads: [i64; 4], s: i64) -> Geometry {
        Geometry {
            kernel: k,
            stride: [s, s],
            pads,
            dilation: [1, 1],
        }
    }

    #[test]
    fn repvgg_windows_are_centred() {
        let a = align(&[
            geom([3, 3], [1; 4], 1),
            geom([1, 1], [0; 4], 1),
            Geometry::point(),
        ])
        .unwrap();
        assert_eq!(a.merged.kernel, [3, 3]);
        assert_eq!(a.merged.pads, [1; 4]);
        assert_eq!(a.offsets, vec![[0, 0], [1, 1], [1, 1]]);
    }

    #[test]
    fn acnet_asymmetric_kernels_align_per_axis() {
        let a = align(&[
            geom([3, 3], [1; 4], 1),
            geom([1, 3], [0, 1, 0, 1], 1),
            geom([3, 1], [1, 0, 1, 0], 1),
        ])
        .unwrap();
        assert_eq!(a.offsets, vec![[0, 0], [1, 0], [0, 1]]);
    }

    #[test]
    fn misaligned_strided_and_dilated_windows_are_refused() {
        let e = align(&[geom([3, 3], [1; 4], 1), geom([3, 3], [0, 0, 2, 2], 1)]).unwrap_err();
        assert!(e.contains("different pads"), "{e}");
        let e = align(&[geom([3, 3], [1; 4], 1), geom([1, 1], [1; 4], 1)]).unwrap_err();
        assert!(e.contains("misaligned"), "{e}");
        let e = align(&[geom([3, 3], [1; 4], 2), geom([1, 1], [0; 4], 1)]).unwrap_err();
        assert!(e.contains("strides"), "{e}");
        let mut d = geom([3, 3], [2; 4], 1);
        d.dilation = [2, 2];
        assert!(align(&[d, geom([1, 1], [0; 4], 1)]).is_err());
    }

    #[test]
    fn into_scaled_is_bit_for_bit_the_sum_into_zeros() {
        // Zeros (both signs), a NaN, negative coefficients that make -0.0
        // products, and fewer coefficients than outputs.
        let k = Kernel {
            cout: 3,
            cin: 2,
            group: 1,
            kh: 1,
            kw: 2,
            data: vec![
                0.0,
                -0.0,
                1.5,
                -2.25,
                f64::NAN,
                1e-300,
                3.0,
                0.1,
                7.0,
                -7.0,
                0.0,
                1.0,
            ],
        };
        for coef in [vec![-1.0, 0.0, 1e300], vec![2.0, -0.0]] {
            let mut want = Kernel::zeros(3, 2, 1, 1, 2);
            want.accumulate(&k, &coef, 0, 0);
            let got = k.clone().into_scaled(&coef);
            let bits = |k: &Kernel| k.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "coef {coef:?}");
        }
    }

    /// `combine` against the dense f64 path it replaces — `accumulate` of
    /// every branch into a zero kernel (or `into_scaled` for a first branch
    /// of the merged shape), then `from_f64_as` — on random branches:
    /// every dtype, groups, windows at offsets, diagonals and spread 1×1
    /// convs, zeros of both signs and NaNs in weights and coefficients.
    #[test]
    fn combine_writes_the_bytes_of_the_dense_f64_sum() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let specials = [0.0, -0.0, f64::NAN, 1.0, -2.5];
        for case in 0..300 {
            let dtype = [DType::FLOAT, DType::FLOAT16, DType::BFLOAT16, DType::DOUBLE][case % 4];
            let c = [1usize, 2, 4, 6][next(4) as usize];
            let cin = if next(2) == 0 { c } else { c * 2 };
            let (kh, kw) = ([1usize, 3][next(2) as usize], [1usize, 3][next(2) as usize]);
            let value = |next: &mut dyn FnMut(u64) -> u64| -> f64 {
                match next(8) {
                    0 => specials[next(specials.len() as u64) as usize],
                    _ => (next(2001) as f64 - 1000.0) / 37.0,
                }
            };
            // Branches: (kind, group, kh, kw, offset).
            let mut tensors = Vec::new();
            let mut specs = Vec::new();
            for _ in 0..1 + next(3) {
                let kind = next(3);
                let (bkh, bkw) = ([1, kh][next(2) as usize], [1, kw][next(2) as usize]);
                let off = [
                    next((kh - bkh + 1) as u64) as usize,
                    next((kw - bkw + 1) as u64) as usize,
                ];
                let coef: Vec<f64> = (0..c).map(|_| value(&mut next)).collect();
                match kind {
                    1 if cin == c => specs.push((1, c, bkh, bkw, off, coef, 0.0)),
                    _ => {
                        let groups: Vec<usize> = (1..=c)
                            .filter(|g| c.is_multiple_of(*g) && cin.is_multiple_of(*g))
                            .collect();
                        let group = groups[next(groups.len() as u64) as usize];
                        let (th, tw) = if kind == 2 { (1, 1) } else { (bkh, bkw) };
                        let n = c * (cin / group) * th * tw;
                        let vals: Vec<f32> = (0..n).map(|_| value(&mut next) as f32).collect();
                        let dims = [c as i64, (cin / group) as i64, th as i64, tw as i64];
                        tensors.push(Tensor::from_f32_as("w", dtype, &dims, &vals));
                        let scale = if kind == 2 {
                            1.0 / (bkh * bkw) as f64
                        } else {
                            0.0
                        };
                        specs.push((
                            if kind == 2 { 2 } else { 0 },
                            group,
                            bkh,
                            bkw,
                            off,
                            coef,
                            scale,
                        ));
                    }
                }
            }
            let group = specs.iter().fold(c, |acc, s| gcd(acc, s.1));
            // The dense reference.
            let mut want = Kernel::zeros(c, cin, group, kh, kw);
            let mut t = tensors.iter();
            let mut dense = Vec::new();
            for (kind, g, bkh, bkw, off, coef, scale) in &specs {
                let k = match kind {
                    1 => Kernel::diagonal(c, c, *bkh, *bkw, &vec![coef[0].abs() + 0.5; c]),
                    2 => {
                        let w = t.next().unwrap().to_f64().unwrap();
                        let mut k = Kernel::zeros(c, cin, *g, *bkh, *bkw);
                        for o in 0..c {
                            for j in 0..cin / g {
                                for y in 0..*bkh {
                                    for x in 0..*bkw {
                                        let i = k.idx(o, j, y, x);
                                        k.data[i] = w[o * (cin / g) + j] * scale;
                                    }
                                }
                            }
                        }
                        k
                    }
                    _ => Kernel {
                        cout: c,
                        cin,
                        group: *g,
                        kh: *bkh,
                        kw: *bkw,
                        data: t.next().unwrap().to_f64().unwrap(),
                    },
                };
                if dense.is_empty() && (k.kh, k.kw, k.group) == (kh, kw, group) && case % 2 == 0 {
                    want = k.clone().into_scaled(coef);
                } else {
                    want.accumulate(&k, coef, off[0], off[1]);
                }
                dense.push(k);
            }
            let want = Tensor::from_f64_as("", dtype, &want.dims(), &want.data);
            // The streamed sum.
            let mut t = tensors.iter();
            let branches: Vec<(BranchKernel, &[f64], [usize; 2])> = specs
                .iter()
                .map(|(kind, g, bkh, bkw, off, coef, scale)| {
                    let k = match kind {
                        1 => BranchKernel::diagonal(*bkh, *bkw, vec![coef[0].abs() + 0.5; c]),
                        _ => {
                            let w = t.next().unwrap();
                            let v = ConvView {
                                cout: c,
                                cin,
                                group: *g,
                                kh: w.dims()[2] as usize,
                                kw: w.dims()[3] as usize,
                                values: w.float_view().unwrap(),
                                bias: vec![0.0; c],
                                has_bias: false,
                                dtype,
                                geometry: Geometry::point(),
                            };
                            if *kind == 2 {
                                BranchKernel::spread(v, *bkh, *bkw, *scale)
                            } else {
                                BranchKernel::weight(v)
                            }
                        }
                    };
                    (k, coef.as_slice(), *off)
                })
                .collect();
            let got = combine(&branches, c, cin, group, kh, kw, dtype);
            assert_eq!(got.dtype(), want.dtype(), "case {case}");
            assert_eq!(got.dims(), want.dims(), "case {case}");
            assert_eq!(
                got.proto().raw_data,
                want.proto().raw_data,
                "case {case}: {specs:?}"
            );
        }
    }

    #[test]
    fn regroup_is_block_diagonal() {
        // Depthwise 2 channels, 1×1, weights 2 and 3 → dense 2×2 diag.
        let k = Kernel {
            cout: 2,
            cin: 2,
            group: 2,
            kh: 1,
            kw: 1,
            data: vec![2.0, 3.0],
        };
        let d = k.regroup(1);
        assert_eq!(d.data, vec![2.0, 0.0, 0.0, 3.0]);
        let id = Kernel::diagonal(4, 2, 1, 1, &[1.0; 4]);
        assert_eq!(id.data, vec![1., 0., 0., 1., 1., 0., 0., 1.]);
    }
}
