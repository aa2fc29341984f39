//! The higher-precision reference: a model rewritten to compute in f64.
//!
//! Every float tensor the model holds (initializers, `Constant` and
//! `ConstantOfShape` values, in subgraphs too) becomes an f64 tensor with
//! the same values, every float graph input, output and `value_info`
//! becomes f64, and every `Cast` to a float type casts to f64. The values
//! are exactly those of the original (f16, bf16 and f32 are all exactly
//! representable in f64), so the rewritten model computes the same function
//! with about 2⁻⁵³ relative rounding instead of 2⁻²⁴ — a reference against
//! which both the input model's own rounding error and the candidate's can
//! be measured.
//!
//! `QuantizeLinear` and `DequantizeLinear` stay in f32 between `Cast`s
//! (see [`isolate_qdq`]).
//!
//! With `perturb`, each float parameter is also multiplied by
//! `1 + u·ε/2` (u uniform in [−1, 1], ε the machine epsilon of the model's
//! precision): the model as it would be if every parameter had been rounded
//! once more at that precision — the noise floor of a low-precision model
//! whose own run tract cannot carry out.

use std::collections::HashSet;

use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::prelude::*;

use super::rng::SplitMix64;

const FLOAT_TYPES: [i32; 3] = [
    DataType::Float as i32,
    DataType::Float16 as i32,
    DataType::Bfloat16 as i32,
];

fn is_float(dt: i32) -> bool {
    FLOAT_TYPES.contains(&dt)
}

/// A float precision below f32.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Low {
    F16,
    Bf16,
}

impl Low {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Low::F16 => "f16",
            Low::Bf16 => "bf16",
        }
    }

    /// Machine epsilon.
    pub(crate) fn epsilon(self) -> f64 {
        match self {
            Low::F16 => 2f64.powi(-10),
            Low::Bf16 => 2f64.powi(-7),
        }
    }
}

/// The lowest float precision among the model's parameters, inputs and
/// outputs, if it is below f32 (bf16 before f16: the coarser one).
pub(crate) fn low_precision(proto: &pb::ModelProto) -> Option<Low> {
    let g = proto.graph.as_ref()?;
    let mut found = None;
    let mut see = |dt: i32| {
        if dt == DataType::Bfloat16 as i32 {
            found = Some(Low::Bf16);
        } else if dt == DataType::Float16 as i32 && found.is_none() {
            found = Some(Low::F16);
        }
    };
    for t in &g.initializer {
        see(t.data_type);
    }
    for vi in g.input.iter().chain(&g.output) {
        if let Some(pb::type_proto::Value::TensorType(t)) =
            vi.r#type.as_ref().and_then(|t| t.value.as_ref())
        {
            see(t.elem_type);
        }
    }
    found
}

/// Why the input in f64 cannot be the reference of a model that quantizes
/// (a `QuantizeLinear`, in any graph): rounding to integers turns the
/// tiny f32-versus-f64 differences into whole quantization steps, which
/// the layers after it carry on, so the input's error against an f64
/// evaluation is a few percent of the output range — more than a 1 %
/// change of one conv's weights moves the output. Measured with the f64
/// form of [`isolate_qdq`] on the zoo's mobilenetv2_100 and resnet18 QDQ
/// exports (per tensor and per channel): floors 1.4–8 % of max |ref|, and
/// every such change passed at ratio 1.0–1.2, where the perturbed
/// reference catches it at 10⁵–7·10⁵. Such a model is measured against
/// itself at its own precision instead. Dequantization alone (weights
/// stored as integers, float activations) rounds nothing, and keeps the
/// f64 reference.
pub(crate) fn quantizes(proto: &pb::ModelProto) -> Option<String> {
    fn find(g: &pb::GraphProto) -> Option<&pb::NodeProto> {
        g.node.iter().find_map(|n| {
            if n.op_type == "QuantizeLinear" {
                return Some(n);
            }
            n.attribute
                .iter()
                .flat_map(|a| a.g.iter().chain(&a.graphs))
                .find_map(find)
        })
    }
    let n = find(proto.graph.as_ref()?)?;
    Some(format!(
        "the model quantizes (QuantizeLinear '{}'): rounding to integers turns f32-versus-f64 \
         differences into whole quantization steps, so the input's own error against an f64 \
         evaluation is too coarse a noise floor to catch a changed weight",
        n.name
    ))
}

