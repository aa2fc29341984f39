//! `fold-constants`: turns `Constant` nodes into initializers and evaluates
//! nodes whose inputs are all constants.
//!
//! Before:  `c = Constant(value=T)`;  `s = Shape(x: f32[1,3,8,8])`;  `y = Gather(s, 1)`
//! After:   initializers c = T, y = 3 (the Shape and Gather nodes are gone)
//!
//! The folded value keeps its name (it is detached from its producer and
//! given an initializer), so downstream names and graph outputs are stable.
//!
//! Evaluated ops (default domain only, one output, no unknown attributes):
//! * `Shape` of a value whose shape is fully known (its input need not be a
//!   constant), with opset-15 `start`/`end`;
//! * data movement on any fixed-width dtype: `Gather` (negative indices
//!   wrap once, out-of-range is not folded), `Unsqueeze`/`Squeeze` (axes as
//!   an attribute before opset 13, an input from 13; negative axes),
//!   `Concat`, `Reshape` (0 copies unless `allowzero`, −1 infers), `Transpose`,
//!   `Slice` (attributes before opset 10; negative and clamped starts/ends,
//!   negative steps), `Identity`, `ConstantOfShape`;
//! * `Cast` between f32, f64, bool and the integer types: float→int
//!   truncates toward zero; a NaN, infinite or out-of-range value (whose
//!   conversion is undefined in C++ runtimes) and int narrowing that does
//!   not fit are not folded;
//! * `Range` on integers, and on floats only when start and delta are
//!   integer-valued and every element is exactly representable (so the
//!   runtimes' `start + i·delta` and accumulating loops agree);
//! * element-wise `Add`/`Sub`/`Mul`/`Div` (numpy broadcasting) and
//!   `Neg`/`Sqrt`/`Reciprocal` on f32 and f64 (computed in that type, IEEE,
//!   bit-identical to a runtime) and `Add`/`Sub`/`Mul`/`Div`/`Neg` on i64
//!   (Div truncates toward zero as C does; overflow and division by zero are
//!   not folded).
//!
//! Not folded: f16/bf16 arithmetic, external or string tensors, a graph
//! input with an initializer (a caller may override it), nodes of other
//! domains or with subgraphs, and — when the result is read at most once —
//! a result larger than 1 MiB or, for ConstantOfShape and Range, more than
//! 64× the bytes of its inputs (folding would only grow the file).

use npuopt_ir::attr::Attrs;
use npuopt_ir::proto::tensor_proto::DataType;
use npuopt_ir::{DType, Graph, NodeId, Op, Tensor};

use crate::change::Change;
use crate::pass::{for_each_live_node, Pass, PassContext, PassError};

pub struct FoldConstants;

const NAME: &str = "fold-constants";

/// Results above this many bytes are "large".
const LARGE_BYTES: u64 = 1 << 20;
/// Growth ops whose result exceeds this multiple of their inputs are "large".
const MAX_GROWTH: u64 = 64;

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        NAME
    }

    fn description(&self) -> &'static str {
        "turn Constant nodes into initializers and evaluate shape and weight computations on constants"
    }

    fn run(&self, model: &mut npuopt_ir::Model, cx: &mut PassContext) -> Result<(), PassError> {
        let g = &mut model.graph;
        for_each_live_node(g, cx, |g, id, cx| {
            fold_node(g, id, cx);
        })
    }
}

fn fold_node(g: &mut Graph, id: NodeId, cx: &mut PassContext) {
    let n = g.node(id);
    if !(n.domain().is_empty() || n.domain() == "ai.onnx") || n.has_subgraphs() {
        return;
    }
    if n.outputs().len() != 1 {
        return;
    }
    let Some(out) = n.output(0) else { return };
    let name = n.name().to_string();
    let op_type = n.op_type().to_string();
    if let Op::Constant(c) = n.op() {
        let Some(t) = c.tensor() else { return };
        let t = Tensor::from_proto(t);
        let summary = npuopt_ir::dump::tensor_summary(&t);
        g.make_constant(out, t);
        g.remove_node(id);
        let vname = g.value(out).name().to_string();
        cx.record(
            Change::new(
                NAME,
                "constant-to-initializer",
                &[&name],
                format!("Constant '{name}' became initializer '{vname}' ({summary})"),
            )
            .removed(&[&name]),
        );
        return;
    }
    let Some(result) = evaluate(g, id) else {
        return;
    };
    let t = result.into_tensor();
    let out_bytes = t.byte_size();
    let in_bytes: u64 = g
        .node(id)
        .inputs()
        .iter()
        .flatten()
        .filter_map(|&v| g.constant(v))
        .map(Tensor::byte_size)
        .sum();
    let growth_op = matches!(op_type.as_str(), "ConstantOfShape" | "Range");
    let large = out_bytes > LARGE_BYTES || (growth_op && out_bytes > MAX_GROWTH * in_bytes.max(1));
    let uses = g.value(out).uses().len() + usize::from(g.is_graph_output(out));
    if large && uses <= 1 {
        cx.skip(
            NAME,
            "evaluate",
            &name,
            format!(
                "{op_type} '{name}' is not folded: its result ({out_bytes} bytes from {in_bytes} bytes of inputs) is large and read once"
            ),
        );
        return;
    }
    let summary = npuopt_ir::dump::tensor_summary(&t);
    g.make_constant(out, t);
    g.remove_node(id);
    let vname = g.value(out).name().to_string();
    cx.record(
        Change::new(
            NAME,
            "evaluate",
            &[&name],
            format!("evaluated {op_type} '{name}' into initializer '{vname}' ({summary})"),
        )
        .removed(&[&name]),
    );
}

