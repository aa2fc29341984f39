//! A linear layer's constant weight seen by channel: which weights make
//! output channel `i`, and which weights read input channel `j`.
//!
//! Conv, Gemm and MatMul store their weights in different layouts; the
//! rewrites that scale channels (`equalize-ranges`) and the quantization
//! view (`quant_stats`) need one view of them:
//!
//! | op | weight | output channel `i` | input channel `j` |
//! |---|---|---|---|
//! | Conv, `G` groups | `W[Cout, Cin/G, k…]` | `W[i, :, …]` | `W[o, j mod Cin/G, …]` for the `o` of `j`'s group |
//! | Gemm, transB = 0 | `B[K, N]` | column `B[:, i]` | row `B[j, :]` |
//! | Gemm, transB = 1 | `B[N, K]` | row `B[i, :]` | column `B[:, j]` |
//! | MatMul `x·W` | `W[K, N]` | column `W[:, i]` | row `W[j, :]` |
//!
//! The bias (Conv's third input, Gemm's `C`, or the `[N]` constant of the
//! `Add` right after a MatMul) is per output channel. Values are read as
//! f64 and written back in the weight's own dtype.

use npuopt_ir::{DType, Graph, NodeId, Op, ValueId};

use crate::rewrite::{const_f64, owned_initializer, set_constant_input};

/// Where a layer's bias lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BiasSlot {
    /// No bias.
    None,
    /// An input of the layer's own node (Conv slot 2, Gemm slot 2).
    Input(usize),
    /// The constant operand (slot given) of an `Add` node after a MatMul.
    AddAfter(NodeId, usize),
}

impl BiasSlot {
    /// Input `slot` when the layer has a bias there.
    fn input_if(bias: &Option<Vec<f64>>, slot: usize) -> BiasSlot {
        if bias.is_some() {
            BiasSlot::Input(slot)
        } else {
            BiasSlot::None
        }
    }
}

/// The weight layout, by op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[Cout, Cin/G, taps…]`, `taps` the product of the kernel dims.
    Conv { group: usize, taps: usize },
    /// `[K, N]`: Gemm with transB = 0, or MatMul.
    KN,
    /// `[N, K]`: Gemm with transB = 1.
    NK,
}

impl Layout {
    /// The output channel of the weight at flat index `k` of `numel`, for
    /// a layer of `out` output and `inp` input channels.
    pub fn out_channel_of(self, k: usize, numel: usize, out: usize, inp: usize) -> usize {
        match self {
            Layout::Conv { .. } => k / (numel / out.max(1)).max(1),
            Layout::KN => k % out.max(1),
            Layout::NK => k / inp.max(1),
        }
    }
}

/// A linear layer's weight seen without its values: which constant it is,
/// its layout and its channel counts. The quantization view streams the
/// values through [`LayerShape::out_channel_of`] rather than copying them.
#[derive(Clone, Debug)]
pub struct LayerShape {
    pub layout: Layout,
    pub out_channels: usize,
    pub in_channels: usize,
    pub weight: ValueId,
    pub weight_dims: Vec<i64>,
    pub dtype: DType,
}