/// The names of the top-level initializers both models hold with the
/// same type, shape and values: a rewrite rounds only the parameters it
/// computes, so these are not rounded once more in the candidate's noise
/// run.
pub(crate) fn shared_initializers(a: &pb::ModelProto, b: &pb::ModelProto) -> HashSet<String> {
    let (Some(a), Some(b)) = (a.graph.as_ref(), b.graph.as_ref()) else {
        return HashSet::new();
    };
    let by_name: std::collections::HashMap<&str, &pb::TensorProto> =
        a.initializer.iter().map(|t| (&*t.name, t)).collect();
    b.initializer
        .iter()
        .filter(|t| by_name.get(&*t.name).is_some_and(|u| u == t))
        .map(|t| t.name.clone())
        .collect()
}

/// Machine epsilon of the model's precision: f32's, or its low one's.
pub(crate) fn epsilon(low: Option<Low>) -> f64 {
    low.map_or(f32::EPSILON as f64, Low::epsilon)
}

/// The values of a bf16 tensor (tract has no bf16 type): `raw_data` or
/// `int32_data`, each value the upper half of an f32.
fn bf16_values(t: &pb::TensorProto) -> TractResult<Vec<f64>> {
    if !t.external_data.is_empty() {
        anyhow::bail!("bf16 tensor '{}' has external data", t.name);
    }
    let bits: Vec<u16> = if !t.raw_data.is_empty() {
        t.raw_data
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    } else {
        t.int32_data.iter().map(|&v| v as u16).collect()
    };
    Ok(bits
        .into_iter()
        .map(|b| f32::from_bits((b as u32) << 16) as f64)
        .collect())
}

/// Rewrites `proto` into its f64 form (see the module docs), in place.
/// External data is read from `dir`. Returns the names of the top-level
/// float values that stay as they are (operator settings, see
/// [`settings`]): the caller converting initializers taken out of the
/// graph leaves those be. Fails on a float tensor tract cannot read.
pub(crate) fn to_f64(
    proto: &mut pb::ModelProto,
    dir: Option<&str>,
    mut perturb: Option<(&mut SplitMix64, f64)>,
) -> TractResult<HashSet<String>> {
    let onnx = tract_onnx::onnx();
    match proto.graph.as_mut() {
        Some(g) => {
            let keep = settings(g);
            graph_to_f64(g, &onnx, dir, &mut perturb)?;
            Ok(keep)
        }
        None => Ok(HashSet::new()),
    }
}

/// The f64 tensor of a float initializer (other types as they are), its
/// values rounded once more with `perturb`.
pub(crate) fn tensor_f64(
    t: &pb::TensorProto,
    onnx: &tract_onnx::Onnx,
    dir: Option<&str>,
    perturb: Option<(&mut SplitMix64, f64)>,
) -> TractResult<Tensor> {
    if !is_float(t.data_type) {
        return tract_onnx::tensor::load_tensor(&*onnx.provider, t, dir);
    }
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let mut wide = if t.data_type == DataType::Bfloat16 as i32 {
        Tensor::from_shape(&dims, &bf16_values(t)?)?
    } else {
        tract_onnx::tensor::load_tensor(&*onnx.provider, t, dir)?
            .cast_to_dt(DatumType::F64)?
            .into_owned()
    };
    if let Some((rng, eps)) = perturb {
        let mut view = wide.try_as_plain_ram_mut()?;
        for v in view.as_slice_mut::<f64>()? {
            *v *= 1.0 + (2.0 * rng.uniform() - 1.0) * eps * 0.5;
        }
    }
    Ok(wide)
}

/// Float tensors that are not data but operator settings tract reads as
/// f32 whatever the model's precision: `Resize`'s `roi` and `scales`,
/// `Upsample`'s `scales`; and the scales of `QuantizeLinear` and
/// `DequantizeLinear`, which stay in their own precision (see
/// [`isolate_qdq`]).
fn settings(g: &pb::GraphProto) -> HashSet<String> {
    let mut names = HashSet::new();
    for n in &g.node {
        let ports: &[usize] = match n.op_type.as_str() {
            "Resize" => &[1, 2],
            "Upsample" => &[1],
            "QuantizeLinear" | "DequantizeLinear" if n.domain.is_empty() => &[1],
            _ => &[],
        };
        for &p in ports {
            if let Some(name) = n.input.get(p).filter(|s| !s.is_empty()) {
                names.insert(name.clone());
            }
        }
    }
    // And everything they are computed from (a `Concat` of constants, a
    // `Cast` of a shape): nodes come in topological order, so one backward
    // sweep closes the set.
    for n in g.node.iter().rev() {
        if n.output.iter().any(|o| names.contains(o)) {
            names.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
        }
    }
    names
}