// ---- tensors as bytes ----

/// A constant's data as little-endian bytes of its dtype, elements of a
/// whole number of bytes. `None` for external, string or sub-byte tensors.
pub(crate) fn raw_bytes(t: &Tensor) -> Option<Vec<u8>> {
    if t.is_external() || t.proto().segment.is_some() {
        return None;
    }
    let dt = t.dtype();
    let bits = dt.bits()?;
    if bits % 8 != 0 || dt.known()? == DataType::String {
        return None;
    }
    let n = t.numel()?;
    let want = dt.raw_len(n)? as usize;
    let p = t.proto();
    let bytes: Vec<u8> = if let Some(raw) = &p.raw_data {
        raw.to_vec()
    } else {
        use DataType::*;
        match dt.known()? {
            Float => p.float_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Double => p.double_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Int64 => p.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Uint64 => p.uint64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Uint32 => p
                .uint64_data
                .iter()
                .flat_map(|&v| (v as u32).to_le_bytes())
                .collect(),
            Int32 => p.int32_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Int16 | Uint16 | Float16 | Bfloat16 => p
                .int32_data
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes())
                .collect(),
            Int8 | Uint8 | Bool => p.int32_data.iter().map(|&v| v as u8).collect(),
            _ => return None,
        }
    };
    (bytes.len() == want).then_some(bytes)
}

/// A dense value being computed: dtype, dims and little-endian bytes.
#[derive(Clone, Debug)]
struct Val {
    dtype: DType,
    dims: Vec<i64>,
    bytes: Vec<u8>,
}

impl Val {
    fn of(t: &Tensor) -> Option<Val> {
        Some(Val {
            dtype: t.dtype(),
            dims: t.dims().to_vec(),
            bytes: raw_bytes(t)?,
        })
    }

    fn esize(&self) -> usize {
        (self.dtype.bits().unwrap_or(8) / 8) as usize
    }

    fn numel(&self) -> usize {
        self.dims.iter().product::<i64>() as usize
    }

    fn elem(&self, i: usize) -> &[u8] {
        let e = self.esize();
        &self.bytes[i * e..(i + 1) * e]
    }

    fn into_tensor(self) -> Tensor {
        Tensor::from_raw("", self.dtype, &self.dims, self.bytes.into())
    }

