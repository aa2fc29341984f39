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
//! With `perturb`, each float parameter is also multiplied by
//! `1 + u·ε/2` (u uniform in [−1, 1], ε the machine epsilon of the model's
//! precision): the model as it would be if every parameter had been rounded
//! once more at that precision — the noise floor of a low-precision model
//! whose own run tract cannot carry out.

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

/// Operators tract 0.23 has no f64 kernel for and that have no exact
/// rewrite into ones it has (measured: `Erf` fails at run time with
/// "Erf does not support F64"). A model using one gets no f64 reference,
/// without paying for a load that cannot run.
const NO_F64: [&str; 1] = ["Erf"];

/// The first operator of the model (subgraphs included) tract cannot
/// evaluate in f64, if any.
pub(crate) fn unsupported_in_f64(proto: &pb::ModelProto) -> Option<String> {
    fn walk(g: &pb::GraphProto) -> Option<String> {
        for n in &g.node {
            if n.domain.is_empty() && NO_F64.contains(&n.op_type.as_str()) {
                return Some(format!("{} (node '{}')", n.op_type, n.name));
            }
            for a in &n.attribute {
                if let Some(found) = a.g.as_ref().and_then(walk) {
                    return Some(found);
                }
                if let Some(found) = a.graphs.iter().find_map(walk) {
                    return Some(found);
                }
            }
        }
        None
    }
    walk(proto.graph.as_ref()?)
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

/// The f64 form of `proto` (see the module docs). External data is read
/// from `dir`. Fails on a float tensor tract cannot read.
pub(crate) fn to_f64(
    proto: &pb::ModelProto,
    dir: Option<&str>,
    mut perturb: Option<(&mut SplitMix64, f64)>,
    unchanged: Option<&pb::ModelProto>,
) -> TractResult<pb::ModelProto> {
    let mut out = proto.clone();
    let onnx = tract_onnx::onnx();
    if let Some(g) = out.graph.as_mut() {
        // Initializers `unchanged` holds with the same name and bytes are
        // not perturbed: a rewrite rounds only the parameters it computes.
        let same: std::collections::HashSet<String> = match unchanged.and_then(|u| u.graph.as_ref())
        {
            Some(u) => g
                .initializer
                .iter()
                .filter(|t| u.initializer.iter().any(|v| v == *t))
                .map(|t| t.name.clone())
                .collect(),
            None => Default::default(),
        };
        // Converted now, they are f64 and the pass below leaves them be.
        for t in &mut g.initializer {
            if same.contains(&t.name) {
                tensor_to_f64(t, &onnx, dir, &mut None)?;
            }
        }
        graph_to_f64(g, &onnx, dir, &mut perturb)?;
    }
    Ok(out)
}

/// Float tensors that are not data but operator settings tract reads as
/// f32 whatever the model's precision: `Resize`'s `roi` and `scales`,
/// `Upsample`'s `scales`.
fn settings(g: &pb::GraphProto) -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    for n in &g.node {
        let ports: &[usize] = match n.op_type.as_str() {
            "Resize" => &[1, 2],
            "Upsample" => &[1],
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

/// Rewrites the ops tract cannot evaluate in f64 into ones it can, with
/// the same arithmetic: `Sigmoid(x)` → `1 / (1 + Exp(−x))`, `Gemm` →
/// `MatMul`, `Transpose`, `Mul`, `Add`; `HardSigmoid` and `HardSwish` →
/// `Mul`, `Add`, `Min`, `Max`.
fn lower_for_f64(g: &mut pb::GraphProto) {
    let mut nodes = Vec::with_capacity(g.node.len());
    let mut extra_init = Vec::new();
    for (ix, n) in std::mem::take(&mut g.node).into_iter().enumerate() {
        let tmp = |what: &str| format!("npuopt_f64_{ix}_{what}");
        if n.op_type == "Sigmoid" && n.domain.is_empty() && n.input.len() == 1 {
            let mk = |op: &str, inputs, output| lowered_node(&n.name, op, inputs, output);
            extra_init.push(f64_scalar(tmp("one"), 1.0));
            nodes.push(mk("Neg", vec![n.input[0].clone()], tmp("neg")));
            nodes.push(mk("Exp", vec![tmp("neg")], tmp("exp")));
            nodes.push(mk("Add", vec![tmp("exp"), tmp("one")], tmp("den")));
            nodes.push(mk("Div", vec![tmp("one"), tmp("den")], n.output[0].clone()));
            continue;
        }
        if (n.op_type == "HardSwish" || n.op_type == "HardSigmoid")
            && n.domain.is_empty()
            && n.input.len() == 1
        {
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
    lower_for_f64(g);
    Ok(())
}

fn tensor_to_f64(
    t: &mut pb::TensorProto,
    onnx: &tract_onnx::Onnx,
    dir: Option<&str>,
    perturb: &mut Option<(&mut SplitMix64, f64)>,
) -> TractResult<()> {
    if !is_float(t.data_type) {
        return Ok(());
    }
    let mut values: Vec<f64> = if t.data_type == DataType::Bfloat16 as i32 {
        bf16_values(t)?
    } else {
        let tensor = tract_onnx::tensor::load_tensor(&*onnx.provider, t, dir)?;
        let wide = tensor.cast_to_dt(DatumType::F64)?;
        wide.try_as_plain_ram()?.as_slice::<f64>()?.to_vec()
    };
    if let Some((rng, eps)) = perturb.as_mut() {
        for v in &mut values {
            *v *= 1.0 + (2.0 * rng.uniform() - 1.0) * *eps * 0.5;
        }
    }
    t.data_type = DataType::Double as i32;
    t.float_data.clear();
    t.int32_data.clear();
    t.double_data.clear();
    t.external_data.clear();
    t.data_location = None;
    t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(())
}