/// A scalar f64 initializer.
fn f64_scalar(name: String, v: f64) -> pb::TensorProto {
    pb::TensorProto {
        name,
        data_type: DataType::Double as i32,
        raw_data: v.to_le_bytes().to_vec(),
        ..Default::default()
    }
}

/// A node of a lowered op, named after the node it replaces.
fn lowered_node(of: &str, op: &str, input: Vec<String>, output: String) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        input,
        name: format!("{of}_{op}_{output}"),
        output: vec![output],
        ..Default::default()
    }
}

/// Emits the nodes a lowered op becomes: fresh value names, scalar f64
/// constants, nodes named after the node they replace.
struct Emit<'a> {
    of: &'a str,
    prefix: String,
    count: usize,
    nodes: &'a mut Vec<pb::NodeProto>,
    init: &'a mut Vec<pb::TensorProto>,
}

impl Emit<'_> {
    fn fresh(&mut self) -> String {
        self.count += 1;
        format!("{}_{}", self.prefix, self.count)
    }

    fn scalar(&mut self, v: f64) -> String {
        let name = self.fresh();
        self.init.push(f64_scalar(name.clone(), v));
        name
    }

    fn op_to(&mut self, op: &str, inputs: &[&str], output: String) {
        let inputs = inputs.iter().map(|s| s.to_string()).collect();
        self.nodes.push(lowered_node(self.of, op, inputs, output));
    }

    fn op(&mut self, op: &str, inputs: &[&str]) -> String {
        let out = self.fresh();
        self.op_to(op, inputs, out.clone());
        out
    }

    /// `x op k` for a scalar `k`.
    fn op_k(&mut self, op: &str, x: &str, k: f64) -> String {
        let k = self.scalar(k);
        self.op(op, &[x, &k])
    }

    /// `k op x` for a scalar `k`.
    fn k_op(&mut self, k: f64, op: &str, x: &str) -> String {
        let k = self.scalar(k);
        self.op(op, &[&k, x])
    }

    /// Cody's evaluation order: `((lead·z + c₀)·z + c₁)·z … + last`, with
    /// `z` itself for `lead` `None` (a monic denominator).
    fn horner(&mut self, z: &str, lead: Option<f64>, cs: &[f64], last: f64) -> String {
        let mut acc = match lead {
            Some(k) => self.op_k("Mul", z, k),
            None => z.to_string(),
        };
        for &c in cs {
            let sum = self.op_k("Add", &acc, c);
            acc = self.op("Mul", &[&sum, z]);
        }
        self.op_k("Add", &acc, last)
    }

    /// `erf(x)` into `output`, by W. J. Cody's rational Chebyshev
    /// approximations ("Rational Chebyshev approximations for the error
    /// function", Math. Comp. 23, 1969; the coefficients of SPECFUN's
    /// CALERF), accurate to a few f64 roundings on every interval:
    ///
    /// * `|x| ≤ 0.46875`: `erf(x) = x·A(x²)/B(x²)`;
    /// * `0.46875 < |x| ≤ 4`: `erfc(y) = e^(−y²)·C(y)/D(y)`, `y = |x|`;
    /// * `|x| > 4`: `erfc(y) = e^(−y²)/y·(1/√π − z·P(z)/Q(z))`, `z = 1/y²`;
    ///
    /// and `erf(x) = sign(x)·(1 − erfc(|x|))` beyond the first. `e^(−y²)`
    /// is `e^(−s²−(y−s)(y+s))` with `s = ⌊16y⌋/16`, as Cody computes it.
    /// `y` is capped at Cody's XBIG (26.543), beyond which `erfc` underflows:
    /// so `±∞` gives `±1`, and NaN stays NaN (it takes the first interval).
    /// Every interval is computed for every element and `Where` picks one.
    // SPECFUN's CALERF coefficients as published, digit for digit.
    #[allow(clippy::excessive_precision)]
    fn erf(&mut self, x: &str, output: String) {
        const A: [f64; 5] = [
            3.16112374387056560e00,
            1.13864154151050156e02,
            3.77485237685302021e02,
            3.20937758913846947e03,
            1.85777706184603153e-1,
        ];
        const B: [f64; 4] = [
            2.36012909523441209e01,
            2.44024637934444173e02,
            1.28261652607737228e03,
            2.84423683343917062e03,
        ];
        const C: [f64; 9] = [
            5.64188496988670089e-1,
            8.88314979438837594e00,
            6.61191906371416295e01,
            2.98635138197400131e02,
            8.81952221241769090e02,
            1.71204761263407058e03,
            2.05107837782607147e03,
            1.23033935479799725e03,
            2.15311535474403846e-8,
        ];
        const D: [f64; 8] = [
            1.57449261107098347e01,
            1.17693950891312499e02,
            5.37181101862009858e02,
            1.62138957456669019e03,
            3.29079923573345963e03,
            4.36261909014324716e03,
            3.43936767414372164e03,
            1.23033935480374942e03,
        ];
        const P: [f64; 6] = [
            3.05326634961232344e-1,
            3.60344899949804439e-1,
            1.25781726111229246e-1,
            1.60837851487422766e-2,
            6.58749161529837803e-4,
            1.63153871373020978e-2,
        ];
        const Q: [f64; 5] = [
            2.56852019228982242e00,
            1.87295284992346047e00,
            5.27905102951428412e-1,
            6.05183413124413191e-2,
            2.33520497626869185e-3,
        ];
        const SQRPI: f64 = 5.6418958354775628695e-1; // 1/√π
        const THRESH: f64 = 0.46875;
        const XBIG: f64 = 26.543;

        let y = self.op("Abs", &[x]);
        // |x| ≤ 0.46875.
        let t = self.op("Mul", &[&y, &y]);
        let num = self.horner(&t, Some(A[4]), &A[..3], A[3]);
        let den = self.horner(&t, None, &B[..3], B[3]);
        let xnum = self.op("Mul", &[x, &num]);
        let small = self.op("Div", &[&xnum, &den]);
        // 0.46875 < |x| ≤ 4, then |x| > 4: erfc(y)·e^(y²).
        let yc = self.op_k("Min", &y, XBIG);
        let num = self.horner(&yc, Some(C[8]), &C[..7], C[7]);
        let den = self.horner(&yc, None, &D[..7], D[7]);
        let mid = self.op("Div", &[&num, &den]);
        let yy = self.op("Mul", &[&yc, &yc]);
        let z = self.k_op(1.0, "Div", &yy);
        let num = self.horner(&z, Some(P[5]), &P[..4], P[4]);
        let den = self.horner(&z, None, &Q[..4], Q[4]);
        let znum = self.op("Mul", &[&z, &num]);
        let r = self.op("Div", &[&znum, &den]);
        let diff = self.k_op(SQRPI, "Sub", &r);
        let tail = self.op("Div", &[&diff, &yc]);
        let beyond4 = self.op_k("Greater", &yc, 4.0);
        let scaled = self.op("Where", &[&beyond4, &tail, &mid]);
        // × e^(−y²).
        let y16 = self.op_k("Mul", &yc, 16.0);
        let floor = self.op("Floor", &[&y16]);
        let s = self.op_k("Mul", &floor, 0.0625);
        let ys = self.op("Sub", &[&yc, &s]);
        let yps = self.op("Add", &[&yc, &s]);
        let del = self.op("Mul", &[&ys, &yps]);
        let ss = self.op("Mul", &[&s, &s]);
        let neg = self.op("Neg", &[&ss]);
        let expo = self.op("Sub", &[&neg, &del]);
        let e = self.op("Exp", &[&expo]);
        let erfc = self.op("Mul", &[&e, &scaled]);
        let one_minus = self.k_op(1.0, "Sub", &erfc);
        let sign = self.op("Sign", &[x]);
        let large = self.op("Mul", &[&sign, &one_minus]);
        let is_large = self.op_k("Greater", &y, THRESH);
        self.op_to("Where", &[&is_large, &large, &small], output);
    }
}