    fn from_i64(dims: Vec<i64>, v: &[i64]) -> Val {
        Val {
            dtype: DType::INT64,
            dims,
            bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// The values of an integer or bool tensor.
    fn ints(&self) -> Option<Vec<i64>> {
        use DataType::*;
        let b = &self.bytes;
        Some(match self.dtype.known()? {
            Int64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            Int32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            Uint32 => b
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            Int16 => b
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            Uint16 => b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            Int8 => b.iter().map(|&x| x as i8 as i64).collect(),
            Uint8 => b.iter().map(|&x| x as i64).collect(),
            Bool => b.iter().map(|&x| (x != 0) as i64).collect(),
            _ => return None,
        })
    }

    /// Integer values of an int64/int32 tensor (indices, axes, shapes).
    fn index_ints(&self) -> Option<Vec<i64>> {
        matches!(self.dtype, DType::INT64 | DType::INT32)
            .then(|| self.ints())
            .flatten()
    }

    fn f32s(&self) -> Vec<f32> {
        self.bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn f64s(&self) -> Vec<f64> {
        self.bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// Encodes integers in an integer/bool dtype, `None` if one does not fit.
fn encode_ints(dt: DType, v: &[i64]) -> Option<Vec<u8>> {
    use DataType::*;
    let fits = |lo: i64, hi: i64| v.iter().all(|&x| x >= lo && x <= hi);
    Some(match dt.known()? {
        Int64 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Int32 if fits(i32::MIN as i64, i32::MAX as i64) => {
            v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect()
        }
        Uint32 if fits(0, u32::MAX as i64) => {
            v.iter().flat_map(|&x| (x as u32).to_le_bytes()).collect()
        }
        Int16 if fits(i16::MIN as i64, i16::MAX as i64) => {
            v.iter().flat_map(|&x| (x as i16).to_le_bytes()).collect()
        }
        Uint16 if fits(0, u16::MAX as i64) => {
            v.iter().flat_map(|&x| (x as u16).to_le_bytes()).collect()
        }
        Int8 if fits(i8::MIN as i64, i8::MAX as i64) => v.iter().map(|&x| x as i8 as u8).collect(),
        Uint8 if fits(0, u8::MAX as i64) => v.iter().map(|&x| x as u8).collect(),
        Bool => v.iter().map(|&x| (x != 0) as u8).collect(),
        _ => return None,
    })
}

fn is_int(dt: DType) -> bool {
    use DataType::*;
    matches!(
        dt.known(),
        Some(Int64 | Int32 | Uint32 | Int16 | Uint16 | Int8 | Uint8)
    )
}

// ---- evaluation ----

/// Evaluates node `id` if it is a supported op on constant inputs.
fn evaluate(g: &Graph, id: NodeId) -> Option<Val> {
    let n = g.node(id);
    let op = n.op_type();
    let a = Attrs(n.attributes());
    let known = |names: &[&str]| a.unknown(names).is_none();
    let opset = g.opset();
    if op == "Shape" {
        if !known(&["start", "end"]) {
            return None;
        }
        let dims = g.ty(n.input(0)?)?.concrete()?;
        let r = dims.len() as i64;
        let norm = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
        let start = norm(a.int("start").ok()?.unwrap_or(0));
        let end = norm(a.int("end").ok()?.unwrap_or(r));
        let s = if start < end { &dims[start..end] } else { &[] };
        return Some(Val::from_i64(vec![s.len() as i64], s));
    }
    // Every present input must be a constant.
    let mut ins: Vec<Option<Val>> = Vec::new();
    for v in n.inputs() {
        match v {
            None => ins.push(None),
            Some(v) => ins.push(Some(Val::of(g.constant(*v)?)?)),
        }
    }
    if ins.is_empty() && op != "ConstantOfShape" {
        return None;
    }
    let input = |i: usize| ins.get(i).and_then(Option::as_ref);
    match op {
        "Identity" if known(&[]) => input(0).cloned(),
        "Gather" if known(&["axis"]) => {
            gather(input(0)?, input(1)?, a.int("axis").ok()?.unwrap_or(0))
        }
        "Unsqueeze" if known(&["axes"]) => {
            let axes = if opset < 13 {
                a.ints("axes").ok()??
            } else {
                input(1)?.index_ints()?
            };
            unsqueeze(input(0)?, &axes)
        }
        "Squeeze" if known(&["axes"]) => {
            let axes = if opset < 13 {
                a.ints("axes").ok()?
            } else {
                match input(1) {
                    Some(v) => Some(v.index_ints()?),
                    None => None,
                }
            };
            squeeze(input(0)?, axes.as_deref())
        }
        "Concat" if known(&["axis"]) => {
            let vals: Option<Vec<&Val>> = ins.iter().map(Option::as_ref).collect();
            concat(&vals?, a.int("axis").ok()??)
        }
        "Reshape" if known(&["allowzero", "shape"]) => {
            let shape = if opset < 5 {
                a.ints("shape").ok()??
            } else {
                input(1)?.index_ints()?
            };
            reshape(
                input(0)?,
                &shape,
                a.int("allowzero").ok()?.unwrap_or(0) != 0,
            )
        }
        "Transpose" if known(&["perm"]) => transpose(input(0)?, a.ints("perm").ok()?),
        "Slice" if known(&["starts", "ends", "axes"]) => {
            let x = input(0)?;
            let (starts, ends, axes, steps) = if opset < 10 {
                (
                    a.ints("starts").ok()??,
                    a.ints("ends").ok()??,
                    a.ints("axes").ok()?,
                    None,
                )
            } else {
                let opt = |i: usize| -> Option<Option<Vec<i64>>> {
                    match input(i) {
                        None => Some(None),
                        Some(v) => Some(Some(v.index_ints()?)),
                    }
                };
                (
                    input(1)?.index_ints()?,
                    input(2)?.index_ints()?,
                    opt(3)?,
                    opt(4)?,
                )
            };
            slice(x, &starts, &ends, axes.as_deref(), steps.as_deref())
        }
        "Cast" if known(&["to", "saturate"]) => cast(input(0)?, DType(a.int("to").ok()?? as i32)),
        "ConstantOfShape" if known(&["value"]) => {
            let shape = input(0)?;
            if shape.dtype != DType::INT64 || shape.dims.len() != 1 {
                return None;
            }
            let dims = shape.ints()?;
            if dims.iter().any(|&d| d < 0) {
                return None;
            }
            let fill = match a.tensor("value").ok()? {
                Some(t) => Val::of(&Tensor::from_proto(t.clone()))?,
                None => Val {
                    dtype: DType::FLOAT,
                    dims: vec![1],
                    bytes: 0f32.to_le_bytes().to_vec(),
                },
            };
            if fill.numel() != 1 {
                return None;
            }
            let count = dims
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))?;
            // Refuse absurd sizes before allocating (the caller's limit is 1 MiB).
            if count.checked_mul(fill.bytes.len())? > 64 << 20 {
                return None;
            }
            Some(Val {
                dtype: fill.dtype,
                dims,
                bytes: fill.bytes.repeat(count),
            })
        }
        "Range" if known(&[]) => range(input(0)?, input(1)?, input(2)?),
        "Add" | "Sub" | "Mul" | "Div" if known(&["broadcast", "axis"]) => {
            let (x, y) = (input(0)?, input(1)?);
            let legacy_ok = opset >= 7
                || x.dims == y.dims
                || (a.int("broadcast").ok()? == Some(1) && a.get("axis").is_none());
            if !legacy_ok || ins.len() != 2 {
                return None;
            }
            binary(op, x, y)
        }
        "Neg" | "Sqrt" | "Reciprocal" if known(&[]) => unary(op, input(0)?),
        _ => None,
    }
}

fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

fn strides(dims: &[i64]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1] as usize;
    }
    s
}

fn gather(data: &Val, indices: &Val, axis: i64) -> Option<Val> {
    let axis = norm_axis(axis, data.dims.len())?;
    let idx = indices.index_ints()?;
    let dim = data.dims[axis];
    let idx: Vec<usize> = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + dim } else { i };
            (0..dim).contains(&j).then_some(j as usize)
        })
        .collect::<Option<_>>()?;
    let outer: usize = data.dims[..axis].iter().product::<i64>() as usize;
    let inner: usize = data.dims[axis + 1..].iter().product::<i64>() as usize * data.esize();
    let mut bytes = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &j in &idx {
            let start = (o * dim as usize + j) * inner;
            bytes.extend_from_slice(&data.bytes[start..start + inner]);
        }
    }
    let mut dims = data.dims[..axis].to_vec();
    dims.extend_from_slice(&indices.dims);
    dims.extend_from_slice(&data.dims[axis + 1..]);
    Some(Val {
        dtype: data.dtype,
        dims,
        bytes,
    })
}