impl LayerShape {
    /// Reads `id` as a Conv, Gemm or MatMul with a float constant weight;
    /// `Err` says why it is not one.
    pub fn read(g: &Graph, id: NodeId) -> Result<LayerShape, String> {
        let n = g.node(id);
        let weight = n.input(1).ok_or("it has no weight input")?;
        let t = g.constant(weight).ok_or("its weight is not a constant")?;
        if !t.dtype().is_float() {
            return Err(format!("its weight is {}, not a float type", t.dtype()));
        }
        let dims = t.dims().to_vec();
        let dtype = t.dtype();
        let shape = |layout, out_channels, in_channels, weight_dims| LayerShape {
            layout,
            out_channels,
            in_channels,
            weight,
            weight_dims,
            dtype,
        };
        match n.op() {
            Op::Conv(c) => {
                if dims.len() < 3 {
                    return Err(format!("its weight has rank {}", dims.len()));
                }
                let group = usize::try_from(c.group.max(1)).map_err(|_| "bad group")?;
                let cout = dims[0] as usize;
                let cin_g = dims[1] as usize;
                if cout == 0 || !cout.is_multiple_of(group) {
                    return Err("its output channels do not split into its groups".into());
                }
                let taps = dims[2..].iter().product::<i64>() as usize;
                Ok(shape(
                    Layout::Conv { group, taps },
                    cout,
                    cin_g * group,
                    dims,
                ))
            }
            Op::Gemm(gemm) => {
                if gemm.trans_a {
                    return Err("it has transA = 1".into());
                }
                // The stored B and C must be exactly the layer's W and b:
                // scaling them then scales the layer.
                if gemm.alpha != 1.0 || (n.input(2).is_some() && gemm.beta != 1.0) {
                    return Err(format!(
                        "it has alpha = {}, beta = {} (only 1 is read)",
                        gemm.alpha, gemm.beta
                    ));
                }
                if dims.len() != 2 {
                    return Err("its B is not 2-D".into());
                }
                let (d0, d1) = (dims[0] as usize, dims[1] as usize);
                Ok(if gemm.trans_b {
                    shape(Layout::NK, d0, d1, dims)
                } else {
                    shape(Layout::KN, d1, d0, dims)
                })
            }
            Op::MatMul => {
                if dims.len() != 2 {
                    return Err("its weight is not 2-D".into());
                }
                let (k, n_out) = (dims[0] as usize, dims[1] as usize);
                Ok(shape(Layout::KN, n_out, k, dims))
            }
            _ => Err(format!("'{}' is not a Conv, Gemm or MatMul", n.op_type())),
        }
    }

    /// The output channel of the weight at flat index `k`, of `numel`.
    pub fn out_channel_of(&self, k: usize, numel: usize) -> usize {
        self.layout
            .out_channel_of(k, numel, self.out_channels, self.in_channels)
    }
}

/// A layer's weights and bias in f64, with their channel layout.
#[derive(Clone, Debug)]
pub struct LinearLayer {
    pub node: NodeId,
    /// The node whose output is the layer's result: the layer itself, or
    /// the bias `Add` after a MatMul.
    pub output_node: NodeId,
    pub layout: Layout,
    pub out_channels: usize,
    pub in_channels: usize,
    pub weight: Vec<f64>,
    pub weight_dims: Vec<i64>,
    pub bias: Option<Vec<f64>>,
    pub bias_slot: BiasSlot,
    pub dtype: DType,
}

impl LinearLayer {
    /// Reads `id` as a linear layer whose weight is a float constant (a
    /// MatMul's bias `Add`, when it has one, is part of the layer). `Err`
    /// says why it is not one.
    pub fn read(g: &Graph, id: NodeId) -> Result<LinearLayer, String> {
        let shape = LayerShape::read(g, id)?;
        let weight = const_f64(g, shape.weight).ok_or("its weight cannot be read")?;
        let mut layer = LinearLayer {
            node: id,
            output_node: id,
            layout: shape.layout,
            out_channels: shape.out_channels,
            in_channels: shape.in_channels,
            weight,
            weight_dims: shape.weight_dims,
            bias: None,
            bias_slot: BiasSlot::None,
            dtype: shape.dtype,
        };
        match g.node(id).op() {
            Op::Conv(_) => {
                layer.bias = read_bias(g, id, 2, layer.out_channels)?;
                layer.bias_slot = BiasSlot::input_if(&layer.bias, 2);
            }
            Op::Gemm(_) => {
                layer.bias = read_gemm_bias(g, id, layer.out_channels)?;
                layer.bias_slot = BiasSlot::input_if(&layer.bias, 2);
            }
            _ => {
                if let Some((add, slot, b)) = matmul_bias_add(g, id, layer.out_channels) {
                    layer.output_node = add;
                    layer.bias = Some(b);
                    layer.bias_slot = BiasSlot::AddAfter(add, slot);
                }
            }
        }
        Ok(layer)
    }
    /// True when the node owns its weight and bias tensors (no other node
    /// reads them), so scaling them in place changes nothing else.
    pub fn owns_parameters(&self, g: &Graph) -> bool {
        let owns = |node: NodeId, slot: usize| {
            g.node(node)
                .input(slot)
                .is_none_or(|v| owned_initializer(g, v, node))
        };
        owns(self.node, 1)
            && match self.bias_slot {
                BiasSlot::None => true,
                BiasSlot::Input(s) => owns(self.node, s),
                BiasSlot::AddAfter(add, s) => owns(add, s),
            }
    }