/// Rewrites the ops tract cannot evaluate in f64 into ones it can, with
/// the same arithmetic: `Sigmoid(x)` → `1 / (1 + Exp(−x))`, `Gemm` →
/// `MatMul`, `Transpose`, `Mul`, `Add`; `HardSigmoid` and `HardSwish` →
/// `Mul`, `Add`, `Min`, `Max`; `Erf` → Cody's rational approximations
/// (see [`Emit::erf`]), exact to f64 rounding; `Gelu` → its definition
/// with that `Erf`, or with `Tanh` for `approximate = "tanh"`.
fn lower_for_f64(g: &mut pb::GraphProto) {
    let mut nodes = Vec::with_capacity(g.node.len());
    let mut extra_init = Vec::new();
    for (ix, n) in std::mem::take(&mut g.node).into_iter().enumerate() {
        let tmp = |what: &str| format!("npuopt_f64_{ix}_{what}");
        let unary = |op: &str| n.op_type == op && n.domain.is_empty() && n.input.len() == 1;
        if unary("Erf") || unary("Gelu") {
            let mut e = Emit {
                of: &n.name,
                prefix: tmp("t"),
                count: 0,
                nodes: &mut nodes,
                init: &mut extra_init,
            };
            let x = n.input[0].as_str();
            let y = n.output[0].clone();
            if n.op_type == "Erf" {
                e.erf(x, y);
                continue;
            }
            // Gelu(x) = x/2 · (1 + erf(x/√2)), or with approximate =
            // "tanh": x/2 · (1 + tanh(√(2/π) · (x + 0.044715 · x³))).
            let tanh = n
                .attribute
                .iter()
                .any(|a| a.name == "approximate" && a.s == b"tanh");
            let inner = if tanh {
                let x2 = e.op("Mul", &[x, x]);
                let x3 = e.op("Mul", &[&x2, x]);
                let c = e.op_k("Mul", &x3, 0.044715);
                let sum = e.op("Add", &[x, &c]);
                let arg = e.op_k("Mul", &sum, (2.0 / std::f64::consts::PI).sqrt());
                e.op("Tanh", &[&arg])
            } else {
                let arg = e.op_k("Mul", x, std::f64::consts::FRAC_1_SQRT_2);
                let out = e.fresh();
                e.erf(&arg, out.clone());
                out
            };
            let half = e.op_k("Mul", x, 0.5);
            let one_plus = e.op_k("Add", &inner, 1.0);
            e.op_to("Mul", &[&half, &one_plus], y);
            continue;
        }
        if unary("Sigmoid") {
            let mk = |op: &str, inputs, output| lowered_node(&n.name, op, inputs, output);
            extra_init.push(f64_scalar(tmp("one"), 1.0));
            nodes.push(mk("Neg", vec![n.input[0].clone()], tmp("neg")));
            nodes.push(mk("Exp", vec![tmp("neg")], tmp("exp")));
            nodes.push(mk("Add", vec![tmp("exp"), tmp("one")], tmp("den")));
            nodes.push(mk("Div", vec![tmp("one"), tmp("den")], n.output[0].clone()));
            continue;
        }
        if unary("HardSwish") || unary("HardSigmoid") {
            // HardSigmoid(x) = max(0, min(1, alpha·x + beta)); HardSwish(x)
            // = x · HardSigmoid(x) with alpha 1/6, beta 1/2.
            let attr = |name: &str, default: f64| {
                n.attribute
                    .iter()
                    .find(|a| a.name == name)
                    .map_or(default, |a| a.f as f64)
            };
            let (alpha, beta) = if n.op_type == "HardSwish" {
                (1.0 / 6.0, 0.5)
            } else {
                (attr("alpha", 0.2), attr("beta", 0.5))
            };
            let mk = |op: &str, inputs, output| lowered_node(&n.name, op, inputs, output);
            extra_init.push(f64_scalar(tmp("alpha"), alpha));
            extra_init.push(f64_scalar(tmp("beta"), beta));
            extra_init.push(f64_scalar(tmp("zero"), 0.0));
            extra_init.push(f64_scalar(tmp("one"), 1.0));
            let x = n.input[0].clone();
            let hs = n.op_type == "HardSwish";
            nodes.push(mk("Mul", vec![x.clone(), tmp("alpha")], tmp("ax")));
            nodes.push(mk("Add", vec![tmp("ax"), tmp("beta")], tmp("axb")));
            nodes.push(mk("Min", vec![tmp("axb"), tmp("one")], tmp("lo")));
            let sig = if hs { tmp("sig") } else { n.output[0].clone() };
            nodes.push(mk("Max", vec![tmp("lo"), tmp("zero")], sig.clone()));
            if hs {
                nodes.push(mk("Mul", vec![x, sig], n.output[0].clone()));
            }
            continue;
        }
        if n.op_type == "Gemm" && n.domain.is_empty() && n.input.len() >= 2 {
            // Y = alpha · A' · B' + beta · C, op by op.
            let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
            let alpha = attr("alpha").map_or(1.0, |a| a.f as f64);
            let beta = attr("beta").map_or(1.0, |a| a.f as f64);
            let trans = |name: &str| attr(name).is_some_and(|a| a.i != 0);
            let mk = |op: &str, inputs, output, perm: bool| {
                let mut node = lowered_node(&n.name, op, inputs, output);
                if perm {
                    node.attribute = vec![pb::AttributeProto {
                        name: "perm".into(),
                        r#type: pb::attribute_proto::AttributeType::Ints as i32,
                        ints: vec![1, 0],
                        ..Default::default()
                    }];
                }
                node
            };
            let operand = |ix: usize, t: bool, nodes: &mut Vec<pb::NodeProto>| {
                if t {
                    let out = tmp(&format!("t{ix}"));
                    nodes.push(mk(
                        "Transpose",
                        vec![n.input[ix].clone()],
                        out.clone(),
                        true,
                    ));
                    out
                } else {
                    n.input[ix].clone()
                }
            };
            let a = operand(0, trans("transA"), &mut nodes);
            let b = operand(1, trans("transB"), &mut nodes);
            let c = n.input.get(2).filter(|c| !c.is_empty()).cloned();
            let y = n.output[0].clone();
            let mm = if alpha == 1.0 && c.is_none() {
                y.clone()
            } else {
                tmp("mm")
            };
            nodes.push(mk("MatMul", vec![a, b], mm.clone(), false));
            let scaled = if alpha == 1.0 {
                mm
            } else {
                extra_init.push(f64_scalar(tmp("alpha"), alpha));
                let out = if c.is_none() { y.clone() } else { tmp("amm") };
                nodes.push(mk("Mul", vec![mm, tmp("alpha")], out.clone(), false));
                out
            };
            if let Some(c) = c {
                let c = if beta == 1.0 {
                    c
                } else {
                    extra_init.push(f64_scalar(tmp("beta"), beta));
                    nodes.push(mk("Mul", vec![c, tmp("beta")], tmp("bc"), false));
                    tmp("bc")
                };
                nodes.push(mk("Add", vec![scaled, c], y, false));
            }
            continue;
        }
        nodes.push(n);
    }
    g.node = nodes;
    g.initializer.extend(extra_init);
}

