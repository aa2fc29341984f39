//! Typed views of the operators the passes reason about.
//!
//! A node's attribute list stays the lossless store (see [`crate::Node`]);
//! [`Op`] is parsed from it on import and regenerated into it only when a
//! pass sets a new op. Anything not listed here, and any standard op carrying
//! an attribute we do not model, is [`Op::Other`]: carried byte for byte and
//! never touched by a rewrite.

use crate::attr::{self, Attrs};
use crate::proto::{AttributeProto, TensorProto};

/// `auto_pad` of convs and pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AutoPad {
    #[default]
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

impl AutoPad {
    fn parse(s: Option<String>) -> Result<AutoPad, String> {
        Ok(match s.as_deref() {
            None | Some("NOTSET") | Some("") => AutoPad::NotSet,
            Some("SAME_UPPER") => AutoPad::SameUpper,
            Some("SAME_LOWER") => AutoPad::SameLower,
            Some("VALID") => AutoPad::Valid,
            Some(o) => return Err(format!("unknown auto_pad '{o}'")),
        })
    }
    fn as_str(self) -> &'static str {
        match self {
            AutoPad::NotSet => "NOTSET",
            AutoPad::SameUpper => "SAME_UPPER",
            AutoPad::SameLower => "SAME_LOWER",
            AutoPad::Valid => "VALID",
        }
    }
}

/// Window geometry shared by Conv, ConvTranspose and the pools. Absent
/// attributes stay `None` so that defaults, which depend on the input's rank,
/// are resolved by the accessors.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Window {
    pub auto_pad: AutoPad,
    pub kernel_shape: Option<Vec<i64>>,
    pub strides: Option<Vec<i64>>,
    pub pads: Option<Vec<i64>>,
    pub dilations: Option<Vec<i64>>,
}

impl Window {
    pub(crate) fn parse(a: &Attrs) -> Result<Window, String> {
        let w = Window {
            auto_pad: AutoPad::parse(a.string("auto_pad")?)?,
            kernel_shape: a.ints("kernel_shape")?,
            strides: a.ints("strides")?,
            pads: a.ints("pads")?,
            dilations: a.ints("dilations")?,
        };
        // The spec requires these positive (pads non-negative); a pass that
        // divides by a stride must be able to rely on it.
        for (name, values, min) in [
            ("kernel_shape", &w.kernel_shape, 1),
            ("strides", &w.strides, 1),
            ("dilations", &w.dilations, 1),
            ("pads", &w.pads, 0),
        ] {
            if let Some(bad) = values.iter().flatten().find(|&&v| v < min) {
                return Err(format!("attribute '{name}' has {bad}, must be ≥ {min}"));
            }
        }
        Ok(w)
    }

    fn emit(&self, out: &mut Vec<AttributeProto>) {
        if self.auto_pad != AutoPad::NotSet {
            out.push(attr::string("auto_pad", self.auto_pad.as_str()));
        }
        if let Some(v) = &self.dilations {
            out.push(attr::ints("dilations", v));
        }
        if let Some(v) = &self.kernel_shape {
            out.push(attr::ints("kernel_shape", v));
        }
        if let Some(v) = &self.pads {
            out.push(attr::ints("pads", v));
        }
        if let Some(v) = &self.strides {
            out.push(attr::ints("strides", v));
        }
    }

    /// Strides for `n` spatial dims (default 1).
    pub fn strides(&self, n: usize) -> Vec<i64> {
        self.strides.clone().unwrap_or_else(|| vec![1; n])
    }

    pub fn dilations(&self, n: usize) -> Vec<i64> {
        self.dilations.clone().unwrap_or_else(|| vec![1; n])
    }