fn unsqueeze(x: &Val, axes: &[i64]) -> Option<Val> {
    let out_rank = x.dims.len() + axes.len();
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, out_rank))
        .collect::<Option<_>>()?;
    axes.sort_unstable();
    if axes.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    let mut rest = x.dims.iter();
    let dims = (0..out_rank)
        .map(|i| {
            if axes.contains(&i) {
                Some(1)
            } else {
                rest.next().copied()
            }
        })
        .collect::<Option<Vec<i64>>>()?;
    Some(Val { dims, ..x.clone() })
}

fn squeeze(x: &Val, axes: Option<&[i64]>) -> Option<Val> {
    let r = x.dims.len();
    let drop: Vec<usize> = match axes {
        None => (0..r).filter(|&i| x.dims[i] == 1).collect(),
        Some(axes) => {
            let v: Vec<usize> = axes
                .iter()
                .map(|&a| norm_axis(a, r))
                .collect::<Option<_>>()?;
            if v.iter().any(|&i| x.dims[i] != 1) {
                return None;
            }
            v
        }
    };
    let dims = (0..r)
        .filter(|i| !drop.contains(i))
        .map(|i| x.dims[i])
        .collect();
    Some(Val { dims, ..x.clone() })
}

fn concat(vals: &[&Val], axis: i64) -> Option<Val> {
    let first = vals.first()?;
    let r = first.dims.len();
    let axis = norm_axis(axis, r)?;
    for v in vals {
        if v.dtype != first.dtype || v.dims.len() != r {
            return None;
        }
        if (0..r).any(|i| i != axis && v.dims[i] != first.dims[i]) {
            return None;
        }
    }
    let outer: usize = first.dims[..axis].iter().product::<i64>() as usize;
    let mut bytes = Vec::new();
    for o in 0..outer {
        for v in vals {
            let chunk = v.dims[axis..].iter().product::<i64>() as usize * v.esize();
            bytes.extend_from_slice(&v.bytes[o * chunk..(o + 1) * chunk]);
        }
    }
    let mut dims = first.dims.clone();
    dims[axis] = vals.iter().map(|v| v.dims[axis]).sum();
    Some(Val {
        dtype: first.dtype,
        dims,
        bytes,
    })
}