fn graph_to_f64(
    g: &mut pb::GraphProto,
    onnx: &tract_onnx::Onnx,
    dir: Option<&str>,
    perturb: &mut Option<(&mut SplitMix64, f64)>,
) -> TractResult<()> {
    let keep = settings(g);
    for t in &mut g.initializer {
        if !keep.contains(&t.name) {
            tensor_to_f64(t, onnx, dir, perturb)?;
        }
    }
    for vi in g
        .input
        .iter_mut()
        .chain(&mut g.output)
        .chain(&mut g.value_info)
    {
        if let Some(pb::type_proto::Value::TensorType(t)) =
            vi.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            if is_float(t.elem_type) {
                t.elem_type = DataType::Double as i32;
            }
        }
    }
    for node in &mut g.node {
        let is_cast = node.op_type == "Cast" && node.domain.is_empty();
        if node.output.iter().any(|o| keep.contains(o)) {
            continue;
        }
        for a in &mut node.attribute {
            if is_cast && a.name == "to" && is_float(a.i as i32) {
                a.i = DataType::Double as i64;
            }
            if let Some(t) = a.t.as_mut() {
                tensor_to_f64(t, onnx, dir, perturb)?;
            }
            for t in &mut a.tensors {
                tensor_to_f64(t, onnx, dir, perturb)?;
            }
            if let Some(sub) = a.g.as_mut() {
                graph_to_f64(sub, onnx, dir, perturb)?;
            }
            for sub in &mut a.graphs {
                graph_to_f64(sub, onnx, dir, perturb)?;
            }
        }
    }
    isolate_qdq(g);
    lower_for_f64(g);
    Ok(())
}