    /// Explicit pads `[begin…, end…]` (default 0); meaningless unless
    /// `auto_pad` is NOTSET.
    pub fn pads(&self, n: usize) -> Vec<i64> {
        self.pads.clone().unwrap_or_else(|| vec![0; 2 * n])
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub window: Window,
    pub group: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConvTranspose {
    pub window: Window,
    pub group: i64,
    pub output_padding: Option<Vec<i64>>,
    pub output_shape: Option<Vec<i64>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    pub epsilon: f32,
    pub momentum: Option<f32>,
    /// opset 14+: 1 means the node computes batch statistics.
    pub training_mode: Option<i64>,
    /// opset < 9: 0 means statistics per (C, H, W) element, not per channel.
    pub spatial: Option<i64>,
    /// opset < 7: 0 means training.
    pub is_test: Option<i64>,
}

impl BatchNorm {
    /// True when the node normalises with its stored statistics, per channel:
    /// the only form that is a per-channel affine map and may be folded.
    /// `opset` is the model's default-domain version: before opset 7 a BN
    /// without `is_test=1` is in training mode.
    pub fn is_inference_per_channel(&self, opset: i64) -> bool {
        let default_is_test = if opset < 7 { 0 } else { 1 };
        self.training_mode.unwrap_or(0) == 0
            && self.spatial.unwrap_or(1) == 1
            && self.is_test.unwrap_or(default_is_test) != 0
    }

    /// Why this BN is not a per-channel affine map at inference, if it isn't.
    pub fn why_not_inference(&self, opset: i64) -> Option<&'static str> {
        if self.training_mode.unwrap_or(0) != 0 {
            Some("training_mode=1: it computes batch statistics")
        } else if self.spatial.unwrap_or(1) != 1 {
            Some("spatial=0: statistics per element, not per channel")
        } else if !self.is_inference_per_channel(opset) {
            Some("is_test is not set: an opset < 7 BN in training mode")
        } else {
            None
        }
    }
}

/// Element-wise binary ops; opsets < 7 broadcast only with `broadcast=1`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Binary {
    pub broadcast: Option<i64>,
    pub axis: Option<i64>,
}