fn reshape(x: &Val, shape: &[i64], allowzero: bool) -> Option<Val> {
    let mut dims = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            0 if !allowzero => dims.push(*x.dims.get(i)?),
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(1);
            }
            s if s >= 0 => dims.push(s),
            _ => return None,
        }
    }
    let known: i64 = dims.iter().product();
    let total = x.numel() as i64;
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            return None;
        }
        dims[i] = total / known;
    } else if known != total {
        return None;
    }
    Some(Val { dims, ..x.clone() })
}

fn transpose(x: &Val, perm: Option<Vec<i64>>) -> Option<Val> {
    let r = x.dims.len();
    let perm: Vec<usize> = match perm {
        Some(p) => p
            .iter()
            .map(|&a| usize::try_from(a).ok().filter(|&a| a < r))
            .collect::<Option<_>>()?,
        None => (0..r).rev().collect(),
    };
    let mut seen = vec![false; r];
    for &p in &perm {
        if std::mem::replace(&mut seen[p], true) {
            return None;
        }
    }
    if perm.len() != r {
        return None;
    }
    let dims: Vec<i64> = perm.iter().map(|&p| x.dims[p]).collect();
    let in_strides = strides(&x.dims);
    let src: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let offsets = gather_offsets(&dims, &src, 0);
    Some(Val {
        dtype: x.dtype,
        bytes: offsets.iter().flat_map(|&o| x.elem(o).to_vec()).collect(),
        dims,
    })
}

/// Flat source offsets for every element of an output of `dims`, where a
/// step along output axis i moves `step[i]` (signed) elements in the source.
fn gather_offsets(dims: &[i64], step: &[usize], base: usize) -> Vec<usize> {
    gather_offsets_signed(
        dims,
        &step.iter().map(|&s| s as i64).collect::<Vec<_>>(),
        base as i64,
    )
}

fn gather_offsets_signed(dims: &[i64], step: &[i64], base: i64) -> Vec<usize> {
    let mut out = vec![base];
    for (d, s) in dims.iter().zip(step) {
        let mut next = Vec::with_capacity(out.len() * *d as usize);
        for &o in &out {
            for i in 0..*d {
                next.push(o + i * s);
            }
        }
        out = next;
    }
    out.into_iter().map(|o| o as usize).collect()
}