    /// Calls `f` with the flat index of every weight of output channel `i`.
    pub fn for_each_out(&self, i: usize, mut f: impl FnMut(usize)) {
        match self.layout {
            Layout::Conv { .. } => {
                let per = self.weight.len() / self.out_channels;
                (i * per..(i + 1) * per).for_each(f);
            }
            Layout::KN => (0..self.in_channels).for_each(|k| f(k * self.out_channels + i)),
            Layout::NK => (i * self.in_channels..(i + 1) * self.in_channels).for_each(f),
        }
    }

    /// Calls `f` with the flat index of every weight that reads input
    /// channel `j`.
    pub fn for_each_in(&self, j: usize, mut f: impl FnMut(usize)) {
        match self.layout {
            Layout::Conv { group, taps } => {
                let cin_g = self.in_channels / group;
                let cout_g = self.out_channels / group;
                let (grp, local) = (j / cin_g, j % cin_g);
                for o in grp * cout_g..(grp + 1) * cout_g {
                    let start = (o * cin_g + local) * taps;
                    (start..start + taps).for_each(&mut f);
                }
            }
            Layout::KN => (j * self.out_channels..(j + 1) * self.out_channels).for_each(f),
            Layout::NK => (0..self.out_channels).for_each(|n| f(n * self.in_channels + j)),
        }
    }

    /// `max |w|` over output channel `i`'s weights.
    pub fn out_range(&self, i: usize) -> f64 {
        let mut r = 0.0f64;
        self.for_each_out(i, |k| r = r.max(self.weight[k].abs()));
        r
    }

    /// `max |w|` over the weights reading input channel `j`.
    pub fn in_range(&self, j: usize) -> f64 {
        let mut r = 0.0f64;
        self.for_each_in(j, |k| r = r.max(self.weight[k].abs()));
        r
    }

    /// Multiplies output channel `i` (weights and bias) by `s`.
    pub fn scale_out(&mut self, i: usize, s: f64) {
        let w = &mut self.weight;
        match self.layout {
            Layout::Conv { .. } => {
                let per = w.len() / self.out_channels;
                w[i * per..(i + 1) * per].iter_mut().for_each(|v| *v *= s);
            }
            Layout::KN => {
                for k in 0..self.in_channels {
                    w[k * self.out_channels + i] *= s;
                }
            }
            Layout::NK => w[i * self.in_channels..(i + 1) * self.in_channels]
                .iter_mut()
                .for_each(|v| *v *= s),
        }
        if let Some(b) = &mut self.bias {
            b[i] *= s;
        }
    }