impl Binary {
    /// True when the op uses numpy broadcasting (opset ≥ 7 or legacy
    /// `broadcast=1` without an axis).
    pub fn is_numpy_broadcast(&self, opset: i64) -> bool {
        opset >= 7 || (self.broadcast == Some(1) && self.axis.is_none())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub window: Window,
    pub ceil_mode: i64,
    /// AveragePool only.
    pub count_include_pad: i64,
    /// MaxPool only.
    pub storage_order: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
    pub broadcast: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Clip {
    /// opset < 11: the bounds are attributes; later they are inputs.
    pub min: Option<f32>,
    pub max: Option<f32>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Split {
    pub axis: i64,
    /// opset < 13: split sizes as an attribute.
    pub split: Option<Vec<i64>>,
    pub num_outputs: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Slice {
    /// opset < 10: starts/ends/axes as attributes; later they are inputs.
    pub starts: Option<Vec<i64>>,
    pub ends: Option<Vec<i64>>,
    pub axes: Option<Vec<i64>>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Reshape {
    pub allowzero: i64,
    /// opset < 5: the shape as an attribute.
    pub shape: Option<Vec<i64>>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Dropout {
    pub ratio: Option<f32>,
    pub is_test: Option<i64>,
    pub seed: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Pad {
    pub mode: String,
    /// opset < 11: pads and value as attributes.
    pub pads: Option<Vec<i64>>,
    pub value: Option<f32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    /// The one attribute that holds the value (`value`, `value_float`, …).
    pub value: AttributeProto,
}

impl Constant {
    /// The constant as a tensor, whichever attribute holds it.
    pub fn tensor(&self) -> Option<TensorProto> {
        use crate::tensor::Tensor;
        let a = &self.value;
        match a.name.as_deref()? {
            "value" => a.t.as_deref().cloned(),
            "value_float" => Some(Tensor::from_f32("", &[], &[a.f?]).into_proto()),
            "value_floats" => {
                Some(Tensor::from_f32("", &[a.floats.len() as i64], &a.floats).into_proto())
            }
            "value_int" => Some(Tensor::from_i64("", &[], &[a.i?]).into_proto()),
            "value_ints" => {
                Some(Tensor::from_i64("", &[a.ints.len() as i64], &a.ints).into_proto())
            }
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Conv(Conv),
    /// Boxed, as are the pools: the largest variants, rarer than Conv, and
    /// every node holds an `Op` (160 bytes with them inline, 112 boxed).
    ConvTranspose(Box<ConvTranspose>),
    BatchNormalization(BatchNorm),
    Add(Binary),
    Sub(Binary),
    Mul(Binary),
    Div(Binary),
    Sum,
    Concat {
        axis: i64,
    },
    Split(Split),
    Slice(Slice),
    Relu,
    Sigmoid,
    HardSwish,
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    Clip(Clip),
    MaxPool(Box<Pool>),
    AveragePool(Box<Pool>),
    GlobalAveragePool,
    Gemm(Gemm),
    MatMul,
    Flatten {
        axis: i64,
    },
    Reshape(Reshape),
    Transpose {
        perm: Option<Vec<i64>>,
    },
    Identity,
    Dropout(Dropout),
    /// Boxed: an `AttributeProto` is large.
    Constant(Box<Constant>),
    Pad(Pad),
    /// Anything else: kept opaque.
    Other,
}

/// Legacy attribute of opset-1 ops with no meaning at inference.
const CONSUMED: &str = "consumed_inputs";

impl Op {
    /// Parses the typed view of a node. `opset` is the model's version of the
    /// default domain. Unknown op types, other domains, and standard ops with
    /// attributes we do not model give [`Op::Other`]; an attribute of the
    /// wrong type is an error.
    pub fn parse(domain: &str, op_type: &str, attrs: &[AttributeProto]) -> Result<Op, String> {
        if !(domain.is_empty() || domain == "ai.onnx") {
            return Ok(Op::Other);
        }
        let a = Attrs(attrs);
        let known = |names: &[&str]| -> bool {
            a.unknown(names).is_none() && attrs.iter().all(|x| x.ref_attr_name.is_none())
        };
        macro_rules! only {
            ($($n:expr),* $(,)?) => {
                if !known(&[CONSUMED, $($n),*]) {
                    return Ok(Op::Other);
                }
            };
        }
        let op = match op_type {
            "Conv" => {
                only!(
                    "auto_pad",
                    "kernel_shape",
                    "strides",
                    "pads",
                    "dilations",
                    "group"
                );
                Op::Conv(Conv {
                    window: Window::parse(&a)?,
                    group: a.int("group")?.unwrap_or(1),
                })
            }
            "ConvTranspose" => {
                only!(
                    "auto_pad",
                    "kernel_shape",
                    "strides",
                    "pads",
                    "dilations",
                    "group",
                    "output_padding",
                    "output_shape"
                );
                Op::ConvTranspose(Box::new(ConvTranspose {
                    window: Window::parse(&a)?,
                    group: a.int("group")?.unwrap_or(1),
                    output_padding: a.ints("output_padding")?,
                    output_shape: a.ints("output_shape")?,
                }))
            }
            "BatchNormalization" => {
                only!("epsilon", "momentum", "training_mode", "spatial", "is_test");
                Op::BatchNormalization(BatchNorm {
                    epsilon: a.float("epsilon")?.unwrap_or(1e-5),
                    momentum: a.float("momentum")?,
                    training_mode: a.int("training_mode")?,
                    spatial: a.int("spatial")?,
                    is_test: a.int("is_test")?,
                })
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                only!("broadcast", "axis");
                let b = Binary {
                    broadcast: a.int("broadcast")?,
                    axis: a.int("axis")?,
                };
                match op_type {
                    "Add" => Op::Add(b),
                    "Sub" => Op::Sub(b),
                    "Mul" => Op::Mul(b),
                    _ => Op::Div(b),
                }
            }
            "Sum" => {
                only!();
                Op::Sum
            }
            "Concat" => {
                only!("axis");
                Op::Concat {
                    axis: a.int("axis")?.unwrap_or(1),
                }
            }
            "Split" => {
                only!("axis", "split", "num_outputs");
                Op::Split(Split {
                    axis: a.int("axis")?.unwrap_or(0),
                    split: a.ints("split")?,
                    num_outputs: a.int("num_outputs")?,
                })
            }
            "Slice" => {
                only!("starts", "ends", "axes");
                Op::Slice(Slice {
                    starts: a.ints("starts")?,
                    ends: a.ints("ends")?,
                    axes: a.ints("axes")?,
                })
            }
            "Relu" => {
                only!();
                Op::Relu
            }
            "Sigmoid" => {
                only!();
                Op::Sigmoid
            }
            "HardSwish" => {
                only!();
                Op::HardSwish
            }
            "HardSigmoid" => {
                only!("alpha", "beta");
                Op::HardSigmoid {
                    alpha: a.float("alpha")?.unwrap_or(0.2),
                    beta: a.float("beta")?.unwrap_or(0.5),
                }
            }
            "Clip" => {
                only!("min", "max");
                Op::Clip(Clip {
                    min: a.float("min")?,
                    max: a.float("max")?,
                })
            }
            "MaxPool" | "AveragePool" => {
                only!(
                    "auto_pad",
                    "kernel_shape",
                    "strides",
                    "pads",
                    "dilations",
                    "ceil_mode",
                    "count_include_pad",
                    "storage_order"
                );
                let p = Pool {
                    window: Window::parse(&a)?,
                    ceil_mode: a.int("ceil_mode")?.unwrap_or(0),
                    count_include_pad: a.int("count_include_pad")?.unwrap_or(0),
                    storage_order: a.int("storage_order")?,
                };
                if p.window.kernel_shape.is_none() {
                    return Err("attribute 'kernel_shape' is required".into());
                }
                if op_type == "MaxPool" {
                    Op::MaxPool(Box::new(p))
                } else {
                    Op::AveragePool(Box::new(p))
                }
            }
            "GlobalAveragePool" => {
                only!();
                Op::GlobalAveragePool
            }
            "Gemm" => {
                only!("alpha", "beta", "transA", "transB", "broadcast");
                Op::Gemm(Gemm {
                    alpha: a.float("alpha")?.unwrap_or(1.0),
                    beta: a.float("beta")?.unwrap_or(1.0),
                    trans_a: a.int("transA")?.unwrap_or(0) != 0,
                    trans_b: a.int("transB")?.unwrap_or(0) != 0,
                    broadcast: a.int("broadcast")?,
                })
            }
            "MatMul" => {
                only!();
                Op::MatMul
            }
            "Flatten" => {
                only!("axis");
                Op::Flatten {
                    axis: a.int("axis")?.unwrap_or(1),
                }
            }
            "Reshape" => {
                only!("allowzero", "shape");
                Op::Reshape(Reshape {
                    allowzero: a.int("allowzero")?.unwrap_or(0),
                    shape: a.ints("shape")?,
                })
            }
            "Transpose" => {
                only!("perm");
                Op::Transpose {
                    perm: a.ints("perm")?,
                }
            }
            "Identity" => {
                only!();
                Op::Identity
            }
            "Dropout" => {
                only!("ratio", "is_test", "seed");
                Op::Dropout(Dropout {
                    ratio: a.float("ratio")?,
                    is_test: a.int("is_test")?,
                    seed: a.int("seed")?,
                })
            }
            "Constant" => {
                if attrs.len() != 1 || attrs[0].ref_attr_name.is_some() {
                    return Ok(Op::Other);
                }
                Op::Constant(Box::new(Constant {
                    value: attrs[0].clone(),
                }))
            }
            "Pad" => {
                only!("mode", "pads", "value");
                Op::Pad(Pad {
                    mode: a.string("mode")?.unwrap_or_else(|| "constant".into()),
                    pads: a.ints("pads")?,
                    value: a.float("value")?,
                })
            }
            _ => Op::Other,
        };
        Ok(op)
    }

    /// The ONNX op type; `None` for [`Op::Other`], whose type lives in the node.
    pub fn op_type(&self) -> Option<&'static str> {
        Some(match self {
            Op::Conv(_) => "Conv",
            Op::ConvTranspose(_) => "ConvTranspose",
            Op::BatchNormalization(_) => "BatchNormalization",
            Op::Add(_) => "Add",
            Op::Sub(_) => "Sub",
            Op::Mul(_) => "Mul",
            Op::Div(_) => "Div",
            Op::Sum => "Sum",
            Op::Concat { .. } => "Concat",
            Op::Split(_) => "Split",
            Op::Slice(_) => "Slice",
            Op::Relu => "Relu",
            Op::Sigmoid => "Sigmoid",
            Op::HardSwish => "HardSwish",
            Op::HardSigmoid { .. } => "HardSigmoid",
            Op::Clip(_) => "Clip",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(_) => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::Gemm(_) => "Gemm",
            Op::MatMul => "MatMul",
            Op::Flatten { .. } => "Flatten",
            Op::Reshape(_) => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Identity => "Identity",
            Op::Dropout(_) => "Dropout",
            Op::Constant(_) => "Constant",
            Op::Pad(_) => "Pad",
            Op::Other => return None,
        })
    }

    /// The attributes that express this op, in name order (as exporters
    /// write them). Used only when a pass sets a new op on a node.
    pub fn to_attributes(&self) -> Vec<AttributeProto> {
        let mut out = Vec::new();
        match self {
            Op::Conv(c) => {
                c.window.emit(&mut out);
                out.push(attr::int("group", c.group));
            }
            Op::ConvTranspose(c) => {
                c.window.emit(&mut out);
                out.push(attr::int("group", c.group));
                if let Some(v) = &c.output_padding {
                    out.push(attr::ints("output_padding", v));
                }
                if let Some(v) = &c.output_shape {
                    out.push(attr::ints("output_shape", v));
                }
            }
            Op::BatchNormalization(b) => {
                out.push(attr::float("epsilon", b.epsilon));
                if let Some(m) = b.momentum {
                    out.push(attr::float("momentum", m));
                }
                if let Some(v) = b.training_mode {
                    out.push(attr::int("training_mode", v));
                }
                if let Some(v) = b.spatial {
                    out.push(attr::int("spatial", v));
                }
                if let Some(v) = b.is_test {
                    out.push(attr::int("is_test", v));
                }
            }
            Op::Add(b) | Op::Sub(b) | Op::Mul(b) | Op::Div(b) => {
                if let Some(v) = b.axis {
                    out.push(attr::int("axis", v));
                }
                if let Some(v) = b.broadcast {
                    out.push(attr::int("broadcast", v));
                }
            }
            Op::Concat { axis } | Op::Flatten { axis } => out.push(attr::int("axis", *axis)),
            Op::Split(s) => {
                out.push(attr::int("axis", s.axis));
                if let Some(n) = s.num_outputs {
                    out.push(attr::int("num_outputs", n));
                }
                if let Some(v) = &s.split {
                    out.push(attr::ints("split", v));
                }
            }
            Op::Slice(s) => {
                if let Some(v) = &s.axes {
                    out.push(attr::ints("axes", v));
                }
                if let Some(v) = &s.ends {
                    out.push(attr::ints("ends", v));
                }
                if let Some(v) = &s.starts {
                    out.push(attr::ints("starts", v));
                }
            }
            Op::HardSigmoid { alpha, beta } => {
                out.push(attr::float("alpha", *alpha));
                out.push(attr::float("beta", *beta));
            }
            Op::Clip(c) => {
                if let Some(v) = c.max {
                    out.push(attr::float("max", v));
                }
                if let Some(v) = c.min {
                    out.push(attr::float("min", v));
                }
            }
            Op::MaxPool(p) | Op::AveragePool(p) => {
                p.window.emit(&mut out);
                if p.ceil_mode != 0 {
                    out.push(attr::int("ceil_mode", p.ceil_mode));
                }
                if matches!(self, Op::AveragePool(_)) && p.count_include_pad != 0 {
                    out.push(attr::int("count_include_pad", p.count_include_pad));
                }
                if let Some(v) = p.storage_order {
                    out.push(attr::int("storage_order", v));
                }
                out.sort_by(|a, b| a.name.cmp(&b.name));
            }
            Op::Gemm(g) => {
                out.push(attr::float("alpha", g.alpha));
                out.push(attr::float("beta", g.beta));
                if let Some(v) = g.broadcast {
                    out.push(attr::int("broadcast", v));
                }
                out.push(attr::int("transA", g.trans_a as i64));
                out.push(attr::int("transB", g.trans_b as i64));
            }
            Op::Reshape(r) => {
                if r.allowzero != 0 {
                    out.push(attr::int("allowzero", r.allowzero));
                }
                if let Some(v) = &r.shape {
                    out.push(attr::ints("shape", v));
                }
            }
            Op::Transpose { perm: Some(p) } => out.push(attr::ints("perm", p)),
            Op::Dropout(d) => {
                if let Some(v) = d.is_test {
                    out.push(attr::int("is_test", v));
                }
                if let Some(v) = d.ratio {
                    out.push(attr::float("ratio", v));
                }
                if let Some(v) = d.seed {
                    out.push(attr::int("seed", v));
                }
            }
            Op::Constant(c) => out.push(c.value.clone()),
            Op::Pad(p) => {
                out.push(attr::string("mode", &p.mode));
                if let Some(v) = &p.pads {
                    out.push(attr::ints("pads", v));
                }
                if let Some(v) = p.value {
                    out.push(attr::float("value", v));
                }
            }
            Op::Transpose { perm: None }
            | Op::Sum
            | Op::Relu
            | Op::Sigmoid
            | Op::HardSwish
            | Op::GlobalAveragePool
            | Op::MatMul
            | Op::Identity
            | Op::Other => {}
        }
        out
    }
}