/// Keeps `QuantizeLinear` and `DequantizeLinear` in their own precision
/// (tract runs them with f32 scales only) while the rest of the graph runs
/// in f64: their scales stay f32 (see [`settings`]; zero points are
/// integers), a `Cast` to f32 goes before each `QuantizeLinear`'s input
/// and a `Cast` to f64 after each `DequantizeLinear`'s output.
///
/// A `DequantizeLinear` of integer weights computes `(q − z) · s` in f32
/// in the input model's run too: the same values, exactly widened. (The
/// verification does not take an f64 reference for a model with a
/// `QuantizeLinear`: see [`quantizes`].)
fn isolate_qdq(g: &mut pb::GraphProto) {
    let cast = |of: &str, input: String, output: String, to: DataType| pb::NodeProto {
        op_type: "Cast".into(),
        name: format!("{of}_Cast_{output}"),
        input: vec![input],
        output: vec![output],
        attribute: vec![pb::AttributeProto {
            name: "to".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: to as i64,
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut nodes = Vec::with_capacity(g.node.len());
    for (ix, mut n) in std::mem::take(&mut g.node).into_iter().enumerate() {
        let qdq = |op: &str| n.op_type == op && n.domain.is_empty() && !n.input.is_empty();
        if qdq("QuantizeLinear") && !n.input[0].is_empty() {
            let narrow = format!("npuopt_qdq_{ix}_x");
            let x = std::mem::replace(&mut n.input[0], narrow.clone());
            nodes.push(cast(&n.name, x, narrow, DataType::Float));
            nodes.push(n);
        } else if qdq("DequantizeLinear") && n.output.first().is_some_and(|y| !y.is_empty()) {
            let narrow = format!("npuopt_qdq_{ix}_y");
            let y = std::mem::replace(&mut n.output[0], narrow.clone());
            let name = n.name.clone();
            nodes.push(n);
            nodes.push(cast(&name, narrow, y, DataType::Double));
        } else {
            nodes.push(n);
        }
    }
    g.node = nodes;
}

/// Rewrites a float tensor of the protobuf as f64 (see [`tensor_f64`]).
fn tensor_to_f64(
    t: &mut pb::TensorProto,
    onnx: &tract_onnx::Onnx,
    dir: Option<&str>,
    perturb: &mut Option<(&mut SplitMix64, f64)>,
) -> TractResult<()> {
    if !is_float(t.data_type) {
        return Ok(());
    }
    let wide = tensor_f64(
        t,
        onnx,
        dir,
        perturb.as_mut().map(|(rng, eps)| (&mut **rng, *eps)),
    )?;
    t.data_type = DataType::Double as i32;
    t.float_data.clear();
    t.int32_data.clear();
    t.double_data.clear();
    t.external_data.clear();
    t.data_location = None;
    t.raw_data = wide
        .try_as_plain_ram()?
        .as_slice::<f64>()?
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::compare::as_f64;
    use super::*;

    fn fixture(name: &str) -> pb::ModelProto {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/f64")
            .join(name);
        tract_onnx::onnx().proto_model_for_path(path).unwrap()
    }

    fn ops(proto: &pb::ModelProto) -> Vec<&str> {
        let g = proto.graph.as_ref().unwrap();
        g.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    /// The model's f64 form, run by tract on `inputs`.
    fn wide(proto: &pb::ModelProto) -> pb::ModelProto {
        let mut wide = proto.clone();
        to_f64(&mut wide, None, None).unwrap();
        wide
    }

    fn run_f64(proto: &pb::ModelProto, inputs: TVec<TValue>) -> Vec<Tensor> {
        let wide = wide(proto);
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&wide)
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let out = plan.run(inputs).unwrap();
        out.into_iter().map(|v| v.into_tensor()).collect()
    }

    /// erf of each f64 argument, to 30 digits (mpmath; printed by
    /// fixtures/scripts/make_f64_lowering_models.py, whose `ERF_ARGS`
    /// they are, in order).
    #[allow(clippy::excessive_precision)]
    const ERF_TABLE: [(f64, f64); 32] = [
        (0.0, 0.0),
        (-0.0, -0.0),
        (1e-300, 1.1283791670955126021723160763e-300),
        (1e-10, 1.12837916709551261500173010155e-10),
        (-3e-08, -3.38513750128653640362362336036e-8),
        (0.1, 1.12462916018284898404712251014e-1),
        (-0.25, -2.76326390168236932985068267765e-1),
        (0.46875, 4.92613473217937991588176101935e-1),
        (-0.46875, -4.92613473217937991588176101935e-1),
        (0.46875000000000006, 4.92613473217938041869795901694e-1),
        (0.5, 5.20499877813046537682746653892e-1),
        (-0.75, -7.11155633653515131598937834591e-1),
        (1.0, 8.42700792949714869341220635083e-1),
        (1.5, 9.66105146475310727066976261646e-1),
        (-2.0, -9.95322265018952734162069256367e-1),
        (2.5, 9.9959304798255504106043578426e-1),
        (3.0, 9.9997790950300141455862722387e-1),
        (-3.75, -9.99999886272743430203346740923e-1),
        (4.0, 9.9999998458274209971998114784e-1),
        (-4.000000000000001, -9.9999998458274209972009393082e-1),
        (4.5, 9.99999999803383955845711252372e-1),
        (5.0, 9.9999999999846254020557196515e-1),
        (-5.9, -9.99999999999999928095902164495e-1),
        (6.0, 9.99999999999999978480263287501e-1),
        (8.0, 9.99999999999999999999999999989e-1),
        (-10.0, -1.0),
        (26.0, 1.0),
        (27.0, 1.0),
        (10000000000.0, 1.0),
        (f64::INFINITY, 1.0),
        (f64::NEG_INFINITY, -1.0),
        (f64::NAN, f64::NAN),
    ];

    /// The lowered `Erf` agrees with erf to within two f64 roundings of
    /// the result on each of Cody's intervals, their bounds, the tiny and
    /// the huge; keeps the sign of zero; gives ±1 at ±∞ and NaN for NaN.
    #[test]
    fn lowered_erf_matches_the_erf_table_to_f64_rounding() {
        let model = fixture("erf.onnx");
        assert_eq!(ops(&model), ["Erf"]);
        let lowered = wide(&model);
        assert!(!ops(&lowered).contains(&"Erf"), "{:?}", ops(&lowered));

        let xs: Vec<f64> = ERF_TABLE.iter().map(|r| r.0).collect();
        let input = tensor1(&xs).into_tvalue();
        let out = run_f64(&model, tvec![input]);
        let got = as_f64(&out[0]).unwrap();
        for (&(x, want), &g) in ERF_TABLE.iter().zip(&got) {
            if want.is_nan() {
                assert!(g.is_nan(), "erf({x}) = {g}, want NaN");
                continue;
            }
            let err = (g - want).abs();
            let ulps = err / (f64::EPSILON * want.abs()).max(f64::MIN_POSITIVE);
            assert!(
                err <= 2.0 * f64::EPSILON * want.abs(),
                "erf({x:e}) = {g:e}, want {want:e}: off by {ulps:.2} ulps"
            );
            assert_eq!(
                g.is_sign_negative(),
                want.is_sign_negative(),
                "erf({x:e}) = {g:e} has the wrong sign"
            );
        }
    }

    /// `Gelu` (opset 20), both forms, in f64 agrees with tract's own f32
    /// kernels to f32 accuracy — and the two forms differ by far more than
    /// that, so each is lowered to its own definition.
    #[test]
    fn lowered_gelu_computes_each_form_of_gelu() {
        let model = fixture("gelu.onnx");
        let xs: Vec<f32> = (0..128).map(|i| (i as f32 - 64.0) / 9.0).collect();
        let x32 = tract_ndarray::Array2::from_shape_vec((2, 64), xs.clone()).unwrap();
        let native = tract_onnx::onnx()
            .model_for_proto_model(&model)
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap()
            .run(tvec![Tensor::from(x32).into_tvalue()])
            .unwrap();
        let wide_in = Tensor::from(
            tract_ndarray::Array2::from_shape_vec((2, 64), xs.iter().map(|&v| v as f64).collect())
                .unwrap(),
        );
        assert!(!ops(&wide(&model)).contains(&"Gelu"));
        let wide = run_f64(&model, tvec![wide_in.into_tvalue()]);
        let diff = |a: &Tensor, b: &Tensor| -> f64 {
            let (a, b) = (as_f64(a).unwrap(), as_f64(b).unwrap());
            a.iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max)
        };
        // tract's f32 kernels are approximations too: a few f32 roundings
        // of the largest output.
        let largest = as_f64(&wide[0])
            .unwrap()
            .iter()
            .fold(0f64, |m, v| m.max(v.abs()));
        let tol = 8.0 * f32::EPSILON as f64 * largest;
        for (ix, form) in ["none", "tanh"].iter().enumerate() {
            let err = diff(&native[ix].clone().into_tensor(), &wide[ix]);
            assert!(
                err <= tol,
                "Gelu {form}: f64 and tract's f32 differ by {err:e} > {tol:e}"
            );
        }
        let forms = diff(&wide[0], &wide[1]);
        assert!(forms > 1e-4, "the two forms differ by only {forms:e}");
    }
}