    /// Multiplies the weights reading input channel `j` by `s`.
    pub fn scale_in(&mut self, j: usize, s: f64) {
        let (w, n_out, n_in) = (&mut self.weight, self.out_channels, self.in_channels);
        match self.layout {
            Layout::Conv { group, taps } => {
                let (cin_g, cout_g) = (n_in / group, n_out / group);
                let (grp, local) = (j / cin_g, j % cin_g);
                for o in grp * cout_g..(grp + 1) * cout_g {
                    let start = (o * cin_g + local) * taps;
                    w[start..start + taps].iter_mut().for_each(|v| *v *= s);
                }
            }
            Layout::KN => w[j * n_out..(j + 1) * n_out]
                .iter_mut()
                .for_each(|v| *v *= s),
            Layout::NK => {
                for n in 0..n_out {
                    w[n * n_in + j] *= s;
                }
            }
        }
    }

    /// Writes the weight and bias back into the graph, in their dtype.
    pub fn write(&self, g: &mut Graph) {
        let name = g.node(self.node).name().to_string();
        set_constant_input(
            g,
            self.node,
            1,
            &format!("{name}.weight"),
            self.dtype,
            &self.weight_dims,
            &self.weight,
        );
        let Some(b) = &self.bias else { return };
        let (node, slot) = match self.bias_slot {
            BiasSlot::None => return,
            BiasSlot::Input(s) => (self.node, s),
            BiasSlot::AddAfter(add, s) => (add, s),
        };
        // The bias keeps its stored dims (`[N]`, `[1, N]`, `[1, …, N]`)
        // and dtype: it was read only when it holds one value per channel.
        let (dims, dtype) = g
            .node(node)
            .input(slot)
            .and_then(|v| g.constant(v))
            .map(|t| (t.dims().to_vec(), t.dtype()))
            .unwrap_or_else(|| (vec![b.len() as i64], self.dtype));
        set_constant_input(g, node, slot, &format!("{name}.bias"), dtype, &dims, b);
    }
}

fn read_bias(g: &Graph, id: NodeId, slot: usize, n: usize) -> Result<Option<Vec<f64>>, String> {
    let Some(v) = g.node(id).input(slot) else {
        return Ok(None);
    };
    let b = const_f64(g, v).ok_or("its bias is not a float constant")?;
    if b.len() != n {
        return Err(format!("its bias has {} values, expected {n}", b.len()));
    }
    Ok(Some(b))
}

/// Gemm's `C` as one value per output column: a `[N]` or `[1, N]` constant.
/// A scalar or `[M, N]` C is not per channel.
fn read_gemm_bias(g: &Graph, id: NodeId, n: usize) -> Result<Option<Vec<f64>>, String> {
    let Some(v) = g.node(id).input(2) else {
        return Ok(None);
    };
    let t = g.constant(v).ok_or("its C is not a constant")?;
    let dims = t.dims();
    let per_column =
        matches!(dims, [d] if *d as usize == n) || matches!(dims, [1, d] if *d as usize == n);
    if !per_column {
        return Err(format!("its C has dims {dims:?}, not one value per column"));
    }
    let b = const_f64(g, v).ok_or("its C is not a float constant")?;
    Ok(Some(b))
}

/// The `Add` of a `[N]` (or `[1…, N]`) float constant that reads a MatMul's
/// output and nothing else does: the MatMul's bias.
fn matmul_bias_add(g: &Graph, mm: NodeId, n: usize) -> Option<(NodeId, usize, Vec<f64>)> {
    let out = g.node(mm).output(0)?;
    let add = crate::rewrite::single_consumer(g, out)?;
    if !matches!(g.node(add).op(), Op::Add(_)) {
        return None;
    }
    let a = g.node(add);
    let slot = if a.input(0) == Some(out) { 1 } else { 0 };
    let c = a.input(slot)?;
    let t = g.constant(c)?;
    let dims = t.dims();
    if dims.last().copied() != Some(n as i64) || dims[..dims.len() - 1].iter().any(|&d| d != 1) {
        return None;
    }
    // The bias must not broadcast the output to a higher rank.
    let out_rank = g.ty(out).and_then(|t| t.rank())?;
    if dims.len() > out_rank {
        return None;
    }
    Some((add, slot, const_f64(g, c)?))
}