fn slice(
    x: &Val,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Option<Val> {
    let r = x.dims.len();
    if starts.len() != ends.len() {
        return None;
    }
    let axes: Vec<usize> = match axes {
        Some(a) if a.len() == starts.len() => {
            a.iter().map(|&a| norm_axis(a, r)).collect::<Option<_>>()?
        }
        Some(_) => return None,
        None => (0..starts.len()).collect(),
    };
    if axes.iter().any(|&a| a >= r) {
        return None;
    }
    let steps: Vec<i64> = match steps {
        Some(s) if s.len() == starts.len() => s.to_vec(),
        Some(_) => return None,
        None => vec![1; starts.len()],
    };
    let mut start_of = vec![0i64; r];
    let mut step_of = vec![1i64; r];
    let mut dims = x.dims.clone();
    let mut seen = vec![false; r];
    for k in 0..axes.len() {
        let ax = axes[k];
        if std::mem::replace(&mut seen[ax], true) {
            return None;
        }
        let d = x.dims[ax];
        let step = steps[k];
        if step == 0 || step == i64::MIN || d == 0 {
            return None;
        }
        let (mut s, mut e) = (starts[k], ends[k]);
        if s < 0 {
            s = s.saturating_add(d);
        }
        if e < 0 {
            e = e.saturating_add(d);
        }
        let count = if step > 0 {
            let s = s.clamp(0, d);
            let e = e.clamp(0, d);
            start_of[ax] = s;
            if e > s {
                (e - s - 1) / step + 1
            } else {
                0
            }
        } else {
            let s = s.clamp(0, d - 1);
            let e = e.clamp(-1, d - 1);
            start_of[ax] = s;
            if s > e {
                (s - e - 1) / (-step) + 1
            } else {
                0
            }
        };
        step_of[ax] = step;
        dims[ax] = count;
    }
    let in_strides = strides(&x.dims);
    let base: i64 = (0..r)
        .map(|i| {
            if dims[i] > 0 {
                start_of[i] * in_strides[i] as i64
            } else {
                0
            }
        })
        .sum();
    let step: Vec<i64> = (0..r).map(|i| step_of[i] * in_strides[i] as i64).collect();
    let bytes = if dims.contains(&0) {
        Vec::new()
    } else {
        gather_offsets_signed(&dims, &step, base)
            .iter()
            .flat_map(|&o| x.elem(o).to_vec())
            .collect()
    };
    Some(Val {
        dtype: x.dtype,
        dims,
        bytes,
    })
}

fn cast(x: &Val, to: DType) -> Option<Val> {
    if to == x.dtype {
        return Some(x.clone());
    }
    let bytes = match (x.dtype, to) {
        (DType::FLOAT | DType::DOUBLE, _) => {
            let v: Vec<f64> = if x.dtype == DType::FLOAT {
                x.f32s().into_iter().map(f64::from).collect()
            } else {
                x.f64s()
            };
            match to {
                DType::FLOAT => v.iter().flat_map(|&f| (f as f32).to_le_bytes()).collect(),
                DType::DOUBLE => v.iter().flat_map(|f| f.to_le_bytes()).collect(),
                DType::BOOL => {
                    if v.iter().any(|f| f.is_nan()) {
                        return None;
                    }
                    v.iter().map(|&f| (f != 0.0) as u8).collect()
                }
                t if is_int(t) => {
                    // Truncation toward zero; out-of-range is undefined in C++.
                    let ints: Vec<i64> = v
                        .iter()
                        .map(|&f| {
                            let t = f.trunc();
                            // ±2^63: i64's range, exactly representable.
                            let lim = 2f64.powi(63);
                            (-lim..lim).contains(&t).then_some(t as i64)
                        })
                        .collect::<Option<_>>()?;
                    encode_ints(t, &ints)?
                }
                _ => return None,
            }
        }
        (from, _) if is_int(from) || from == DType::BOOL => {
            let v = x.ints()?;
            match to {
                DType::FLOAT => v.iter().flat_map(|&i| (i as f32).to_le_bytes()).collect(),
                DType::DOUBLE => v.iter().flat_map(|&i| (i as f64).to_le_bytes()).collect(),
                t if is_int(t) || t == DType::BOOL => encode_ints(t, &v)?,
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(Val {
        dtype: to,
        dims: x.dims.clone(),
        bytes,
    })
}

fn range(start: &Val, limit: &Val, delta: &Val) -> Option<Val> {
    let dt = start.dtype;
    if limit.dtype != dt || delta.dtype != dt {
        return None;
    }
    if start.numel() != 1 || limit.numel() != 1 || delta.numel() != 1 {
        return None;
    }
    if is_int(dt) {
        let (s, l, d) = (start.ints()?[0], limit.ints()?[0], delta.ints()?[0]);
        if d == 0 {
            return None;
        }
        let diff = l.checked_sub(s)?;
        let mut n = diff / d;
        if diff % d != 0 && ((diff > 0) == (d > 0)) {
            n += 1;
        }
        let n = n.max(0);
        if n > (16 << 20) {
            return None;
        }
        let vals: Vec<i64> = (0..n)
            .map(|i| s.checked_add(i.checked_mul(d)?))
            .collect::<Option<_>>()?;
        return Some(Val {
            dtype: dt,
            dims: vec![n],
            bytes: encode_ints(dt, &vals)?,
        });
    }
    let (s, l, d, exact_limit) = match dt {
        DType::FLOAT => (
            start.f32s()[0] as f64,
            limit.f32s()[0] as f64,
            delta.f32s()[0] as f64,
            (1u64 << 24) as f64,
        ),
        DType::DOUBLE => (
            start.f64s()[0],
            limit.f64s()[0],
            delta.f64s()[0],
            (1u64 << 53) as f64,
        ),
        _ => return None,
    };
    if !(s.is_finite() && l.is_finite() && d.is_finite()) || d == 0.0 {
        return None;
    }
    if s.fract() != 0.0 || d.fract() != 0.0 {
        return None;
    }
    let q = (l - s) / d;
    let n = q.ceil().max(0.0);
    if dt == DType::FLOAT {
        // The count as a runtime computes it, in f32.
        let (s32, l32, d32) = (s as f32, l as f32, d as f32);
        let n32 = ((l32 - s32) / d32).ceil().max(0.0) as f64;
        if n32 != n {
            return None;
        }
    }
    if n > (16u64 << 20) as f64 || s.abs() + n * d.abs() > exact_limit {
        return None;
    }
    let n = n as i64;
    let vals: Vec<f64> = (0..n).map(|i| s + i as f64 * d).collect();
    let bytes = if dt == DType::FLOAT {
        vals.iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect()
    } else {
        vals.iter().flat_map(|v| v.to_le_bytes()).collect()
    };
    Some(Val {
        dtype: dt,
        dims: vec![n],
        bytes,
    })
}

/// Numpy (multidirectional) broadcasting of two shapes.
fn broadcast_dims(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let x = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let y = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            match (x, y) {
                _ if x == y => Some(x),
                (1, _) => Some(y),
                (_, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// For each element of `out`, the flat index into an input of `dims`
/// broadcast to it.
fn broadcast_index(out: &[i64], dims: &[i64]) -> Vec<usize> {
    let r = out.len();
    let s = strides(dims);
    let step: Vec<usize> = (0..r)
        .map(|i| {
            if i + dims.len() < r {
                0
            } else {
                let j = i + dims.len() - r;
                if dims[j] == 1 {
                    0
                } else {
                    s[j]
                }
            }
        })
        .collect();
    gather_offsets(out, &step, 0)
}

fn binary(op: &str, x: &Val, y: &Val) -> Option<Val> {
    if x.dtype != y.dtype {
        return None;
    }
    let dims = broadcast_dims(&x.dims, &y.dims)?;
    let xi = broadcast_index(&dims, &x.dims);
    let yi = broadcast_index(&dims, &y.dims);
    let pairs = xi.iter().zip(&yi);
    let bytes: Vec<u8> = match x.dtype {
        DType::FLOAT => {
            let (a, b) = (x.f32s(), y.f32s());
            let f: fn(f32, f32) -> f32 = match op {
                "Add" => |p, q| p + q,
                "Sub" => |p, q| p - q,
                "Mul" => |p, q| p * q,
                _ => |p, q| p / q,
            };
            pairs
                .flat_map(|(&i, &j)| f(a[i], b[j]).to_le_bytes())
                .collect()
        }
        DType::DOUBLE => {
            let (a, b) = (x.f64s(), y.f64s());
            let f: fn(f64, f64) -> f64 = match op {
                "Add" => |p, q| p + q,
                "Sub" => |p, q| p - q,
                "Mul" => |p, q| p * q,
                _ => |p, q| p / q,
            };
            pairs
                .flat_map(|(&i, &j)| f(a[i], b[j]).to_le_bytes())
                .collect()
        }
        DType::INT64 => {
            let (a, b) = (x.ints()?, y.ints()?);
            // Rust's checked_div truncates toward zero, as C++ does.
            let f: fn(i64, i64) -> Option<i64> = match op {
                "Add" => i64::checked_add,
                "Sub" => i64::checked_sub,
                "Mul" => i64::checked_mul,
                _ => i64::checked_div,
            };
            let v: Vec<i64> = pairs.map(|(&i, &j)| f(a[i], b[j])).collect::<Option<_>>()?;
            v.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        _ => return None,
    };
    Some(Val {
        dtype: x.dtype,
        dims,
        bytes,
    })
}

fn unary(op: &str, x: &Val) -> Option<Val> {
    let bytes: Vec<u8> = match x.dtype {
        DType::FLOAT => {
            let f: fn(f32) -> f32 = match op {
                "Neg" => |p| -p,
                "Sqrt" => f32::sqrt,
                _ => |p| 1.0 / p,
            };
            x.f32s()
                .into_iter()
                .flat_map(|v| f(v).to_le_bytes())
                .collect()
        }
        DType::DOUBLE => {
            let f: fn(f64) -> f64 = match op {
                "Neg" => |p| -p,
                "Sqrt" => f64::sqrt,
                _ => |p| 1.0 / p,
            };
            x.f64s()
                .into_iter()
                .flat_map(|v| f(v).to_le_bytes())
                .collect()
        }
        DType::INT64 if op == "Neg" => {
            let v: Vec<i64> = x
                .ints()?
                .into_iter()
                .map(i64::checked_neg)
                .collect::<Option<_>>()?;
            v.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        _ => return None,
    };
    Some(Val {
        dtype: x.dtype,
        dims: x.dims.clone(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(dims: &[i64], v: &[f32]) -> Val {
        Val::of(&Tensor::from_f32("", dims, v)).unwrap()
    }
    fn i(dims: &[i64], v: &[i64]) -> Val {
        Val::from_i64(dims.to_vec(), v)
    }

    #[test]
    fn gather_wraps_negative_indices_and_rejects_out_of_range() {
        let d = i(&[4], &[10, 20, 30, 40]);
        let r = gather(&d, &i(&[2], &[-1, 0]), 0).unwrap();
        assert_eq!(r.ints().unwrap(), vec![40, 10]);
        assert!(gather(&d, &i(&[1], &[4]), 0).is_none());
        assert!(gather(&d, &i(&[1], &[-5]), 0).is_none());
        let s = gather(&d, &i(&[], &[2]), 0).unwrap();
        assert_eq!(s.dims, Vec::<i64>::new());
        let m = f(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let r = gather(&m, &i(&[2], &[2, 0]), 1).unwrap();
        assert_eq!(r.dims, vec![2, 2]);
        assert_eq!(r.f32s(), vec![3., 1., 6., 4.]);
    }

    #[test]
    fn slice_clamps_and_steps_backwards() {
        let d = i(&[5], &[0, 1, 2, 3, 4]);
        let all = |s, e, st| {
            slice(&d, &[s], &[e], None, Some(&[st]))
                .unwrap()
                .ints()
                .unwrap()
        };
        assert_eq!(all(1, i64::MAX, 1), vec![1, 2, 3, 4]);
        assert_eq!(all(-2, 100, 1), vec![3, 4]);
        assert_eq!(all(-1, i64::MIN, -1), vec![4, 3, 2, 1, 0]);
        assert_eq!(all(10, -10, -2), vec![4, 2, 0]);
        assert_eq!(all(0, 5, 2), vec![0, 2, 4]);
        assert_eq!(all(3, 1, 1), Vec::<i64>::new());
        let m = f(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let r = slice(&m, &[-1], &[0], Some(&[-1]), Some(&[-1])).unwrap();
        assert_eq!(r.dims, vec![2, 2]);
        assert_eq!(r.f32s(), vec![3., 2., 6., 5.]);
    }

    #[test]
    fn squeeze_unsqueeze_negative_axes() {
        let x = f(&[3, 1], &[1., 2., 3.]);
        assert_eq!(unsqueeze(&x, &[-1, 0]).unwrap().dims, vec![1, 3, 1, 1]);
        assert_eq!(squeeze(&x, Some(&[-1])).unwrap().dims, vec![3]);
        assert!(squeeze(&x, Some(&[0])).is_none());
        assert_eq!(squeeze(&x, None).unwrap().dims, vec![3]);
    }

    #[test]
    fn cast_truncates_toward_zero_and_refuses_nan() {
        let x = f(&[4], &[-1.7, 1.7, -0.5, 2.0]);
        assert_eq!(
            cast(&x, DType::INT64).unwrap().ints().unwrap(),
            vec![-1, 1, 0, 2]
        );
        assert!(cast(&f(&[1], &[f32::NAN]), DType::INT64).is_none());
        assert!(cast(&f(&[1], &[1e20]), DType::INT32).is_none());
        let r = cast(&i(&[2], &[16777217, -3]), DType::FLOAT).unwrap();
        assert_eq!(r.f32s(), vec![16777216.0, -3.0]);
    }

    #[test]
    fn int_div_truncates_and_refuses_zero() {
        let r = binary("Div", &i(&[2], &[-7, 7]), &i(&[], &[2])).unwrap();
        assert_eq!(r.ints().unwrap(), vec![-3, 3]);
        assert!(binary("Div", &i(&[1], &[1]), &i(&[1], &[0])).is_none());
        assert!(binary("Add", &i(&[1], &[i64::MAX]), &i(&[1], &[1])).is_none());
    }

    #[test]
    fn broadcasting_and_transpose() {
        let a = f(&[2, 1], &[1., 2.]);
        let b = f(&[3], &[10., 20., 30.]);
        let r = binary("Add", &a, &b).unwrap();
        assert_eq!(r.dims, vec![2, 3]);
        assert_eq!(r.f32s(), vec![11., 21., 31., 12., 22., 32.]);
        let m = f(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let t = transpose(&m, None).unwrap();
        assert_eq!(t.dims, vec![3, 2]);
        assert_eq!(t.f32s(), vec![1., 4., 2., 5., 3., 6.]);
    }

    #[test]
    fn ranges() {
        let r = range(&i(&[], &[10]), &i(&[], &[0]), &i(&[], &[-3])).unwrap();
        assert_eq!(r.ints().unwrap(), vec![10, 7, 4, 1]);
        let r = range(&f(&[], &[0.]), &f(&[], &[2.5]), &f(&[], &[1.])).unwrap();
        assert_eq!(r.f32s(), vec![0., 1., 2.]);
        assert!(range(&f(&[], &[0.]), &f(&[], &[1.]), &f(&[], &[0.1])).is_none());
        assert!(range(&i(&[], &[0]), &i(&[], &[1]), &i(&[], &[0])).is_none());
    }

    #[test]
    fn reshape_zero_and_infer() {
        let x = f(&[2, 3], &[0.; 6]);
        assert_eq!(reshape(&x, &[0, -1], false).unwrap().dims, vec![2, 3]);
        assert_eq!(reshape(&x, &[-1], false).unwrap().dims, vec![6]);
        assert!(reshape(&x, &[4, -1], false).is_none());
    }
}
